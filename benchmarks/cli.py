"""The ``tokengate`` CLI, spawn to exit: a cached token, an exchange, a refresh.

Each round runs the installed console script once per command against the local stack and the
Supabase Auth stand-in on loopback, and a bare interpreter, in a shuffled order
(:func:`benchmarks.harness.interleaved`); a row's ratio is the median over rounds of its time over
that round's bare interpreter. The targets are those ratios, here and nowhere else. The cached
token's is judged twice: on the machine as it is, and again with one core kept busy by a
spinning process (a pipeline's usual neighbour).
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
from collections.abc import Iterator
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
SPIN = "while True: pass"


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


@contextlib.contextmanager
def one_core_busy() -> Iterator[None]:
    spinner = subprocess.Popen([sys.executable, "-c", SPIN])
    try:
        yield
    finally:
        spinner.kill()
        spinner.wait(timeout=60)


def run_seconds(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=60)
    return time.perf_counter() - start


def cli_rounds(runs: int = RUNS) -> tuple[harness.Rounds, harness.Rounds]:
    """The rounds on the machine as it is, then with one core busy (cached token and bare only)."""
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
            rounds = harness.interleaved(
                list(commands), runs, lambda name: run_seconds(commands[name], env)
            )
            with one_core_busy():
                busy = harness.interleaved(
                    ["bare", "cached"], runs, lambda name: run_seconds(commands[name], env)
                )
            return rounds, busy
        finally:
            stack.stop()
            os.environ.clear()
            os.environ.update(saved)


def section(runs: int = RUNS) -> tuple[list[str], list[str]]:
    """The CLI table and its verdicts (Markdown lines)."""
    rounds, busy = cli_rounds(runs)
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
    ratio = harness.median_ratio(busy, "cached", "bare")
    verdict = harness.verdict(ratio, CACHED_OVER_BARE)
    ms = statistics.median(busy["cached"]) * 1000
    lines.append(
        f"| tokengate token, cached, one core busy | {ms:.0f} | {ratio:.2f} "
        f"| ≤ {CACHED_OVER_BARE} {verdict} |"
    )
    verdicts.append(
        f"| tokengate token, cached ÷ bare interpreter, one core busy (time, same rounds) "
        f"| {ratio:.2f}x | ≤ {CACHED_OVER_BARE} | {verdict} |"
    )
    return [*lines, ""], verdicts


def main() -> int:
    lines, _ = section()
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
