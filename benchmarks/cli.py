"""The ``tokengate`` CLI, spawn to exit: a cached token, an exchange, a refresh.

Each round runs the installed console script once per command against the local stack and the
Supabase Auth stand-in on loopback, and a bare interpreter, in a shuffled order
(:func:`benchmarks.harness.interleaved`); a row's ratio is the median over rounds of its time over
that round's bare interpreter. The targets are those ratios, here and nowhere else.
"""

from __future__ import annotations

import contextlib
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

from devstack.moto_aws import free_port
from devstack.stack import LocalStack
from devstack.supabase_auth import DEV_EMAIL, DEV_PASSWORD, SupabaseAuthStandIn
from devstack.supabase_dev import LOCAL_JWT_SECRET

from . import harness

RUNS = 21
# A cached token is read from disk and printed: at most this many bare interpreter starts.
CACHED_OVER_BARE = 2.5


class Command(NamedTuple):
    name: str
    label: str
    arguments: list[str]  # after the script; [] with no script: the bare interpreter
    bound: float | None  # upper bound of (this ÷ the bare interpreter), same rounds


COMMANDS = [
    Command("bare", "bare interpreter", [], None),
    Command("cached", "tokengate token, cached", ["token"], CACHED_OVER_BARE),
    Command(
        "exchange",
        "tokengate token, exchange each time (--min-ttl 1000)",
        ["token", "--min-ttl", "1000"],
        None,
    ),
    Command(
        "refresh",
        "tokengate token, Supabase refresh + exchange (--min-ttl 3600)",
        ["token", "--min-ttl", "3600"],
        None,
    ),
]


def run_seconds(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=60)
    return time.perf_counter() - start


def cli_rounds(runs: int = RUNS) -> harness.Rounds:
    script = str(Path(sys.executable).parent / "tokengate")
    saved = dict(os.environ)
    with (
        SupabaseAuthStandIn(LOCAL_JWT_SECRET) as stand_in,
        tempfile.TemporaryDirectory() as home,
        contextlib.redirect_stdout(io.StringIO()),
    ):
        stack = LocalStack(free_port(), stand_in.url, LOCAL_JWT_SECRET).start()
        try:
            env = {
                "PATH": saved.get("PATH", ""),
                "TOKENGATE_HOME": home,
                "TOKENGATE_API_URL": stack.base_url,
                "SUPABASE_URL": stand_in.url,
                "SUPABASE_ANON_KEY": stand_in.anon_key,
            }
            login = [script, "login", "--email", DEV_EMAIL, "--password-stdin"]
            subprocess.run(
                login,
                input=DEV_PASSWORD,
                text=True,
                env=env,
                check=True,
                capture_output=True,
                timeout=60,
            )
            commands = {
                c.name: [script, *c.arguments] if c.arguments else [sys.executable, "-c", "pass"]
                for c in COMMANDS
            }
            for command in commands.values():  # once unmeasured: caches warm, each one runs
                run_seconds(command, env)
            return harness.interleaved(
                list(commands), runs, lambda name: run_seconds(commands[name], env)
            )
        finally:
            stack.stop()
            os.environ.clear()
            os.environ.update(saved)


def section(runs: int = RUNS) -> tuple[list[str], list[str]]:
    """The CLI table and its verdicts (Markdown lines)."""
    rounds = cli_rounds(runs)
    lines = [
        f"#### CLI: spawn → exit (median of {runs} interleaved rounds)\n",
        "| command | ms | ÷ bare interpreter | target (ratio, same rounds) |",
        "|---|---:|---:|---|",
    ]
    verdicts = []
    for command in COMMANDS:
        ms = statistics.median(rounds[command.name]) * 1000
        if command.name == "bare":
            lines.append(f"| {command.label} | {ms:.0f} | | |")
            continue
        ratio = harness.median_ratio(rounds, command.name, "bare")
        mark = ""
        if command.bound is not None:
            verdict = harness.verdict(ratio, command.bound)
            mark = f"≤ {command.bound} {verdict}"
            verdicts.append(
                f"| {command.label} ÷ bare interpreter (time, same rounds) | {ratio:.2f}x "
                f"| ≤ {command.bound} | {verdict} |"
            )
        lines.append(f"| {command.label} | {ms:.0f} | {ratio:.2f} | {mark} |")
    return [*lines, ""], verdicts


def main() -> int:
    lines, _ = section()
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
