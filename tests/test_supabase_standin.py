"""The development stand-in for Supabase Auth, driven by Supabase's own Python client
(``supabase-auth``), so its shapes cannot drift from what that client expects of the real server.
Refresh-token rules run on an injected clock."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from supabase_auth import SyncGoTrueClient
from supabase_auth.errors import AuthApiError

from devstack.supabase_auth import (
    DEV_EMAIL,
    DEV_PASSWORD,
    REUSE_INTERVAL,
    AuthError,
    SupabaseAuthStandIn,
)
from devstack.supabase_dev import DEV_USER_ID, LOCAL_JWT_SECRET
from tests.conftest import FakeClock
from tokengate.jwks import HttpJwksFetcher, JwksCache
from tokengate.supabase import SupabasePolicy, SupabaseTokenVerifier


@pytest.fixture
def clock() -> FakeClock:
    import time

    return FakeClock(time.time())


@pytest.fixture
def stand_in(clock: FakeClock) -> Iterator[SupabaseAuthStandIn]:
    with SupabaseAuthStandIn(LOCAL_JWT_SECRET, clock=clock) as running:
        yield running


@pytest.fixture
def client(stand_in: SupabaseAuthStandIn) -> Iterator[SyncGoTrueClient]:
    with SyncGoTrueClient(
        url=stand_in.issuer,
        headers={"apikey": stand_in.anon_key},
        auto_refresh_token=False,
        persist_session=False,
    ) as gotrue:
        yield gotrue


def sign_in(client: SyncGoTrueClient) -> Any:
    response = client.sign_in_with_password({"email": DEV_EMAIL, "password": DEV_PASSWORD})
    assert response.session is not None
    return response.session


def test_password_sign_in_gives_a_session_the_exchange_would_accept(
    client: SyncGoTrueClient, stand_in: SupabaseAuthStandIn, clock: FakeClock
) -> None:
    session = sign_in(client)
    assert session.user.id == DEV_USER_ID and session.user.email == DEV_EMAIL
    assert session.token_type == "bearer" and session.expires_in == 3600
    # The same verifier and policy the exchange runs, over the stand-in's published JWKS (ES256).
    jwks = JwksCache(f"{stand_in.issuer}/.well-known/jwks.json", HttpJwksFetcher(), clock=clock)
    verifier = SupabaseTokenVerifier(SupabasePolicy(stand_in.issuer), jwks=jwks, clock=clock)
    identity = verifier.verify(session.access_token)
    assert identity.sub == DEV_USER_ID
    assert set(identity.claims) == {
        "iss", "aud", "sub", "exp", "iat", "email", "phone", "app_metadata", "user_metadata",
        "role", "aal", "amr", "session_id", "is_anonymous",
    }  # fmt: skip
    assert identity.claims["amr"][0]["method"] == "password"


def test_wrong_password_is_invalid_credentials(client: SyncGoTrueClient) -> None:
    with pytest.raises(AuthApiError) as caught:
        client.sign_in_with_password({"email": DEV_EMAIL, "password": "nope"})
    assert caught.value.status == 400 and caught.value.code == "invalid_credentials"


def test_get_user_and_sign_out(client: SyncGoTrueClient, stand_in: SupabaseAuthStandIn) -> None:
    session = sign_in(client)
    user = client.get_user(session.access_token)
    assert user is not None and user.user.id == DEV_USER_ID
    client.admin.sign_out(session.access_token, "local")
    with pytest.raises(AuthApiError) as caught:
        client.get_user(session.access_token)  # the access token still verifies; its session ended
    assert caught.value.code == "session_not_found"
    with pytest.raises(AuthApiError) as refused:
        client.refresh_session(session.refresh_token)
    assert str(refused.value.code) == "refresh_token_not_found"


def test_sign_out_through_the_clients_own_flow(
    client: SyncGoTrueClient, stand_in: SupabaseAuthStandIn
) -> None:
    session = sign_in(client)
    client.set_session(session.access_token, session.refresh_token)
    client.sign_out({"scope": "global"})
    assert stand_in.sessions == {}


def test_refresh_rotates_the_refresh_token(client: SyncGoTrueClient) -> None:
    first = sign_in(client)
    second = client.refresh_session(first.refresh_token).session
    assert second is not None
    assert second.refresh_token != first.refresh_token
    assert second.access_token != first.access_token
    third = client.refresh_session(second.refresh_token).session
    assert third is not None and third.refresh_token not in (
        first.refresh_token,
        second.refresh_token,
    )


def test_the_parent_of_the_active_token_gets_the_active_one_back(
    client: SyncGoTrueClient, clock: FakeClock
) -> None:
    first = sign_in(client)
    second = client.refresh_session(first.refresh_token).session
    assert second is not None
    clock.advance(REUSE_INTERVAL * 5)  # long after: still the lost-answer case, not reuse
    again = client.refresh_session(first.refresh_token).session
    assert again is not None and again.refresh_token == second.refresh_token


@pytest.mark.parametrize(
    ("after", "ends"), [(REUSE_INTERVAL - 1, False), (REUSE_INTERVAL + 1, True)]
)
def test_reuse_of_an_older_token_is_tolerated_only_within_the_interval(
    client: SyncGoTrueClient,
    stand_in: SupabaseAuthStandIn,
    clock: FakeClock,
    after: float,
    ends: bool,
) -> None:
    first = sign_in(client)
    second = client.refresh_session(first.refresh_token).session
    assert second is not None
    third = client.refresh_session(second.refresh_token).session  # first is now a grandparent
    assert third is not None
    clock.advance(after)
    if not ends:
        assert client.refresh_session(first.refresh_token).session is not None
        assert stand_in.sessions
        return
    with pytest.raises(AuthApiError) as caught:
        client.refresh_session(first.refresh_token)
    assert str(caught.value.code) == "refresh_token_already_used"
    assert stand_in.sessions == {}  # reuse ended the whole session
    with pytest.raises(AuthApiError) as gone:
        client.refresh_session(third.refresh_token)
    assert str(gone.value.code) == "refresh_token_not_found"


def test_a_missing_or_wrong_api_key_is_refused(stand_in: SupabaseAuthStandIn) -> None:
    with (
        SyncGoTrueClient(url=stand_in.issuer, headers={"apikey": "nope"}) as gotrue,
        pytest.raises(AuthApiError) as caught,
    ):
        gotrue.sign_in_with_password({"email": DEV_EMAIL, "password": DEV_PASSWORD})
    assert caught.value.status == 401


def test_the_service_role_key_is_not_the_anon_key(stand_in: SupabaseAuthStandIn) -> None:
    from tokengate.jws import parse_compact

    anon = parse_compact(stand_in.anon_key).unverified_claims
    service = parse_compact(stand_in.service_role_key).unverified_claims
    assert anon["role"] == "anon" and service["role"] == "service_role"
    assert anon["iss"] == "supabase-demo" and "ref" not in anon and "iat" not in anon


def test_otp_and_pkce_sign_ins(client: SyncGoTrueClient, stand_in: SupabaseAuthStandIn) -> None:
    client.sign_in_with_otp({"email": DEV_EMAIL, "options": {"should_create_user": False}})
    assert stand_in.last_otp is not None
    otp = client.verify_otp({"email": DEV_EMAIL, "token": stand_in.last_otp, "type": "email"})
    assert otp.session is not None and otp.user is not None and otp.user.id == DEV_USER_ID

    import httpx

    with SyncGoTrueClient(
        url=stand_in.issuer,
        headers={"apikey": stand_in.anon_key},
        flow_type="pkce",
        auto_refresh_token=False,
        persist_session=False,
    ) as pkce:
        start = pkce.sign_in_with_oauth(
            {"provider": "github", "options": {"redirect_to": "http://127.0.0.1:9/callback"}}
        )
        redirect = httpx.get(start.url, timeout=10)
        assert redirect.status_code == 302
        location = httpx.URL(redirect.headers["location"])
        assert location.host == "127.0.0.1" and location.params["code"]
        done = pkce.exchange_code_for_session({"auth_code": location.params["code"]})
        assert done.session is not None
        with pytest.raises(AuthApiError):  # an authorization code is single-use
            pkce.exchange_code_for_session(
                {"auth_code": location.params["code"], "code_verifier": "x" * 43}
            )


# -- the refresh-token rules, against a model of them -------------------------------------------


class RefreshModel:
    """Supabase's rules, stated plainly: the active token rotates; the parent of the active token
    gets the active one back; any other revoked token is tolerated for the reuse interval after
    its revocation; beyond it, reuse ends the session. An ended session knows no token."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.alive = True
        self.parent: dict[int, int | None] = {0: None}
        self.revoked_at: dict[int, float] = {}
        self.active = 0

    def refresh(self, token: int, now: float) -> str | int:
        """The outcome: an error code, or the index of the token handed back."""
        if not self.alive:
            return "refresh_token_not_found"
        if token in self.revoked_at:
            if self.parent[self.active] == token:
                return self.active
            if now - self.revoked_at[token] > self.interval:
                self.alive = False
                return "refresh_token_already_used"
        self.revoked_at.setdefault(token, now)
        child = len(self.parent)
        self.parent[child] = token
        self.active = child
        return child


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=8), st.sampled_from([0, 1, 5, 9, 11, 30])),
        min_size=1,
        max_size=25,
    )
)
def test_refresh_tokens_follow_the_rules(steps: list[tuple[int, int]]) -> None:
    clock = FakeClock(1_800_000_000.0)
    stand_in = SupabaseAuthStandIn(LOCAL_JWT_SECRET, clock=clock)
    stand_in.url = "http://127.0.0.1:9"  # never served: the rules are called directly
    model = RefreshModel(REUSE_INTERVAL)
    issued = [
        stand_in.password_grant({"email": DEV_EMAIL, "password": DEV_PASSWORD})["refresh_token"]
    ]
    for pick, wait in steps:
        clock.advance(wait)
        index = pick % len(issued)
        expected = model.refresh(index, clock())
        if isinstance(expected, str):
            with pytest.raises(AuthError) as refused:
                stand_in.refresh_grant({"refresh_token": issued[index]})
            assert refused.value.error_code == expected
            continue
        answer = stand_in.refresh_grant({"refresh_token": issued[index]})
        if expected == len(issued):
            issued.append(answer["refresh_token"])
        assert answer["refresh_token"] == issued[expected]
