"""How ``make test`` spreads the suite over pytest-xdist workers: a module's tests that share a
module-scoped fixture (a local stack, the CLI's Supabase stand-in) run on one worker."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def shared() -> str:
    return "one per module"


def test_a_module_fixture_keeps_its_module_on_one_worker(
    shared: str, request: pytest.FixtureRequest
) -> None:
    """Under ``--dist loadgroup`` the worker's node id carries the group (tests/conftest.py marks
    the module): without it the scheduler spreads the module over every worker, and each one
    starts its own copy of the fixture (as pytest 9.2 with pytest-xdist 3.8 does)."""
    if request.config.getoption("loadgroup", default=False):
        assert request.node.nodeid.endswith("@tests/test_workers.py"), request.node.nodeid
    assert shared == "one per module"
