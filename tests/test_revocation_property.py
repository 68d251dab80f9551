"""Random sequences of exchange / revoke / decide across sessions and users (docs/revocation.md):
after the bound a revoked session's tokens are never allowed, and a session never revoked is
never refused. The store runs on moto, the decisions on the real principals of both authorizers
(fetching the published list through a fetcher), time on an injected clock; the oracle is a
plain model of who was revoked when, written without the product's code."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from devstack.moto_aws import create_revocation_table
from tests.conftest import FakeClock
from tests.factories import HS_SECRET, SUPABASE_ISSUER, KeyPair, hs_token, supabase_claims
from tokengate.apitoken import ApiTokenIssuer
from tokengate.authorizer import AuthRequest
from tokengate.aws import DynamoTable
from tokengate.errors import InvalidTokenError, TokenGateError
from tokengate.keys import HmacKey
from tokengate.principals import ApiTokenPrincipals, StatusLists, SupabasePrincipals
from tokengate.revocation import RevocationStore, StatusListPublisher, list_uri
from tokengate.scopes import ScopePolicy
from tokengate.supabase import SupabasePolicy, SupabaseTokenVerifier

ISSUER = "https://api.example.com"
REFRESH = 15
USERS = [str(uuid.UUID(int=n + 1, version=4)) for n in range(3)]
REQUEST = AuthRequest("TOKEN", None, "arn:aws:execute-api:us-east-1:123456789012:abc/v1", "")


class Published:
    """What the stack serves over HTTP: the JWKS and the stored status list."""

    def __init__(self, key: KeyPair, store: RevocationStore) -> None:
        self._key = key
        self._store = store

    def fetch(self, url: str) -> bytes:
        if url.endswith("/jwks.json"):
            return json.dumps({"keys": [self._key.jwk()]}).encode()
        return (self._store.stored_list() or "").encode()


class Racing(DynamoTable):
    """The table on moto, with a request that lands just before or just after the transaction
    writing a new session (at most once): a revocation racing the exchange."""

    def __init__(self, client: Any, name: str) -> None:
        super().__init__(client, name)
        self.before: Callable[[], None] | None = None
        self.after: Callable[[], None] | None = None

    def transact_write(self, operations: list[dict[str, dict[str, Any]]]) -> None:
        before, after = self.before, self.after
        self.before = None
        if before is not None:
            before()
        # A refused transaction wrote nothing: the revocation stays due (self.after), to land
        # after the exchange is over, as after an exchange that wrote no new session.
        super().transact_write(operations)
        self.after = None
        if after is not None:
            after()


class World:
    def __init__(self, key: KeyPair, clock: FakeClock) -> None:
        client = boto3.client("dynamodb", region_name="us-east-1")
        table = create_revocation_table(client, f"revocation-{uuid.uuid4().hex[:8]}")
        self.clock = clock
        self.table = Racing(client, table)
        self.store = RevocationStore(self.table, clock)
        self.publisher = StatusListPublisher(self.store, key, clock)  # type: ignore[arg-type]
        self.issuer = ApiTokenIssuer(key, 3600, clock)  # type: ignore[arg-type]
        fetcher = Published(key, self.store)
        self.publisher.publish(ISSUER)
        self.api = ApiTokenPrincipals(
            issuer=ISSUER,
            audience="api",
            leeway=30,
            context_claims=(),
            clock=clock,
            fetcher=fetcher,
            status_lists=StatusLists(fetcher, clock=clock, refresh=REFRESH),
        )
        verifier = SupabaseTokenVerifier(
            SupabasePolicy(SUPABASE_ISSUER),
            hmac_key=lambda: HmacKey(HS_SECRET.encode()),
            clock=clock,
        )
        self.supabase = SupabasePrincipals(
            verifier,
            ScopePolicy(("read",), ("read",)),
            (),
            status_lists=StatusLists(fetcher, clock=clock, refresh=REFRESH),
            issuer=ISSUER,
        )

    def exchange(self, user: str, session: str) -> tuple[str, str | None]:
        now = self.clock()
        supabase = hs_token(supabase_claims(now=now, sub=user, session_id=session))
        try:
            idx, _ = self.store.admit(session, user, int(now))
        except InvalidTokenError as exc:
            if exc.reason != "revoked":
                raise
            return supabase, None
        status = {"status_list": {"idx": idx, "uri": list_uri(ISSUER)}}
        issued = self.issuer.issue(
            issuer=ISSUER,
            subject=user,
            audiences=["api"],
            scopes=["read"],
            client_id="cli",
            session_id=session,
            not_after=now + 3600,
            extra_claims={"status": status},
        )
        return supabase, issued.token

    def allows(self, principals: Any, token: str) -> bool:
        try:
            principals(token, REQUEST)
        except TokenGateError:
            return False
        return True


class Model:
    """Who was revoked when, by the rules of docs/revocation.md alone."""

    def __init__(self) -> None:
        self.created: dict[str, float] = {}  # a session's first exchange that reached the store
        self.revoked_at: dict[str, float] = {}
        self.cutoffs: list[tuple[str, float]] = []  # (user, time) of each user revocation
        self.owner: dict[str, str] = {}

    def exchange_refused(self, user: str, session: str, now: float) -> bool:
        if session in self.revoked_at:
            return True
        self.created.setdefault(session, now)
        return any(u == user and at >= int(now) for u, at in self.cutoffs)

    def revoke_session(self, session: str, now: float) -> None:
        self.revoked_at.setdefault(session, now)

    def revoke_user(self, user: str, now: float) -> None:
        self.cutoffs.append((user, now))
        for session, created in self.created.items():
            if self.owner[session] == user and created <= int(now):
                self.revoked_at.setdefault(session, now)

    def api_revoked_since(self, session: str) -> float | None:
        return self.revoked_at.get(session)

    def supabase_revoked_since(self, user: str, session: str, iat: float) -> float | None:
        times = [t for u, t in self.cutoffs if u == user and int(t) >= int(iat)]
        if session in self.revoked_at:
            times.append(self.revoked_at[session])
        return min(times, default=None)


# Two users with two sessions each: small enough that sequences revisit them.
operation = st.one_of(
    st.tuples(st.just("exchange"), st.integers(0, 1), st.integers(0, 1)),
    st.tuples(st.just("revoke_session"), st.integers(0, 1), st.integers(0, 1)),
    st.tuples(st.just("revoke_user"), st.integers(0, 1), st.just(0)),
    # An exchange of the user's first session with a revocation of the user landing just before
    # (b == 0) or just after (b == 1) the write of a new session.
    st.tuples(st.just("exchange_racing_revoke_user"), st.integers(0, 1), st.integers(0, 1)),
    st.tuples(st.just("advance"), st.sampled_from([1, 7, REFRESH + 1]), st.just(0)),
    st.tuples(st.just("decide"), st.integers(0, 30), st.just(0)),
)


@pytest.fixture(scope="module")
def key() -> KeyPair:
    from tests.factories import rsa_pair

    return rsa_pair()


@pytest.fixture
def moto(aws_env: None) -> Iterator[None]:
    with mock_aws():
        yield


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(operation, min_size=1, max_size=30))
# A revocation racing the exchange of a session the user's revocation refuses: it lands after the
# refused exchange recorded the session, so it revokes it, and a later exchange is refused.
@example(
    operations=[
        ("revoke_user", 0, 0),
        ("exchange_racing_revoke_user", 0, 1),
        ("advance", 1, 0),
        ("exchange", 0, 0),
    ]
)
def test_revoked_sessions_are_refused_after_the_bound_and_no_other(
    moto: None, key: KeyPair, operations: list[tuple[str, int, int]]
) -> None:
    clock = FakeClock()
    world, model = World(key, clock), Model()
    tokens: list[tuple[str, str, float, str, str | None]] = []  # user, session, iat, sb, api
    for name, a, b in operations:
        now = clock()
        if name in ("exchange", "revoke_session", "revoke_user", "exchange_racing_revoke_user"):
            user = USERS[a]
            session = f"session-{a}-{0 if name == 'exchange_racing_revoke_user' else b}"
            model.owner.setdefault(session, user)
        if name == "exchange_racing_revoke_user":
            new = session not in model.created and session not in model.revoked_at

            def racing(user: str = user) -> None:
                world.store.revoke_user(user)

            if new and b == 0:
                world.table.before = racing
                model.revoke_user(user, now)
                refused = model.exchange_refused(user, session, now)
            else:
                world.table.after = racing
                refused = model.exchange_refused(user, session, now)
                model.revoke_user(user, now)
            supabase, api = world.exchange(user, session)
            if world.table.after is not None:  # no new session written: it lands after
                world.table.after = None
                racing()
            assert world.table.before is None
            world.publisher.publish(ISSUER)
            assert (api is None) == refused
            tokens.append((user, session, now, supabase, api))
        elif name == "exchange":
            refused = model.exchange_refused(user, session, now)
            supabase, api = world.exchange(user, session)
            assert (api is None) == refused
            tokens.append((user, session, now, supabase, api))
        elif name == "revoke_session":
            world.store.revoke_session(session, user)
            world.publisher.publish(ISSUER)
            model.revoke_session(session, now)
        elif name == "revoke_user":
            world.store.revoke_user(user)
            world.publisher.publish(ISSUER)
            model.revoke_user(user, now)
        elif name == "advance":
            clock.advance(a)
        elif tokens:
            holder, held, iat, supabase, api = tokens[a % len(tokens)]
            since = model.supabase_revoked_since(holder, held, iat)
            allowed = world.allows(world.supabase, supabase)
            if since is None:
                assert allowed, "a session never revoked was refused (Supabase authorizer)"
            elif now >= since + REFRESH:
                assert not allowed, "a revoked session allowed after the bound (Supabase)"
            if api is not None:
                since = model.api_revoked_since(held)
                allowed = world.allows(world.api, api)
                if since is None:
                    assert allowed, "a session never revoked was refused (API-token authorizer)"
                elif now >= since + REFRESH:
                    assert not allowed, "a revoked session allowed after the bound (API token)"
