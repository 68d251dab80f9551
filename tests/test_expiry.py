"""Expiry through API Gateway's authorizer cache (docs/authorization.md, "Expiry and the cache").

API Gateway replays an authorizer's answer for the cache TTL whatever the token's ``exp``. Both
authorizers therefore allow a token only while ``now + cache_ttl < exp + leeway``, and ``/token``
answers with the ``expires_in`` the token really has at the gateway. Every clock here is
injected; the cache is simulated in the tests, independently of the code under test.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devstack.events import ARN_BASE, authorizer_event
from devstack.gateway import authorizer_outcome
from devstack.template import Template
from tests.conftest import ISSUER, FakeClock, StaticJwksFetcher
from tests.factories import HS_SECRET, SUPABASE_URL, KeyPair, hs_token, supabase_claims
from tokengate.apitoken import MAX_TTL, MIN_TTL, ApiTokenIssuer
from tokengate.authorizer import Authorizer, Principal, Unauthorized
from tokengate.claims import (
    DEFAULT_AUTHORIZER_CACHE_TTL,
    MAX_AUTHORIZER_CACHE_TTL,
    MAX_CACHE_TTL_OVER_LEEWAY,
    MAX_LEEWAY_SECONDS,
    allow_grace,
)
from tokengate.config import Settings
from tokengate.errors import ConfigurationError, InvalidTokenError, Reason
from tokengate.keys import HmacKey
from tokengate.policies import RouteScopes
from tokengate.principals import ApiTokenPrincipals, SupabasePrincipals
from tokengate.scopes import ScopePolicy
from tokengate.signing import LocalKeySigner
from tokengate.supabase import SupabasePolicy, SupabaseTokenVerifier

T0 = 1_800_000_000
FORMATS = ["token", "request", "http"]
SIDES = ["api", "supabase"]
ROUTES = {"GET /whoami": "read"}
CLI_MIN_TTL = 60  # tokengate_cli.source.DEFAULT_MIN_TTL, the CLI's default refresh rule


class Gate:
    """One authorizer (API-token or Supabase) with an injected clock, and its minting side."""

    def __init__(
        self, side: str, key: KeyPair, leeway: int, cache_ttl: int, clock: FakeClock
    ) -> None:
        self.side = side
        self.clock = clock
        self.reasons: list[str] = []
        self._signer = LocalKeySigner(key.private)
        verify: Callable[[str, Any], Principal]
        if side == "api":
            fetcher = StaticJwksFetcher()
            fetcher.document = {"keys": [self._signer.public_jwk()]}
            verify = ApiTokenPrincipals(
                issuer=ISSUER,
                audience="api",
                leeway=leeway,
                context_claims=(),
                clock=clock,
                fetcher=fetcher,
                cache_ttl=cache_ttl,
            )
        else:
            secret = HmacKey(HS_SECRET.encode())
            verifier = SupabaseTokenVerifier(
                SupabasePolicy(f"{SUPABASE_URL}/auth/v1", leeway),
                hmac_key=lambda: secret,
                clock=clock,
            )
            verify = SupabasePrincipals(
                verifier,
                ScopePolicy(("read",), ("read",)),
                (),
                cache_ttl=cache_ttl,
                clock=clock,
            )
        self.authorizer = Authorizer(
            verify, RouteScopes(ROUTES), on_decision=lambda d, r, p: self.reasons.append(r)
        )

    def mint(self, iat: int, exp: int) -> str:
        if self.side == "supabase":
            return hs_token(supabase_claims(now=iat, exp=exp))
        return (
            ApiTokenIssuer(self._signer, MAX_TTL, clock=lambda: iat)
            .issue(
                issuer=ISSUER,
                subject="8b3b1c7e-2f1a-4c3d-9e8f-0a1b2c3d4e5f",
                audiences=["api"],
                scopes=["read"],
                client_id="cli",
                session_id="s-1",
                not_after=exp,
            )
            .token
        )

    def decide(self, fmt: str, token: str, at: float) -> tuple[str, str]:
        """What API Gateway makes of a fresh decision at ``at``, and its reason code."""
        self.clock.now = at
        event = authorizer_event(fmt, token, "GET", "/whoami", ARN_BASE)
        try:
            answer = self.authorizer.decide(event)
        except Unauthorized:
            return "unauthorized", self.reasons[-1]
        return authorizer_outcome(answer, event), self.reasons[-1] if self.reasons else "ok"


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    ("leeway", "cache_ttl"), [(30, 30), (0, 0), (30, 0), (0, 30), (10, 40), (60, 60), (60, 0)]
)
def test_an_allow_ends_where_a_replay_would_outlive_the_token(
    ec_key: KeyPair, side: str, fmt: str, leeway: int, cache_ttl: int
) -> None:
    gate = Gate(side, ec_key, leeway, cache_ttl, FakeClock())
    exp = T0 + 900
    token = gate.mint(T0, exp)
    last = exp + leeway - cache_ttl  # the first instant at which an Allow could be replayed late

    assert gate.decide(fmt, token, T0)[0] == "allow"
    assert gate.decide(fmt, token, last - 0.001)[0] == "allow"
    refused = "expired" if cache_ttl == 0 else Reason.EXPIRES_WITHIN_CACHE_TTL
    assert gate.decide(fmt, token, last) == ("unauthorized", refused)
    if cache_ttl:  # valid, but not for a whole replay, up to exp + leeway; then expired
        assert gate.decide(fmt, token, exp + leeway - 0.001) == (
            "unauthorized",
            Reason.EXPIRES_WITHIN_CACHE_TTL,
        )
    assert gate.decide(fmt, token, exp + leeway) == ("unauthorized", "expired")


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("fmt", FORMATS)
def test_with_the_template_defaults_a_token_works_until_its_exp(
    ec_key: KeyPair, side: str, fmt: str
) -> None:
    parameters = Template.load().parameters
    leeway, cache_ttl = int(parameters["LeewaySeconds"]), int(parameters["AuthorizerCacheTtl"])
    assert (leeway, cache_ttl) == (30, DEFAULT_AUTHORIZER_CACHE_TTL)
    gate = Gate(side, ec_key, leeway, cache_ttl, FakeClock())
    exp = T0 + 3600
    token = gate.mint(T0, exp)
    assert gate.decide(fmt, token, exp - 0.001)[0] == "allow"
    assert gate.decide(fmt, token, exp)[0] == "unauthorized"


# -- the property: a replayed or fresh Allow is never used after exp + leeway ------------------

valid_ttls = st.tuples(
    st.integers(0, MAX_LEEWAY_SECONDS), st.integers(0, MAX_AUTHORIZER_CACHE_TTL)
).filter(lambda lt: lt[1] - lt[0] <= MAX_CACHE_TTL_OVER_LEEWAY)
# Request times in quarter seconds: exact in binary floating point, so the oracle's arithmetic
# and the code's cannot round apart at a boundary.
offsets = st.lists(
    st.tuples(st.integers(-120, 3800), st.sampled_from([0.0, 0.25, 0.5, 0.75])).map(sum),
    min_size=1,
    max_size=40,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    side=st.sampled_from(SIDES),
    fmt=st.sampled_from(FORMATS),
    leeway_ttl=valid_ttls,
    lifetime=st.integers(1, MAX_TTL),
    times=offsets,
)
def test_no_request_passes_after_exp_plus_leeway_fresh_or_replayed(
    ec_key: KeyPair,
    side: str,
    fmt: str,
    leeway_ttl: tuple[int, int],
    lifetime: int,
    times: list[float],
) -> None:
    leeway, cache_ttl = leeway_ttl
    gate = Gate(side, ec_key, leeway, cache_ttl, FakeClock())
    iat, exp = T0, T0 + lifetime
    token = gate.mint(iat, exp)
    cached: tuple[float, str] | None = None  # API Gateway's cache for this token: (until, answer)
    for at in sorted(T0 + t for t in times):
        if cached is not None and at < cached[0]:
            outcome = cached[1]  # replayed
        else:
            outcome = gate.decide(fmt, token, at)[0]
            # The oracle, from the rule's statement alone: valid from iat - leeway, and an Allow
            # only while the whole replay ends before exp + leeway.
            fresh_ok = iat - leeway <= at and at + cache_ttl < exp + leeway
            assert (outcome == "allow") == fresh_ok, (at - T0, outcome)
            # API Gateway caches Allow and Deny policies (a 401 is not cached) for the TTL.
            cached = (at + cache_ttl, outcome) if cache_ttl and outcome != "unauthorized" else None
        if outcome == "allow":
            assert at < exp + leeway, f"allowed {at - exp:.2f} s after exp (leeway {leeway})"


# -- what the configuration admits, and what /token promises --------------------------------


def env(**values: int) -> dict[str, str]:
    return {"SUPABASE_URL": SUPABASE_URL} | {k: str(v) for k, v in values.items()}


@settings(max_examples=300, deadline=None)
@given(
    token_ttl=st.integers(MIN_TTL, MAX_TTL),
    leeway=st.integers(0, MAX_LEEWAY_SECONDS),
    cache_ttl=st.integers(0, MAX_AUTHORIZER_CACHE_TTL),
)
def test_every_admitted_configuration_gives_a_token_that_works_for_its_expires_in(
    ec_key: KeyPair, token_ttl: int, leeway: int, cache_ttl: int
) -> None:
    variables = env(
        TOKEN_TTL_SECONDS=token_ttl, LEEWAY_SECONDS=leeway, AUTHORIZER_CACHE_TTL=cache_ttl
    )
    if cache_ttl - leeway > 30:
        with pytest.raises(ConfigurationError, match="AUTHORIZER_CACHE_TTL"):
            Settings.from_env(variables)
        return
    config = Settings.from_env(variables)
    usable = token_ttl + min(0, leeway - cache_ttl)  # the oracle: what the gateway leaves
    assert usable >= MIN_TTL - MAX_CACHE_TTL_OVER_LEEWAY > 0

    clock = FakeClock(T0)
    signer = LocalKeySigner(ec_key.private)
    issued = ApiTokenIssuer(
        signer, config.token_ttl, clock, leeway=config.leeway, cache_ttl=config.authorizer_cache_ttl
    ).issue(
        issuer=ISSUER,
        subject="8b3b1c7e-2f1a-4c3d-9e8f-0a1b2c3d4e5f",
        audiences=["api"],
        scopes=["read"],
        client_id="cli",
        session_id="s-1",
        not_after=T0 + 7200,
    )
    assert issued.expires_in == usable
    assert issued.claims["exp"] == T0 + token_ttl  # the token itself keeps its full lifetime

    fetcher = StaticJwksFetcher()
    fetcher.document = {"keys": [signer.public_jwk()]}
    principals = ApiTokenPrincipals(
        issuer=ISSUER,
        audience="api",
        leeway=config.leeway,
        context_claims=(),
        clock=clock,
        fetcher=fetcher,
        cache_ttl=config.authorizer_cache_ttl,
    )
    request: Any = None
    clock.now = T0 + issued.expires_in - 0.25
    assert principals(issued.token, request).sub  # works through the last moment it promised
    # ... and is refused once a replay could outlive it (after expires_in when the cache TTL
    # exceeds the leeway; when the leeway is the longer, a little after exp: clock skew).
    clock.now = T0 + token_ttl + leeway - cache_ttl
    with pytest.raises(InvalidTokenError):
        principals(issued.token, request)


def test_the_template_defaults_keep_every_token_lifetime_whole() -> None:
    """With the template's defaults the cache costs a token nothing: ``expires_in`` is the whole
    lifetime, above the CLI's refresh threshold for every lifetime above it."""
    parameters = Template.load().parameters
    defaults = {
        "LEEWAY_SECONDS": int(parameters["LeewaySeconds"]),
        "AUTHORIZER_CACHE_TTL": int(parameters["AuthorizerCacheTtl"]),
    }
    for token_ttl in range(MIN_TTL, MAX_TTL + 1):
        config = Settings.from_env(env(TOKEN_TTL_SECONDS=token_ttl, **defaults))
        lost = -allow_grace(config.leeway, config.authorizer_cache_ttl)
        assert max(0, lost) == 0
        assert token_ttl - max(0, lost) >= CLI_MIN_TTL


def test_the_template_bounds_are_the_code_bounds() -> None:
    spec = Template.load().document["Parameters"]["AuthorizerCacheTtl"]
    assert (spec["MinValue"], spec["MaxValue"]) == (0, MAX_AUTHORIZER_CACHE_TTL)
    assert spec["Default"] == DEFAULT_AUTHORIZER_CACHE_TTL
    globals_env = Template.load().document["Globals"]["Function"]["Environment"]["Variables"]
    assert globals_env["AUTHORIZER_CACHE_TTL"].value == "AuthorizerCacheTtl"


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"AUTHORIZER_CACHE_TTL": 61}, "AUTHORIZER_CACHE_TTL must be within 0-60"),
        ({"AUTHORIZER_CACHE_TTL": -1}, "AUTHORIZER_CACHE_TTL must be within 0-60"),
        (
            {"AUTHORIZER_CACHE_TTL": 45, "LEEWAY_SECONDS": 0},
            "may exceed the leeway (0 s) by at most 30 s",
        ),
    ],
)
def test_a_cache_ttl_no_token_could_live_through_is_refused_at_start(
    variables: dict[str, int], message: str
) -> None:
    with pytest.raises(ConfigurationError) as refused:
        Settings.from_env(env(**variables))
    assert message in str(refused.value)


def test_an_exchange_refuses_a_subject_token_too_close_to_its_end(ec_key: KeyPair) -> None:
    """Leeway 0 and a 30 s cache: an API token must outlive a replay, so a Supabase token with
    30 s or less left gives nothing usable, and is refused rather than exchanged for a dud."""
    issuer = ApiTokenIssuer(LocalKeySigner(ec_key.private), 900, lambda: T0, leeway=0, cache_ttl=30)
    claims: dict[str, Any] = {
        "issuer": ISSUER,
        "subject": "8b3b1c7e-2f1a-4c3d-9e8f-0a1b2c3d4e5f",
        "audiences": ["api"],
        "scopes": ["read"],
        "client_id": "cli",
        "session_id": "s-1",
    }
    assert issuer.issue(**claims, not_after=T0 + 31).expires_in == 1
    with pytest.raises(InvalidTokenError) as refused:
        issuer.issue(**claims, not_after=T0 + 30)
    assert refused.value.reason == Reason.EXPIRES_WITHIN_CACHE_TTL
