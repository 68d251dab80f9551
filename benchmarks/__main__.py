"""`make bench`: one table, every row measured in this run, each ratio's two sides in the same rounds.

* Warm rows: each group's cases (ours, the peers a user would pick instead, a naive handler, the
  cryptographic floor) on the same tokens, run in interleaved rounds of short batches, shuffled
  each round (:mod:`benchmarks.harness`); a ratio is the median of per-round ratios.
* ``COUNT=instructions``: the warm rows again as instructions per call under callgrind
  (:mod:`benchmarks.count`), which a busy machine does not move.
* Cold rows: spawn → first answer of a fresh process, the bare interpreter spawned in the same
  rounds and subtracted per round (:mod:`benchmarks.cold`).
* ``QUICK=1``: a few short rounds, to check the harness runs (the suite uses it); its figures mean
  nothing.

``--write PATH`` also writes the table as Markdown into PATH, between its ``make bench`` markers
(docs/performance.md is made this way: ``make bench COUNT=instructions OUT=docs/performance.md``).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from . import cli, cold, count, harness, warm


class Settings:
    def __init__(self, quick: bool) -> None:
        self.quick = quick
        self.warm_rounds = 3 if quick else 61
        self.batch_seconds = 0.0005 if quick else 0.004
        self.cold_rounds = 1 if quick else 21


def warm_section(fixture: warm.Fixture, settings: Settings) -> tuple[list[str], list[str]]:
    lines, verdicts = [], []
    lines.append(
        f"#### Warm, by time: µs per call (median of {settings.warm_rounds} interleaved rounds)\n"
    )
    for group in warm.GROUPS:
        cases = {case: warm.build(group, case, fixture) for case, _, _ in group.cases}
        sizes = {
            name: harness.batch_size(call, settings.batch_seconds, time.perf_counter)
            for name, call in cases.items()
        }
        rounds = harness.interleaved(
            list(cases),
            settings.warm_rounds,
            lambda name, c=cases, s=sizes: harness.timed_batch(c[name], s[name]),
        )
        medians = {name: statistics.median(samples) * 1e6 for name, samples in rounds.items()}
        lines += _group_table(group, medians, lambda a, b, r=rounds: harness.median_ratio(r, a, b))
        verdicts += _verdicts(group, "time", lambda a, b, r=rounds: harness.median_ratio(r, a, b))
    return lines, verdicts


def _group_table(
    group: warm.Group,
    values: dict[str, float],
    ratio: harness.Callable[[str, str], float],
    unit: str = "µs",
) -> list[str]:
    targets = {b: t for a, b, t in group.ratios}
    lines = [
        f"**{group.title}**\n",
        f"| case | {unit} per call | ours ÷ this | target |",
        "|---|---:|---:|---|",
    ]
    for case, _, label in group.cases:
        shown = f"{values[case]:,.1f}" if unit == "µs" else f"{values[case]:,.0f}"
        if case == "ours":
            lines.append(f"| {label} | {shown} | | |")
            continue
        value = ratio("ours", case)
        target = targets.get(case)
        mark = f"≤ {target} {harness.verdict(value, target)}" if target is not None else ""
        lines.append(f"| {label} | {shown} | {value:.2f}x | {mark} |")
    return [*lines, ""]


def _verdicts(group: warm.Group, how: str, ratio: harness.Callable[[str, str], float]) -> list[str]:
    names = {case: label for case, _, label in group.cases}
    out = []
    for top, bottom, target in group.ratios:
        if target is None:
            continue
        value = ratio(top, bottom)
        out.append(
            f"| {group.title}: ours ÷ {names[bottom].split(' (')[0]} ({how}) | {value:.2f}x "
            f"| ≤ {target} | {harness.verdict(value, target)} |"
        )
    return out


def count_section(fixture: warm.Fixture) -> tuple[list[str], list[str]]:
    if count.valgrind() is None:
        return ["(COUNT=instructions: valgrind is not installed; see `make bench`)", ""], []
    counts = count.count_all(fixture)
    lines = [
        "#### Warm, by instructions (callgrind): instructions per call "
        f"(difference of {count.HIGH} and {count.LOW} calls)\n"
    ]
    verdicts: list[str] = []
    for index, group in enumerate(warm.GROUPS):
        values = {case: counts[(index, case)] for case, _, _ in group.cases}

        def ratio(a: str, b: str, v: dict[str, float] = values) -> float:
            return v[a] / v[b]

        lines += _group_table(group, values, ratio, unit="instructions")
        verdicts += _verdicts(group, "instructions", ratio)
    return lines, verdicts


def cold_section(fixture: warm.Fixture, settings: Settings) -> tuple[list[str], list[str]]:
    with cold.cold_scenarios(fixture, warm.jwks_document(fixture)) as scenarios:
        rounds = cold.measure(scenarios, settings.cold_rounds, warm_up=not settings.quick)
    return cold_tables(scenarios, rounds, settings.cold_rounds)


def cold_tables(
    scenarios: list[cold.Scenario], rounds: harness.Rounds, count: int
) -> tuple[list[str], list[str]]:
    """The cold rows and their verdicts. Every target is a ratio of two rows' costs over the bare
    interpreter, per round, in the same rounds: milliseconds move with the machine and its load,
    these ratios far less."""
    bare = statistics.median(rounds["bare"]) * 1000
    labels = {scenario.name: scenario.label for scenario in scenarios}
    over_bare = harness.over(rounds, "bare")
    lines = [
        f"#### Cold: spawn → first answer, ms over a bare interpreter "
        f"(median of {count} rounds; bare interpreter itself: {bare:.0f} ms)\n",
        "| fresh process | ms over bare | ÷ floor's | ÷ peer's | target (ratio, same rounds) |",
        "|---|---:|---:|---:|---|",
    ]
    verdicts = []
    for scenario in scenarios:
        if scenario.name == "bare":
            continue
        value = harness.median_difference(rounds, scenario.name, "bare") * 1000
        over_floor = harness.median_ratio(over_bare, scenario.name, "floor")
        over_peer = (
            f"{harness.median_ratio(over_bare, scenario.name, scenario.peer):.2f}"
            if scenario.peer is not None
            else ""
        )
        marks = []
        for other, bound in scenario.bounds:
            ratio = harness.median_ratio(over_bare, scenario.name, other)
            verdict = harness.verdict(ratio, bound)
            what = "floor" if other == "floor" else "peer"
            marks.append(f"÷ {what} ≤ {bound} {verdict}")
            verdicts.append(
                f"| {scenario.label} ÷ {'import floor' if other == 'floor' else labels[other]}"
                " (time over bare, same rounds)"
                f" | {ratio:.2f}x | ≤ {bound} | {verdict} |"
            )
        lines.append(
            f"| {scenario.label} | {value:.0f} | {over_floor:.2f} | {over_peer} "
            f"| {'; '.join(marks)} |"
        )
    return [*lines, ""], verdicts


def cli_section(settings: Settings) -> tuple[list[str], list[str]]:
    """The ``tokengate`` command, spawn to exit (its rows and targets: :mod:`benchmarks.cli`)."""
    return cli.section(3 if settings.quick else cli.RUNS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--write", type=Path, help="also write the Markdown table here")
    args = parser.parse_args(argv)
    settings = Settings(quick=os.environ.get("QUICK", "") not in ("", "0"))
    counting = os.environ.get("COUNT", "") == "instructions"
    from tests.jwks_server import JwksServer

    started = time.monotonic()
    with JwksServer({"keys": []}) as jwks:
        fixture = warm.make_fixture(jwks.jwks_url, 5 if settings.quick else warm.TOKENS_PER_KIND)
        warm.publish(jwks, fixture)
        warm_lines, verdicts = warm_section(fixture, settings)
        count_lines: list[str] = []
        if counting:
            count_lines, count_verdicts = count_section(fixture)
            verdicts += count_verdicts
    cold_lines, cold_verdicts = cold_section(fixture, settings)
    verdicts += cold_verdicts
    cli_lines, cli_verdicts = cli_section(settings)
    verdicts += cli_verdicts
    load = os.getloadavg()
    header = [
        "## Measured",
        "",
        f"Generated by `make bench{' COUNT=instructions' if counting else ''}"
        f"{' QUICK=1' if settings.quick else ''}` on "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC: Python {platform.python_version()}, "
        f"{os.cpu_count()} cores, load {load[0]:.1f} at the end, "
        f"{time.monotonic() - started:.0f} s. Method: `benchmarks/__main__.py`.",
        "",
        "### Targets",
        "",
        *(
            [
                "**QUICK=1: a few short rounds that check the harness runs. These figures and "
                "verdicts judge nothing; `make bench` does.**",
                "",
            ]
            if settings.quick
            else []
        ),
        "| target | this run | bound | verdict |",
        "|---|---:|---|---|",
        *verdicts,
        "",
        "### All rows",
        "",
    ]
    text = "\n".join([*header, *warm_lines, *count_lines, *cold_lines, *cli_lines])
    print(text)
    if args.write:
        write_between_markers(args.write, text)
    return 0


BEGIN, END = "<!-- make bench: begin -->", "<!-- make bench: end -->"


def write_between_markers(path: Path, text: str) -> None:
    """Replace what lies between the markers (the hand-written rest of the page stays); a file
    without them gets the measured part alone."""
    measured = f"{BEGIN}\n{text}\n{END}"
    old = path.read_text() if path.exists() else ""
    if BEGIN in old and END in old:
        head, rest = old.split(BEGIN, 1)
        path.write_text(head + measured + rest.split(END, 1)[1])
    else:
        path.write_text(measured + "\n")


if __name__ == "__main__":
    sys.exit(main())
