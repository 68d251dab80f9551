"""The invocation's time budget, the EMF helper, and the deadline-bounded transport's plumbing."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import FakeClock
from tests.slow_servers import ShortLivedContext
from tokengate.budget import Budget, Deadline
from tokengate.emf import EmfCounter, emf_line
from tokengate.errors import DependencyUnavailableError
from tokengate.http import HttpClient

pytestmark = pytest.mark.usefixtures("without_gc_pauses")  # timed against a context

seconds = st.floats(min_value=-5, max_value=30, allow_nan=False)
caps = st.floats(min_value=0.001, max_value=10, allow_nan=False)


@given(left=seconds, cap=caps)
def test_an_operation_gets_its_cap_or_what_is_left(left: float, cap: float) -> None:
    clock = FakeClock(0.0)
    deadline = Deadline(clock.now + left, clock)
    if left <= 0:
        with pytest.raises(DependencyUnavailableError) as caught:
            deadline.timeout(cap, "kms_unavailable")
        assert caught.value.reason == "kms_unavailable"
    else:
        assert deadline.timeout(cap, "kms_unavailable") == (cap if cap < left else left)


@given(outer=seconds, inner=seconds)
def test_a_nested_budget_never_extends_the_one_around_it(outer: float, inner: float) -> None:
    clock = FakeClock(0.0)
    budget = Budget(clock=clock)
    with budget.within(outer) as first, budget.within(inner) as second:
        assert first is not None and second is not None
        assert second.at == clock.now + max(0.0, min(max(outer, 0.0), inner))
        assert budget.deadline() is second
    assert first.at == clock.now + max(outer, 0.0)


@given(millis=st.integers(min_value=0, max_value=900_000), margin=st.floats(0, 2))
def test_the_invocation_budget_is_the_remaining_time_minus_the_margin(
    millis: int, margin: float
) -> None:
    class Context:
        def get_remaining_time_in_millis(self) -> int:
            return millis

    clock = FakeClock(0.0)
    budget = Budget(margin=margin, clock=clock)
    with budget.invocation(Context()):
        assert budget.deadline().remaining() == pytest.approx(
            max(0.0, millis / 1000 - margin), abs=1e-9
        )


def test_nothing_leaks_from_one_invocation_into_the_next() -> None:
    clock = FakeClock(0.0)
    budget = Budget(unbounded=3.0, clock=clock)
    with budget.within(0.0), pytest.raises(DependencyUnavailableError):
        budget.deadline().timeout(1.0, "x")
    assert budget.deadline().remaining() == 3.0  # outside: a fresh one-call cap
    with pytest.raises(RuntimeError), budget.within(0.0):
        raise RuntimeError("the handler failed")
    assert budget.deadline().remaining() == 3.0


def test_threads_each_see_their_own_invocation() -> None:
    budget = Budget(unbounded=3.0)
    seen: list[float] = []
    with budget.within(0.5):
        thread = threading.Thread(target=lambda: seen.append(budget.deadline().remaining()))
        thread.start()
        thread.join(10)
    assert seen and seen[0] > 2.0


# -- EMF: each line checked against the Embedded Metric Format specification -------------------


def check_emf(line: str) -> dict[str, object]:
    """The EMF specification's rules, written out: a root ``_aws`` with an integer millisecond
    ``Timestamp`` and ``CloudWatchMetrics`` directives; each directive a ``Namespace`` (1-255
    characters), ``Dimensions`` (a list of dimension sets, each at most 30 names, each name a
    top-level string member) and ``Metrics`` (each ``Name`` a top-level number member, ``Unit``
    one of CloudWatch's units)."""
    document: dict[str, Any] = json.loads(line)
    assert "\n" not in line
    meta = document["_aws"]
    assert isinstance(meta["Timestamp"], int) and meta["Timestamp"] > 1_500_000_000_000
    for directive in meta["CloudWatchMetrics"]:
        assert isinstance(directive["Namespace"], str) and 1 <= len(directive["Namespace"]) <= 255
        for dimension_set in directive["Dimensions"]:
            assert 1 <= len(dimension_set) <= 30
            for name in dimension_set:
                assert isinstance(document[name], str) and 1 <= len(document[name]) <= 1024
        assert 1 <= len(directive["Metrics"]) <= 100
        for metric in directive["Metrics"]:
            assert isinstance(document[metric["Name"]], (int, float))
            assert metric["Unit"] in {"Count", "Seconds", "Milliseconds", "None", "Bytes"}
    return document


def test_an_emf_line_follows_the_specification() -> None:
    lines: list[str] = []
    EmfCounter("TokenGate", "tokengate", write=lines.append).count(
        "JwksKeyDropped", reason="RSA key under 2048 bits"
    )
    (line,) = lines
    document = check_emf(line)
    assert document["JwksKeyDropped"] == 1
    assert document["reason"] == "RSA key under 2048 bits"
    assert document["service"] == "tokengate"


def test_the_emf_check_can_fail() -> None:
    broken = json.loads(emf_line("TokenGate", "X", {"reason": "r"}))
    del broken["reason"]
    with pytest.raises(KeyError):
        check_emf(json.dumps(broken))


# -- the transport: keep-alive reuse, and a server that closed an idle connection --------------


@pytest.fixture
def keepalive() -> Iterator[tuple[str, list[int]]]:
    connections: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            connections.append(1)

        def do_GET(self) -> None:
            body = b'{"keys":[]}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            if self.path == "/close":
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", connections
    server.shutdown()
    server.server_close()


def test_idle_connections_are_reused(keepalive: tuple[str, list[int]]) -> None:
    url, connections = keepalive
    client = HttpClient()
    try:
        for _ in range(5):
            assert client.get(f"{url}/keys", {}, "x").status == 200
        assert len(connections) == 1
        assert client.get(f"{url}/close", {}, "x").body == b'{"keys":[]}'
        assert client.get(f"{url}/keys", {}, "x").status == 200
        assert len(connections) == 2  # a connection the server ends is not reused
    finally:
        client.close()


def test_a_budget_spent_mid_call_fails_with_the_callers_reason() -> None:
    budget = Budget(margin=0.0)
    context = ShortLivedContext(50)
    with budget.invocation(context), pytest.raises(DependencyUnavailableError) as caught:
        HttpClient(budget).get("http://127.0.0.1:1/", {}, "session_check_unavailable")
    assert caught.value.reason == "session_check_unavailable"


# -- a loaded-once value: nobody waits on another's slow load past their budget -----------------


def test_a_slow_load_holds_no_caller_past_its_budget() -> None:
    from tokengate.cache import CachedValue

    release, entered = threading.Event(), threading.Event()
    loads = iter(["first", "second"])

    def load() -> str:
        entered.set()
        assert release.wait(30)
        return next(loads)

    # 1 s between the budget's end and the function's: a caller that gives up at its deadline
    # answers in time on a loaded machine too; one that waited for the load (30 s) would not.
    budget = Budget(margin=1.0)
    clock = FakeClock()
    value = CachedValue(load, max_age=60, clock=clock, budget=budget, reason="kms_unavailable")
    loader = threading.Thread(target=value.get, daemon=True)
    loader.start()
    try:
        assert entered.wait(10)
        context = ShortLivedContext(2000)
        with budget.invocation(context), pytest.raises(DependencyUnavailableError) as caught:
            value.get()  # nothing loaded yet, and the load is someone else's
        assert caught.value.reason == "kms_unavailable"
        assert context.answered_in_time()
    finally:
        release.set()  # never a thread left hanging into another test
        loader.join(10)
    assert value.get() == "first"
    release.clear()
    entered.clear()
    clock.advance(61)  # stale: the next caller reloads, slowly
    loader = threading.Thread(target=value.get, daemon=True)
    loader.start()
    try:
        assert entered.wait(10)
        context = ShortLivedContext(2000)
        with budget.invocation(context):
            assert value.get() == "first"  # the last good value serves meanwhile
        assert context.answered_in_time()
    finally:
        release.set()
        loader.join(10)


@given(millis=st.integers(min_value=0, max_value=900_000), later=st.floats(0, 1000))
def test_the_invocation_deadline_does_not_move_when_it_is_first_read_later(
    millis: int, later: float
) -> None:
    """The context is read when a call first needs the deadline; Lambda's remaining time counts
    down to a fixed point, so reading it later gives the same deadline."""
    clock = FakeClock(0.0)

    class Context:
        def get_remaining_time_in_millis(self) -> int:
            return max(0, int(millis - clock.now * 1000))

    budget = Budget(margin=0.5, clock=clock)
    with budget.invocation(Context()):
        clock.now = later / 1000
        assert budget.deadline().at == pytest.approx(
            max(millis / 1000 - 0.5, later / 1000), abs=2e-3
        )


def test_run_is_one_invocation_and_leaves_nothing_behind() -> None:
    clock = FakeClock(0.0)

    class Context:
        def get_remaining_time_in_millis(self) -> int:
            return 2500

    budget = Budget(margin=0.5, unbounded=3.0, clock=clock)
    seen = budget.run(Context(), lambda _: budget.deadline().remaining(), None)
    assert seen == pytest.approx(2.0)
    with pytest.raises(RuntimeError):
        budget.run(Context(), lambda _: (_ for _ in ()).throw(RuntimeError("failed")), None)
    assert budget.deadline().remaining() == 3.0  # outside: a fresh one-call cap
    nested = budget.run(Context(), lambda _: _within(budget, 10.0), None)
    assert nested == pytest.approx(2.0)  # a window inside never extends the invocation


def test_a_run_inside_an_invocation_leaves_the_deadline_it_read_fixed() -> None:
    """A nested run reads the invocation's deadline to bound its own; once read it stays fixed
    for the rest of the invocation, as when the invocation itself first needs it."""
    clock = FakeClock(0.0)
    wall = {"remaining": 2500}

    class Context:
        def get_remaining_time_in_millis(self) -> int:
            return wall["remaining"]

    budget = Budget(margin=0.5, clock=clock)
    with budget.invocation(Context()):
        assert budget.run(Context(), lambda _: budget.deadline().at, None) == pytest.approx(2.0)
        wall["remaining"] = 60_000  # the wall clock stepped back a minute
        assert budget.deadline().at == pytest.approx(2.0)


def _within(budget: Budget, seconds: float) -> float:
    with budget.within(seconds) as deadline:
        assert deadline is not None
        return deadline.remaining()


@given(outer=seconds, millis=st.integers(min_value=0, max_value=900_000))
def test_an_invocation_opened_inside_a_window_never_extends_it(outer: float, millis: int) -> None:
    """Both ways of opening an invocation (``run`` and ``invocation``) keep a window around them:
    the earlier of the two deadlines."""
    clock = FakeClock(0.0)

    class Context:
        def get_remaining_time_in_millis(self) -> int:
            return max(0, int(millis - clock.now * 1000))

    budget = Budget(margin=0.5, clock=clock)
    expected = min(max(outer, 0.0), max(millis / 1000 - 0.5, 0.0))
    with budget.within(outer):
        seen = budget.run(Context(), lambda _: budget.deadline().at, None)
        assert seen == pytest.approx(expected, abs=1e-9)
        with budget.invocation(Context()):
            assert budget.deadline().at == pytest.approx(expected, abs=1e-9)
        assert budget.deadline().at == pytest.approx(max(outer, 0.0), abs=1e-9)


def test_the_local_stack_context_counts_down_to_a_fixed_point() -> None:
    """The deadline is read from the context when a call first needs it, and again by later
    calls: the local stack's context counts down as Lambda's does, so every read gives the one
    deadline its invocation started with."""
    from devstack.lambda_runtime import LambdaContext

    clock = FakeClock(0.0)
    context = LambdaContext("f", clock=clock)
    budget = Budget(margin=0.5, clock=clock)

    def reads(_: None) -> tuple[float, float]:
        first = budget.deadline().at
        clock.now += 2.0
        return first, budget.deadline().at

    first, later = budget.run(context, reads, None)
    assert later == pytest.approx(first, abs=2e-3)


def test_an_invocation_deadline_is_read_once_and_then_fixed() -> None:
    """Lambda counts the remaining time on the wall clock; once read, the invocation's deadline
    stays on the monotonic clock, so a wall-clock step cannot move it, and nothing outlives run."""
    clock = FakeClock(0.0)
    wall = {"remaining": 2500}

    class Context:
        def get_remaining_time_in_millis(self) -> int:
            return wall["remaining"]

    budget = Budget(margin=0.5, unbounded=3.0, clock=clock)

    def handler(_: object) -> tuple[float, float]:
        first = budget.deadline().at
        wall["remaining"] = 60_000  # the wall clock stepped back a minute
        return first, budget.deadline().at

    first, later = budget.run(Context(), handler, None)
    assert first == later == pytest.approx(2.0)
    assert budget.deadline().remaining() == 3.0  # outside: a fresh one-call cap
