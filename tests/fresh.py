"""Code run in a fresh interpreter with the product's layer on its path: for what a process does
that has not imported something yet (the test process imported nearly everything long ago)."""

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

LAYER = Path(__file__).resolve().parents[1] / "layers" / "tokengate"


def run_fresh(
    code: str, *args: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -c code *args`` with only the layer on PYTHONPATH (and ``env``); its output as
    text. A failing exit raises, with the output."""
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env={"PYTHONPATH": str(LAYER), "PATH": os.environ.get("PATH", ""), **(env or {})},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
