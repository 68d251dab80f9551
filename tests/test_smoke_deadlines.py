"""make smoke's per-check deadline: an endpoint that hangs or trickles its answer fails the check
it serves within the deadline, instead of holding the run (slow servers on loopback)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.slow_servers import SlowServer

pytestmark = pytest.mark.usefixtures("without_gc_pauses")  # timed against a context

SMOKE = Path(__file__).resolve().parent.parent / "scripts" / "smoke.py"
DEADLINE = 1.0
# The interpreter's start and the imports (pyjwt) come on top of the check's deadline.
SLACK = 10.0


@pytest.mark.parametrize("mode", ["hang", "trickle-status", "trickle-headers", "trickle-body"])
def test_a_hanging_endpoint_fails_its_check_within_the_deadline(mode: str) -> None:
    with SlowServer(mode, interval=0.05).running() as server:
        base = server.url.rsplit("/", 1)[0]
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, str(SMOKE), "--url", base, "--check-seconds", str(DEADLINE)],
            env=os.environ | {"SUPABASE_TOKEN": "header.payload.signature"},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stderr
    assert result.stdout.splitlines() == ["FAIL discovery: no answer within 1 s"]
    assert elapsed < DEADLINE + SLACK


def test_the_deadline_must_be_positive() -> None:
    result = subprocess.run(
        [sys.executable, str(SMOKE), "--url", "http://127.0.0.1:1", "--check-seconds", "0"],
        env=os.environ | {"SUPABASE_TOKEN": "header.payload.signature"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "--check-seconds must be positive" in result.stderr
