"""Instructions of the cold rows: each scenario's whole process, spawn to answer, under callgrind.

``python -m benchmarks.cold_count [NAME,...]`` (valgrind needed): the same children as the cold
rows (:mod:`benchmarks.cold`), each run once under callgrind, and each one's instructions over the
bare interpreter's with its ratios to the import floor and to its peer. Instructions do not move
with the machine's load, but they are not time: waiting (on the network, on a core) and memory
traffic are not in them, and an import-heavy start costs more time per instruction than a loop.
Use them to see where a cold start's work goes; the targets are judged by time (``make bench``).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from . import cold, warm

_COLLECTED = re.compile(r"Collected : (\d+)")


def instructions(scenario: cold.Scenario) -> int:
    if scenario.code_dir is None:
        script = cold.BARE if scenario.name == "bare" else cold.FLOOR
        command = [sys.executable, "-c", script]
    else:
        command = [
            sys.executable,
            "-c",
            cold.CHILD,
            str(scenario.code_dir),
            json.dumps(scenario.event),
        ]
    with tempfile.TemporaryDirectory() as directory:
        out = Path(directory) / "callgrind.out"
        run = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *command],
            env=scenario.env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    found = _COLLECTED.search(run.stderr)
    if "ANSWER " not in run.stdout or found is None:
        raise RuntimeError(f"{scenario.name}: no answer; {run.stderr[-2000:]}")
    return int(found.group(1))


def main(argv: list[str]) -> int:
    from tests.jwks_server import JwksServer

    wanted = set(argv[0].split(",")) if argv else None
    with JwksServer({"keys": []}) as jwks:
        fixture = warm.make_fixture(jwks.jwks_url, 2)
    with cold.cold_scenarios(fixture, warm.jwks_document(fixture)) as scenarios:
        chosen = [
            s
            for s in scenarios
            if s.name in ("bare", "floor") or wanted is None or s.name in wanted
        ]
        counts = {s.name: instructions(s) for s in chosen}
    bare = counts["bare"]
    over = {name: max(value - bare, 1) for name, value in counts.items()}
    print("| fresh process | M instructions | over bare | ÷ floor's | ÷ peer's |")
    print("|---|---:|---:|---:|---:|")
    for s in chosen:
        peer = f"{over[s.name] / over[s.peer]:.2f}" if s.peer in over else ""
        print(
            f"| {s.label} | {counts[s.name] / 1e6:.1f} | {over[s.name] / 1e6:.1f} "
            f"| {over[s.name] / over['floor']:.2f} | {peer} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
