"""The benchmark harness: interleaved rounds and median-of-ratios (synthetic timings), and one
quick run of ``make bench`` to show every row still runs. No timing is asserted here."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks import harness

ROOT = Path(__file__).resolve().parent.parent


class Machine:
    """A synthetic machine: each case has a fixed cost, multiplied by the load of the round."""

    def __init__(self, costs: dict[str, float], load: list[float]) -> None:
        self.costs, self.load = costs, load
        self.calls: list[str] = []

    def run(self, name: str) -> float:
        round_index = len(self.calls) // len(self.costs)
        self.calls.append(name)
        return self.costs[name] * self.load[round_index]


@given(st.lists(st.floats(min_value=0.1, max_value=50), min_size=1, max_size=40))
def test_a_ratio_is_exact_whatever_the_load_of_each_round(load: list[float]) -> None:
    machine = Machine({"ours": 3.0, "peer": 4.0, "floor": 1.0}, load)
    rounds = harness.interleaved(list(machine.costs), len(load), machine.run)
    assert harness.median_ratio(rounds, "ours", "peer") == pytest.approx(0.75)
    assert harness.median_ratio(rounds, "ours", "floor") == pytest.approx(3.0)
    assert harness.median_difference(rounds, "ours", "floor") == pytest.approx(
        sorted(2.0 * x for x in load)[len(load) // 2]
        if len(load) % 2
        else sum(sorted(2.0 * x for x in load)[len(load) // 2 - 1 : len(load) // 2 + 1]) / 2
    )


@given(
    st.lists(st.floats(min_value=0.1, max_value=50), min_size=1, max_size=40),
    st.floats(min_value=0.0, max_value=100),
)
def test_a_cold_ratio_is_taken_over_the_bare_interpreter_of_the_same_round(
    load: list[float], start: float
) -> None:
    """A fresh process costs the interpreter's start (the same for both sides) plus its own
    work; the ratio compares the work alone, whatever each round's load."""
    machine = Machine({"bare": start, "ours": start + 3.0, "peer": start + 6.0}, load)
    rounds = harness.interleaved(list(machine.costs), len(load), machine.run)
    over = harness.over(rounds, "bare")
    assert harness.median_ratio(over, "ours", "peer") == pytest.approx(0.5)
    assert over["bare"] == [1e-6] * len(load)


def test_a_spike_on_one_side_of_a_few_rounds_does_not_move_the_ratio() -> None:
    samples = {"ours": [2.0, 2.0, 20.0, 2.0, 2.0], "peer": [4.0, 4.0, 4.0, 8.0, 4.0]}
    assert harness.median_ratio(samples, "ours", "peer") == 0.5
    # Totals (what one long batch per side would measure) are fooled by the same spikes.
    assert sum(samples["ours"]) / sum(samples["peer"]) > 1.1


def test_every_round_runs_every_case_once_in_a_shuffled_order() -> None:
    orders: list[list[str]] = []

    def shuffle(order: list[str]) -> None:
        order.reverse()
        orders.append(list(order))

    calls: list[str] = []

    def run(name: str) -> float:
        calls.append(name)
        return 1.0

    rounds = harness.interleaved(["a", "b", "c"], 4, run, shuffle)
    assert calls == [name for order in orders for name in order]
    assert orders[0] != orders[1]
    assert all(sorted(order) == ["a", "b", "c"] for order in orders)
    assert {name: len(values) for name, values in rounds.items()} == {"a": 4, "b": 4, "c": 4}


def test_the_default_shuffle_varies_the_order() -> None:
    calls: list[str] = []

    def run(name: str) -> float:
        calls.append(name)
        return 1.0

    harness.interleaved(list("abcdef"), 30, run)
    orders = {tuple(calls[i : i + 6]) for i in range(0, len(calls), 6)}
    assert len(orders) > 1


def test_ratios_need_the_same_rounds_on_both_sides() -> None:
    with pytest.raises(ValueError, match="same"):
        harness.median_ratio({"a": [1.0, 2.0], "b": [1.0]}, "a", "b")
    with pytest.raises(ValueError, match="same"):
        harness.median_difference({"a": [], "b": []}, "a", "b")
    with pytest.raises(ValueError, match="round"):
        harness.interleaved(["a"], 0, lambda n: 1.0)


def test_batch_size_fills_the_budget() -> None:
    now = [0.0]

    def clock() -> float:
        return now[0]

    def call() -> None:
        now[0] += 0.001  # one millisecond per call

    assert harness.batch_size(call, 0.05, clock) == 50
    assert harness.timed_batch(call, 10, clock) == pytest.approx(0.001)


def test_verdicts() -> None:
    assert harness.verdict(0.79, 0.8) == "met"
    assert harness.verdict(0.8, 0.8) == "met"
    assert harness.verdict(0.81, 0.8) == "MISSED"
    assert harness.verdict(1.0, None) == "-"


@pytest.mark.long
@pytest.mark.timeout(330)  # the run's own wait is bounded (300 s): the hang timeout is not shorter
def test_a_quick_run_produces_every_row() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | {"QUICK": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "QUICK=1: a few short rounds that check the harness runs" in run.stdout
    for row in (
        "### Targets",
        "ours: authorizer, whole Lambda handler",
        "authlib.jose decode + validate",
        "joserfc jwt.decode + claims registry",
        "naive handler: pyjwt PyJWKClient + jwt.decode",
        "floor: RSA-2048 verify alone",
        "ours: Supabase verifier",
        "ours: API-token authorizer, first decision (RS256",
        "ours: API-token authorizer, first decision (ES256",
        "naive: pyjwt PyJWKClient authorizer, first decision (ES256)",
        "÷ import floor (time over bare, same rounds)",
        "tokengate token, cached ÷ bare interpreter",
        "ours: Supabase authorizer with HS256 on, first decision",
        "ours: first exchange, KMS mode",
        "ours: first exchange, Secrets Manager key mode",
        "naive: boto3 + pyjwt exchange, KMS mode",
    ):
        assert row in run.stdout
    assert "AuthlibDeprecationWarning" not in run.stderr


def test_writing_keeps_the_hand_written_rest_of_the_page(tmp_path: Path) -> None:
    from benchmarks.__main__ import BEGIN, END, write_between_markers

    page = tmp_path / "performance.md"
    write_between_markers(page, "first")
    assert page.read_text() == f"{BEGIN}\nfirst\n{END}\n"
    page.write_text(f"# Title\n\nintro\n\n{BEGIN}\nold table\n{END}\n\n## Decisions\n\nkept\n")
    write_between_markers(page, "new table")
    assert (
        page.read_text()
        == f"# Title\n\nintro\n\n{BEGIN}\nnew table\n{END}\n\n## Decisions\n\nkept\n"
    )
