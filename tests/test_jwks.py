"""The JWKS client: bounded fetches, caching, cooldown and last-good keys (docs/contract.md §5;
§12 B-9, G-27)."""

from __future__ import annotations

import secrets
import time

import pytest

from tests.conftest import FakeClock, StaticJwksFetcher
from tests.factories import KeyPair, ec_pair
from tests.jwks_server import JwksServer
from tokengate.errors import ConfigurationError, DependencyUnavailableError, InvalidTokenError
from tokengate.jwks import JwksCache, UrllibJwksFetcher, check_jwks_url

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


def test_failed_refresh_keeps_the_last_good_keys(
    clock: FakeClock, fetcher: StaticJwksFetcher, ec_key: KeyPair
) -> None:
    cache = JwksCache(URL, fetcher, clock=clock)
    cache.get(ec_key.kid)
    fetcher.fail = DependencyUnavailableError("jwks_unavailable")
    clock.advance(601)
    assert cache.get(ec_key.kid).kid == ec_key.kid
    clock.advance(3600)
    with pytest.raises(DependencyUnavailableError):
        cache.get(ec_key.kid)  # past max_stale: no longer trusted
    fetcher.fail = None
    clock.advance(10)
    assert cache.get(ec_key.kid).kid == ec_key.kid


def test_failing_jwks_with_nothing_cached_fails_closed_and_is_not_hammered(
    clock: FakeClock, fetcher: StaticJwksFetcher, ec_key: KeyPair
) -> None:
    fetcher.fail = DependencyUnavailableError("jwks_unavailable")
    cache = JwksCache(URL, fetcher, clock=clock)
    for _ in range(50):
        with pytest.raises(DependencyUnavailableError):
            cache.get(ec_key.kid)
    assert fetcher.calls == 1


def test_invalid_documents_keep_the_last_good_keys(
    clock: FakeClock, fetcher: StaticJwksFetcher, ec_key: KeyPair
) -> None:
    cache = JwksCache(URL, fetcher, clock=clock)
    cache.get(ec_key.kid)
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
        UrllibJwksFetcher(timeout=3.5)


# -- the real fetcher against a loopback server -----------------------------------------------


@pytest.fixture
def server(ec_key: KeyPair):  # type: ignore[no-untyped-def]
    with JwksServer({"keys": [ec_key.jwk()]}) as running:
        yield running


def test_fetcher_reads_a_jwks(server: JwksServer, ec_key: KeyPair) -> None:
    cache = JwksCache(server.jwks_url, UrllibJwksFetcher())
    assert cache.get(ec_key.kid).kid == ec_key.kid


@pytest.mark.parametrize("mode", ["error", "redirect", "huge", "invalid"])
def test_fetcher_failures_are_dependency_failures(
    server: JwksServer, mode: str, ec_key: KeyPair
) -> None:
    server.mode = mode
    cache = JwksCache(server.jwks_url, UrllibJwksFetcher())
    with pytest.raises(DependencyUnavailableError):
        cache.get(ec_key.kid)
    assert server.requests == 1  # a redirect is never followed


@pytest.mark.parametrize("mode", ["hang", "trickle"])
def test_fetcher_time_is_bounded(server: JwksServer, mode: str) -> None:
    server.mode = mode
    server.document = {"keys": [ec_pair().jwk() for _ in range(3)]}
    started = time.monotonic()
    with pytest.raises(DependencyUnavailableError):
        UrllibJwksFetcher(timeout=1.0).fetch(server.jwks_url)
    assert time.monotonic() - started < 3.0


def test_fetcher_refuses_a_connection_refused_port() -> None:
    with pytest.raises(DependencyUnavailableError):
        UrllibJwksFetcher(timeout=1.0).fetch("http://127.0.0.1:1/jwks.json")
