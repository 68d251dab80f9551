"""A bounded concurrent run on the local stack (loopback only): zero errors, every token verifies.
`make load` runs the full size (2,000 exchanges, 10,000 authorized calls)."""

from __future__ import annotations

import pytest

from benchmarks.load import run

pytestmark = pytest.mark.stack


def test_concurrent_exchanges_and_authorized_calls() -> None:
    result = run(exchanges=200, calls=1000, threads=4)
    assert result.errors == []
    assert len(result.tokens) == 200
    assert len(set(result.tokens)) == 200
    assert result.verified == 200
