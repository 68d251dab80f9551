"""The JWKS client: bounded fetches, caching, cooldown and last-good keys (docs/contract.md §5;
§12 B-9, G-27)."""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import FakeClock, StaticJwksFetcher
from tests.factories import KeyPair, ec_pair, rsa_pair
from tests.jwks_server import JwksServer
from tests.slow_servers import MODES, ShortLivedContext, SlowServer, refused_url
from tokengate.budget import Budget
from tokengate.emf import EmfCounter
from tokengate.errors import ConfigurationError, DependencyUnavailableError, InvalidTokenError
from tokengate.fetch import DocumentFetcher
from tokengate.http import HttpClient
from tokengate.jwks import STALE_RETRY_SECONDS, HttpJwksFetcher, JwksCache, check_jwks_url

pytestmark = pytest.mark.usefixtures("without_gc_pauses")  # timed against a context

URL = "https://project.supabase.co/auth/v1/.well-known/jwks.json"


@pytest.fixture
def fetcher(ec_key: KeyPair) -> StaticJwksFetcher:
    return StaticJwksFetcher(ec_key)


def test_fresh_cache_makes_no_fetch(
    clock: FakeClock, fetcher: StaticJwksFetcher, ec_key: KeyPair
) -> None:
    cache = JwksCache(URL, fetcher, clock=clock)
    for _ in range(100):
        assert cache.get(ec_key.kid).kid == ec_key.kid
        clock.advance(5)
    assert fetcher.calls == 1


def test_cache_expires_after_max_age(
    clock: FakeClock, fetcher: StaticJwksFetcher, ec_key: KeyPair
) -> None:
    cache = JwksCache(URL, fetcher, clock=clock, max_age=600)
    cache.get(ec_key.kid)
    clock.advance(599)
    cache.get(ec_key.kid)
    assert fetcher.calls == 1
    clock.advance(1)
    cache.get(ec_key.kid)
    assert fetcher.calls == 2


def test_unknown_kids_in_bulk_cost_one_fetch_per_cooldown(
    clock: FakeClock, fetcher: StaticJwksFetcher, ec_key: KeyPair
) -> None:
    cache = JwksCache(URL, fetcher, clock=clock, cooldown=10)
    cache.get(ec_key.kid)
    assert fetcher.calls == 1
    for window in range(1, 4):
        clock.advance(10)
        for _ in range(1000):
            with pytest.raises(InvalidTokenError):
                cache.get(secrets.token_urlsafe(12))
            clock.advance(0.005)  # 1,000 tokens spread over 5 s of one window
        assert fetcher.calls == 1 + window


def stale_cache(clock: FakeClock, fetcher: StaticJwksFetcher, key: KeyPair) -> JwksCache:
    """A cache that fetched ``key`` once, whose fetcher now fails, 601 s later (past max_age)."""
    cache = JwksCache(URL, fetcher, clock=clock)
    cache.get(key.kid)
    fetcher.fail = DependencyUnavailableError("jwks_unavailable")
    clock.advance(601)
    return cache


def test_failed_refresh_keeps_the_last_good_keys(
    clock: FakeClock, fetcher: StaticJwksFetcher, ec_key: KeyPair
) -> None:
    cache = stale_cache(clock, fetcher, ec_key)
    assert cache.get(ec_key.kid).kid == ec_key.kid
    clock.advance(3600)
    with pytest.raises(DependencyUnavailableError):
        cache.get(ec_key.kid)  # past max_stale: no longer trusted
    fetcher.fail = None
    clock.advance(STALE_RETRY_SECONDS)
    assert cache.get(ec_key.kid).kid == ec_key.kid


def test_an_outage_is_reprobed_while_stale_keys_serve_not_on_every_call(
    clock: FakeClock, fetcher: StaticJwksFetcher, ec_key: KeyPair
) -> None:
    cache = stale_cache(clock, fetcher, ec_key)
    for _ in range(50):
        assert cache.get(ec_key.kid).kid == ec_key.kid
    assert fetcher.calls == 1 + 2  # the first fetch, then one failed refresh retried once
    clock.advance(STALE_RETRY_SECONDS)
    cache.get(ec_key.kid)
    assert fetcher.calls == 1 + 2 + 2


def test_a_failed_fetch_is_retried_once_at_once(
    clock: FakeClock, fetcher: StaticJwksFetcher, ec_key: KeyPair
) -> None:
    fetcher.fail_next = 1
    cache = JwksCache(URL, fetcher, clock=clock)
    assert cache.get(ec_key.kid).kid == ec_key.kid
    assert fetcher.calls == 2


def test_a_blip_at_cold_start_does_not_refuse_the_next_caller(
    clock: FakeClock, fetcher: StaticJwksFetcher, ec_key: KeyPair
) -> None:
    """No cooldown after a failed fetch: the next caller fetches again (and succeeds)."""
    fetcher.fail_next = 2  # the fetch and its retry both fail
    cache = JwksCache(URL, fetcher, clock=clock)
    with pytest.raises(DependencyUnavailableError):
        cache.get(ec_key.kid)
    clock.advance(0.1)
    assert cache.get(ec_key.kid).kid == ec_key.kid
    assert fetcher.calls == 3


def test_failing_jwks_with_nothing_cached_fails_closed_for_every_caller(
    clock: FakeClock, fetcher: StaticJwksFetcher, ec_key: KeyPair
) -> None:
    fetcher.fail = DependencyUnavailableError("jwks_unavailable")
    cache = JwksCache(URL, fetcher, clock=clock)
    for _ in range(50):
        with pytest.raises(DependencyUnavailableError):
            cache.get(ec_key.kid)
    assert fetcher.calls == 100  # each caller: one fetch and one retry, never more


def test_invalid_documents_keep_the_last_good_keys(
    clock: FakeClock, fetcher: StaticJwksFetcher, ec_key: KeyPair
) -> None:
    cache = JwksCache(URL, fetcher, clock=clock)
    cache.get(ec_key.kid)
    bad: Any
    for bad in ({"keys": "nope"}, [], {"no": "keys"}):
        fetcher.document = bad
        clock.advance(601)
        assert cache.get(ec_key.kid).kid == ec_key.kid


@pytest.mark.parametrize(
    "url",
    [
        "http://project.supabase.co/jwks",
        "ftp://127.0.0.1/jwks",
        "file:///etc/passwd",
        "http://10.0.0.1/jwks",
        "https:///nohost",
        "gopher://x",
    ],
)
def test_jwks_url_must_be_https_or_loopback(url: str) -> None:
    with pytest.raises(ConfigurationError):
        check_jwks_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://x.supabase.co/a",
        "http://127.0.0.1:54321/a",
        "http://localhost/a",
        "http://[::1]:8/a",
    ],
)
def test_jwks_url_accepted_forms(url: str) -> None:
    assert check_jwks_url(url) == url


def test_cache_settings_are_bounded(fetcher: StaticJwksFetcher) -> None:
    with pytest.raises(ConfigurationError):
        JwksCache(URL, fetcher, max_age=601)
    with pytest.raises(ConfigurationError):
        JwksCache(URL, fetcher, cooldown=9)
    with pytest.raises(ConfigurationError):
        HttpClient(timeout=3.5)


# -- what a refresh reports: failures and dropped entries, as log lines and EMF counts ----------


class Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str) -> None:
        self.lines.append(line)

    def counts(self, metric: str) -> list[dict[str, Any]]:
        return [d for d in map(json.loads, self.lines) if metric in d]


def test_dropped_entries_are_logged_and_counted_with_their_reason(
    clock: FakeClock,
    fetcher: StaticJwksFetcher,
    ec_key: KeyPair,
    caplog: pytest.LogCaptureFixture,
) -> None:
    weak = rsa_pair(bits=1024, kid="weak")
    dup_a, dup_b = ec_pair("twice"), ec_pair("twice")
    encryption = ec_pair("enc").jwk() | {"use": "enc"}
    fetcher.document = {
        "keys": [ec_key.jwk(), weak.jwk(), dup_a.jwk(), dup_b.jwk(), encryption, "junk"]
    }
    lines = Lines()
    cache = JwksCache(URL, fetcher, clock=clock, metrics=EmfCounter(write=lines))
    caplog.set_level("WARNING", logger="tokengate.jwks")
    assert cache.get(ec_key.kid).kid == ec_key.kid
    reasons = sorted(d["reason"] for d in lines.counts("JwksKeyDropped"))
    assert len(reasons) == 5
    assert reasons.count("duplicate kid") == 2
    assert "not a signature key" in reasons
    assert "not an object" in reasons
    assert len(set(reasons)) == 4  # the weak key with a reason of its own
    logged = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert [r.getMessage() for r in caplog.records] == ["JWKS entry dropped"] * 5
    emitted = " ".join(lines.lines)
    for jwk in (weak.jwk(), dup_a.jwk(), dup_b.jwk(), encryption):
        for member in ("n", "x", "y"):  # never key material
            if member in jwk:
                assert jwk[member] not in logged
                assert jwk[member] not in emitted


def test_refresh_failures_are_logged_and_counted(
    clock: FakeClock,
    fetcher: StaticJwksFetcher,
    ec_key: KeyPair,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fetcher.fail = DependencyUnavailableError("jwks_unavailable", "TimeoutError")
    lines = Lines()
    cache = JwksCache(URL, fetcher, clock=clock, metrics=EmfCounter(write=lines))
    caplog.set_level("WARNING", logger="tokengate.jwks")
    assert cache.prefetch() is False  # not fatal
    with pytest.raises(DependencyUnavailableError):
        cache.get(ec_key.kid)
    assert [d["trigger"] for d in lines.counts("JwksRefreshFailed")] == ["prefetch", "empty"]
    failed = [r for r in caplog.records if r.getMessage() == "JWKS refresh failed"]
    assert [r.__dict__["reason"] for r in failed] == ["TimeoutError", "TimeoutError"]


def test_prefetch_loads_the_keys_before_the_first_caller(
    clock: FakeClock, fetcher: StaticJwksFetcher, ec_key: KeyPair
) -> None:
    cache = JwksCache(URL, fetcher, clock=clock)
    assert cache.prefetch() is True
    assert cache.get(ec_key.kid).kid == ec_key.kid
    assert fetcher.calls == 1


def test_prefetch_does_not_start_the_unknown_kid_cooldown(
    clock: FakeClock, fetcher: StaticJwksFetcher, ec_key: KeyPair
) -> None:
    rotated = ec_pair("rotated-in")
    cache = JwksCache(URL, fetcher, clock=clock)
    cache.prefetch()
    fetcher.document = {"keys": [ec_key.jwk(), rotated.jwk()]}
    clock.advance(1)
    assert cache.get(rotated.kid).kid == rotated.kid


# -- the lock is never held against a caller past its budget ------------------------------------


class BlockingFetcher(StaticJwksFetcher):
    """Blocks inside fetch until released: a fetch that hangs while holding the cache's lock."""

    def __init__(self, *keys: KeyPair) -> None:
        super().__init__(*keys)
        self.entered = threading.Event()
        self.release = threading.Event()

    def fetch(self, url: str) -> bytes:
        self.entered.set()
        assert self.release.wait(30)
        return super().fetch(url)


# The contexts below leave their callers 1 s (the margin) between the budget's end and the
# function's: a caller that gives up at its deadline answers in time even on a loaded machine,
# and one that queued behind the hung fetch (30 s) would not.
MARGIN, CONTEXT_MILLIS = 1.0, 2000


def test_callers_do_not_queue_behind_a_hung_fetch_past_their_budget(ec_key: KeyPair) -> None:
    fetcher = BlockingFetcher(ec_key)
    budget = Budget(margin=MARGIN)
    cache = JwksCache(URL, fetcher, budget=budget)
    first = threading.Thread(target=lambda: cache.get(ec_key.kid), daemon=True)
    first.start()
    try:
        assert fetcher.entered.wait(10)
        context = ShortLivedContext(CONTEXT_MILLIS)
        with budget.invocation(context), pytest.raises(DependencyUnavailableError):
            cache.get(ec_key.kid)  # nothing cached, and the refresh is someone else's
        assert context.answered_in_time()
        assert not fetcher.release.is_set()  # answered while the hung fetch still held the lock
    finally:
        fetcher.release.set()  # never a thread left hanging into another test
        first.join(10)
    with budget.invocation(ShortLivedContext(CONTEXT_MILLIS)):
        assert cache.get(ec_key.kid).kid == ec_key.kid


def test_stale_keys_answer_while_another_caller_refreshes(
    clock: FakeClock, ec_key: KeyPair
) -> None:
    fetcher = BlockingFetcher(ec_key)
    fetcher.release.set()
    budget = Budget(margin=MARGIN)
    cache = JwksCache(URL, fetcher, clock=clock, budget=budget)
    cache.get(ec_key.kid)
    fetcher.release.clear()
    fetcher.entered.clear()
    clock.advance(601)  # stale: the next caller refreshes, and hangs
    first = threading.Thread(target=lambda: cache.get(ec_key.kid), daemon=True)
    first.start()
    try:
        assert fetcher.entered.wait(10)
        context = ShortLivedContext(CONTEXT_MILLIS)
        with budget.invocation(context):
            assert cache.get(ec_key.kid).kid == ec_key.kid
        assert context.answered_in_time()
    finally:
        fetcher.release.set()
        first.join(10)


# -- the real fetcher against loopback servers ----------------------------------------------


@pytest.fixture
def server(ec_key: KeyPair) -> Iterator[JwksServer]:
    with JwksServer({"keys": [ec_key.jwk()]}) as running:
        yield running


def test_fetcher_reads_a_jwks(server: JwksServer, ec_key: KeyPair) -> None:
    cache = JwksCache(server.jwks_url, HttpJwksFetcher())
    assert cache.get(ec_key.kid).kid == ec_key.kid


@pytest.mark.parametrize("mode", ["error", "redirect", "huge", "invalid"])
def test_fetcher_failures_are_dependency_failures(
    server: JwksServer, mode: str, ec_key: KeyPair
) -> None:
    server.mode = mode
    cache = JwksCache(server.jwks_url, HttpJwksFetcher())
    with pytest.raises(DependencyUnavailableError):
        cache.get(ec_key.kid)
    assert server.requests == 2  # one retry at once; a redirect is never followed


@pytest.mark.parametrize("mode", MODES)
def test_hostile_upstreams_answer_before_the_deadline(mode: str, ec_key: KeyPair) -> None:
    """Trickled status line, headers or body, a hang after connect, an endless body, a redirect:
    each ends in DependencyUnavailableError before the invocation's deadline, however long the
    server would go on (60 s)."""
    budget = Budget(margin=0.3)
    with SlowServer(mode, interval=0.1, lifetime=60).running() as slow:
        cache = JwksCache(slow.url, HttpJwksFetcher(DocumentFetcher(budget)), budget=budget)
        context = ShortLivedContext(1500)
        with budget.invocation(context), pytest.raises(DependencyUnavailableError):
            cache.get(ec_key.kid)
        assert context.answered_in_time()
        assert slow.connections >= 1


def test_the_sixty_second_header_trickle_ends_within_the_budget() -> None:
    """One header line every 2 s held a call for 60 s when only body reads were bounded."""
    budget = Budget(margin=0.5)
    with SlowServer("trickle-headers", interval=2.0, lifetime=60).running() as slow:
        fetcher = HttpJwksFetcher(DocumentFetcher(budget))
        context = ShortLivedContext(3000)
        with budget.invocation(context), pytest.raises(DependencyUnavailableError):
            fetcher.fetch(slow.url)
        assert context.answered_in_time()


def test_fetcher_refuses_a_connection_refused_port() -> None:
    budget = Budget(margin=0.3)
    context = ShortLivedContext(1500)
    with budget.invocation(context), pytest.raises(DependencyUnavailableError):
        HttpJwksFetcher(DocumentFetcher(budget)).fetch(refused_url())
    assert context.answered_in_time()


def test_a_spent_budget_starts_no_fetch(server: JwksServer) -> None:
    budget = Budget(margin=0.5)
    with budget.invocation(ShortLivedContext(400)), pytest.raises(DependencyUnavailableError):
        HttpJwksFetcher(DocumentFetcher(budget)).fetch(server.jwks_url)
    assert server.requests == 0
