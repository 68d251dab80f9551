"""Expiry through the authorizer cache, black-box over HTTP on the local stack, whose gateway
replays cached authorizer answers as API Gateway does (docs/authorization.md).

Short lifetimes instead of long waits: a leeway of 0 and a 4 s cache TTL, and Supabase tokens
living 8 s (an API token never outlives its subject token, so it lives 8 s too).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.client import Client
from devstack.moto_aws import free_port
from devstack.stack import LocalStack
from devstack.supabase_auth import DEV_EMAIL, DEV_PASSWORD, SupabaseAuthStandIn
from devstack.supabase_dev import LOCAL_JWT_SECRET, hs256_token, user_claims
from tests.cli_support import Cli, ExchangeCounter, serve_stand_in, token_lifetime
from tokengate_cli import TokenSource

pytestmark = pytest.mark.stack

LEEWAY, CACHE_TTL, LIFETIME = 0, 4, 8
TICK = 0.25


@pytest.fixture(scope="module")
def stand_in() -> Iterator[SupabaseAuthStandIn]:
    yield from serve_stand_in()


@pytest.fixture(scope="module")
def stack(stand_in: SupabaseAuthStandIn) -> Iterator[LocalStack]:
    saved = dict(os.environ)
    running = LocalStack(
        free_port(),
        stand_in.url,
        LOCAL_JWT_SECRET,
        parameters={"LeewaySeconds": str(LEEWAY), "AuthorizerCacheTtl": str(CACHE_TTL)},
    ).start()
    yield running
    running.stop()
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def client(stack: LocalStack) -> Client:
    return Client(stack.base_url)


class Invocations:
    """Counts an authorizer function's invocations (the gateway's cache misses)."""

    def __init__(self, stack: LocalStack, function: str) -> None:
        assert stack.gateway is not None
        self.count = 0
        self._lock = threading.Lock()
        handlers = stack.gateway.handlers
        inner: Callable[..., Any] = handlers[function]

        def counting(event: dict[str, Any], context: Any) -> Any:
            with self._lock:
                self.count += 1
            return inner(event, context)

        handlers[function] = counting


def supabase_token(stand_in: SupabaseAuthStandIn, lifetime: int, **claims: Any) -> str:
    return minted(stand_in, lifetime, **claims)[0]


def minted(stand_in: SupabaseAuthStandIn, lifetime: int, **claims: Any) -> tuple[str, int]:
    """A development Supabase token (as ``make token LIFETIME=...`` mints it) and its exp."""
    values = user_claims(stand_in.url, lifetime=lifetime, **claims)
    return hs256_token(values, LOCAL_JWT_SECRET), int(values["exp"])


def test_no_cached_allow_is_replayed_after_exp(
    client: Client, stand_in: SupabaseAuthStandIn
) -> None:
    """A token with a few seconds left is used again and again through the cache: 200 while it
    is valid, 401 from its exp + leeway on, at both authorizers; /token's expires_in is the
    time it really worked."""
    subject, exp = minted(stand_in, LIFETIME)
    before = int(time.time())
    status, _, body = client.exchange(subject)
    assert status == 200, body
    api_token = body["access_token"]
    # The token works at the gateway until exp + leeway - cache TTL: that is what /token says.
    assert exp - CACHE_TTL - int(time.time()) <= body["expires_in"] <= exp - CACHE_TTL - before
    promised = before + body["expires_in"]

    seen: dict[str, list[tuple[float, int]]] = {"/whoami": [], "/supabase/whoami": []}
    while time.time() < exp + LEEWAY + 1.5:
        for path, token in (("/whoami", api_token), ("/supabase/whoami", subject)):
            sent = time.time()
            seen[path].append((sent, client.get(path, token)[0]))
        time.sleep(TICK)

    for path, answers in seen.items():
        assert answers[0][1] == 200, path
        late = [round(sent - exp, 2) for sent, status in answers if status == 200]
        assert all(when < LEEWAY for when in late), f"{path}: 200 at exp + {late[-1]} s"
        assert {status for sent, status in answers if sent >= exp + LEEWAY} == {401}, path
        assert {status for sent, status in answers if sent < promised - 0.5} == {200}, path


def test_the_gateway_caches_allow_and_deny_for_the_template_ttl_and_never_a_401(
    stack: LocalStack, client: Client, stand_in: SupabaseAuthStandIn
) -> None:
    calls = Invocations(stack, "ApiTokenAuthorizerFunction")
    read = client.exchange(supabase_token(stand_in, 3600))[2]["access_token"]
    write_only = client.exchange(
        supabase_token(stand_in, 3600, app_metadata={"provider": "email", "api_scopes": ["write"]}),
        scope="write",
    )[2]["access_token"]
    forged = read[:-6] + ("AAAAAA" if not read.endswith("AAAAAA") else "BBBBBB")

    started = time.monotonic()
    for token, status in ((read, 200), (write_only, 403)):
        first = calls.count
        assert client.get("/whoami", token)[0] == status
        assert client.get("/whoami", token)[0] == status
        assert calls.count == first + 1  # the second answer was replayed (Allow and Deny alike)
    first = calls.count
    assert client.get("/whoami", forged)[0] == 401
    assert client.get("/whoami", forged)[0] == 401
    assert calls.count == first + 2  # a 401 is not cached
    assert time.monotonic() - started < CACHE_TTL  # all of it within one TTL

    time.sleep(max(0.0, started + CACHE_TTL - time.monotonic()) + 0.2)
    first = calls.count
    assert client.get("/whoami", read)[0] == 200
    assert calls.count == first + 1  # the TTL ran out: asked again


def test_the_cli_refreshes_on_expires_in_and_never_meets_a_401(
    tmp_path: Path, stack: LocalStack, stand_in: SupabaseAuthStandIn
) -> None:
    """The CLI's library, calling through the cache with tokens that work only for a few
    seconds at the gateway: it re-exchanges by what /token said, so every call gets a 200."""
    cli = Cli(tmp_path / "home", stack, stand_in)
    exchanges = ExchangeCounter(stack)
    with token_lifetime(stand_in, LIFETIME):
        signed_in = cli.run(
            "login", "--email", DEV_EMAIL, "--password-stdin", input=DEV_PASSWORD + "\n"
        )
        assert signed_in.returncode == 0, signed_in.stderr
        source = TokenSource(home=cli.home, api_url=stack.base_url, min_ttl=2)
        client = Client(stack.base_url)
        statuses = []
        ends = time.time() + 2 * LIFETIME
        while time.time() < ends:
            statuses.append(client.get("/whoami", source.token())[0])
            time.sleep(TICK)
    assert set(statuses) == {200}
    # Each token was used for what /token promised (8 - 4 s) less --min-ttl, then replaced.
    assert 3 <= exchanges.count <= 2 * LIFETIME
