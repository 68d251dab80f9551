"""Instruction counts of the warm cases under valgrind's callgrind (``make bench COUNT=instructions``).

Instructions executed do not move with the machine's load, so a warm target can be judged on a
busy machine. Each case runs in its own child process under callgrind twice, with ``LOW`` and
``HIGH`` calls after the same set-up and warm-up; the per-call count is the difference divided by
``HIGH - LOW``, so imports, key generation and the first JWKS fetch cancel out.

Run as ``python -m benchmarks.count FIXTURE GROUP CASE CALLS`` (the child side).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .warm import GROUPS, Fixture, build

LOW, HIGH = 20, 220
WARMUP = 5
CHILD_TIMEOUT_SECONDS = 600
_TOTALS = re.compile(r"^(?:summary|totals):\s+(\d+)", re.MULTILINE)


def valgrind() -> str | None:
    return shutil.which("valgrind")


def _instructions(fixture_path: Path, group: int, case: str, calls: int, out: Path) -> int:
    command = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        sys.executable,
        "-m",
        "benchmarks.count",
        str(fixture_path),
        str(group),
        case,
        str(calls),
    ]
    # A fixed hash seed: dict and set layouts, and so instruction counts, repeat run to run.
    env = os.environ | {"PYTHONHASHSEED": "0"}
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=CHILD_TIMEOUT_SECONDS)
    match = _TOTALS.search(out.read_text())
    if match is None:
        raise RuntimeError(f"no instruction total in {out}")
    return int(match[1])


def per_call(fixture_path: Path, group: int, case: str, workdir: Path) -> float:
    low = _instructions(fixture_path, group, case, LOW, workdir / f"{group}-{case}-low.out")
    high = _instructions(fixture_path, group, case, HIGH, workdir / f"{group}-{case}-high.out")
    return (high - low) / (HIGH - LOW)


def count_all(fixture: Fixture, jobs: int = 2) -> dict[tuple[int, str], float]:
    """Instructions per call of every warm case, ``(group index, case id) -> count``."""
    with tempfile.TemporaryDirectory(prefix="tokengate-callgrind-") as tmp:
        workdir = Path(tmp)
        fixture_path = workdir / "fixture.json"
        fixture.dump(fixture_path)
        keys = [(g, case) for g, group in enumerate(GROUPS) for case, _, _ in group.cases]
        with ThreadPoolExecutor(jobs) as pool:
            counts = pool.map(lambda key: per_call(fixture_path, *key, workdir), keys)
            return dict(zip(keys, counts, strict=True))


def child(arguments: Iterable[str]) -> None:
    fixture_path, group, case, calls = arguments
    call = build(GROUPS[int(group)], case, Fixture.load(Path(fixture_path)))
    for _ in range(WARMUP):
        call()
    for _ in range(int(calls)):
        call()


if __name__ == "__main__":
    child(sys.argv[1:])
