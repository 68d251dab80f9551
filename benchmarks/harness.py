"""Interleaved measurement: every compared side is timed in the same rounds.

A shared machine's load changes from second to second. Timing one side for a while and then the
other lets that change land on one side only, so a ratio of two separately taken medians can
swing by half. Here each round runs one short batch of every case, in a freshly shuffled order,
and a ratio is the median over rounds of that round's own ratio: a slow second slows both sides
of the rounds it touches and leaves the per-round ratios alone.

Pure standard library, so the statistics are unit-tested with synthetic timings.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable, Mapping, Sequence

Rounds = dict[str, list[float]]  # case name -> one per-call cost per round


def interleaved(
    names: Sequence[str],
    rounds: int,
    run: Callable[[str], float],
    shuffle: Callable[[list[str]], None] = random.shuffle,
) -> Rounds:
    """Call ``run(name)`` once per case per round, cases in a new order each round.

    ``run`` returns that batch's per-call cost (seconds, instructions, anything); the result maps
    each case to its per-round costs, index ``i`` of every list being round ``i``.
    """
    if rounds < 1:
        raise ValueError("at least one round")
    samples: Rounds = {name: [] for name in names}
    order = list(names)
    for _ in range(rounds):
        shuffle(order)
        for name in order:
            samples[name].append(run(name))
    return samples


def median_ratio(samples: Mapping[str, Sequence[float]], numerator: str, denominator: str) -> float:
    """The median over rounds of ``numerator / denominator`` within each round."""
    tops, bottoms = samples[numerator], samples[denominator]
    if len(tops) != len(bottoms) or not tops:
        raise ValueError("both sides must have the same, non-zero number of rounds")
    return statistics.median(top / bottom for top, bottom in zip(tops, bottoms, strict=True))


def median_difference(
    samples: Mapping[str, Sequence[float]], minuend: str, subtrahend: str
) -> float:
    """The median over rounds of ``minuend - subtrahend`` within each round (a fresh process's
    cost over a bare interpreter spawned in the same round)."""
    tops, bottoms = samples[minuend], samples[subtrahend]
    if len(tops) != len(bottoms) or not tops:
        raise ValueError("both sides must have the same, non-zero number of rounds")
    return statistics.median(top - bottom for top, bottom in zip(tops, bottoms, strict=True))


def over(samples: Mapping[str, Sequence[float]], base: str) -> Rounds:
    """Each case's cost over the same round's ``base`` (a fresh process's cost over a bare
    interpreter spawned in that round), at least a microsecond: the cold rows' ratios are taken
    between these, so the interpreter's own start, common to both sides, does not pull every
    ratio towards 1."""
    bottoms = samples[base]
    return {
        name: [max(value - floor, 1e-6) for value, floor in zip(values, bottoms, strict=True)]
        for name, values in samples.items()
    }


def batch_size(call: Callable[[], object], budget: float, clock: Callable[[], float]) -> int:
    """How many calls fit in about ``budget`` seconds (at least one), from a short trial."""
    count, elapsed = 1, 0.0
    while True:
        start = clock()
        for _ in range(count):
            call()
        elapsed = clock() - start
        if elapsed >= budget / 4 or count >= 1 << 20:
            break
        count *= 2
    return max(1, round(count * budget / elapsed)) if elapsed > 0 else count


def timed_batch(
    call: Callable[[], object], count: int, clock: Callable[[], float] = time.perf_counter
) -> float:
    """Seconds per call over one batch of ``count`` calls."""
    start = clock()
    for _ in range(count):
        call()
    return (clock() - start) / count


def verdict(value: float, target: float | None, below: bool = True) -> str:
    """ "met" / "MISSED" against a target (an upper bound unless ``below`` is False), or "-"."""
    if target is None:
        return "-"
    return "met" if (value <= target if below else value >= target) else "MISSED"
