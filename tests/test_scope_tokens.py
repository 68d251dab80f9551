"""One rule reads every scope value (RFC 6749 §3.3): tokens separated by the space character
alone. Other whitespace (a no-break space, a tab) is part of a token, never a separator, in the
exchange's ``scope`` parameter, an API token's ``scope`` claim and ``app_metadata`` scopes."""

from __future__ import annotations

import re
import time

from hypothesis import given
from hypothesis import strategies as st

from tests.factories import (
    HS_SECRET,
    SUPABASE_ISSUER,
    StaticKeySet,
    hs_token,
    rsa_pair,
    supabase_claims,
)
from tokengate.apitoken import ApiTokenIssuer, ApiTokenVerifier
from tokengate.keys import HmacKey, key_from_jwk
from tokengate.scopes import ScopePolicy
from tokengate.signing import LocalKeySigner
from tokengate.supabase import SupabasePolicy, SupabaseTokenVerifier

ISSUER = "https://api.example.com"
NBSP_ADMIN = "read\u00a0admin"
# scope-token = 1*( %x21 / %x23-5B / %x5D-7E ), or any other non-space character here
SEPARATOR = re.compile("\x20")


def oracle_tokens(value: str) -> tuple[str, ...]:
    return tuple(piece for piece in SEPARATOR.split(value) if piece != "")


@given(st.text(alphabet=st.sampled_from(["a", "b", " ", "\u00a0", "\t", "\n", "\u2003", "\x0b"])))
def test_scope_values_split_on_the_space_character_alone(value: str) -> None:
    from tokengate.claims import is_scope_value, scope_tokens

    assert scope_tokens(value) == oracle_tokens(value)
    assert is_scope_value(value) == (
        value != "" and all(SEPARATOR.split(value)) and value == " ".join(oracle_tokens(value))
    )


def test_a_no_break_space_joins_rather_than_separates_in_an_api_tokens_scope() -> None:
    pair = rsa_pair()
    signer = LocalKeySigner(pair.private)
    token = (
        ApiTokenIssuer(signer, ttl=600)
        .issue(
            issuer=ISSUER,
            subject="8b3b1c7e-2f1a-4c3d-9e8f-0a1b2c3d4e5f",
            audiences=["api"],
            scopes=[NBSP_ADMIN],
            client_id="cli",
            session_id="s-1",
            not_after=time.time() + 600,
        )
        .token
    )
    verifier = ApiTokenVerifier(StaticKeySet([key_from_jwk(signer.public_jwk())]), ISSUER, "api")
    assert verifier.verify(token).scopes == (NBSP_ADMIN,)


def test_a_no_break_space_grants_nothing_in_app_metadata_or_a_consented_scope() -> None:
    policy = ScopePolicy(("read", "write", "admin"), ("read",))
    verifier = SupabaseTokenVerifier(
        SupabasePolicy(issuer=SUPABASE_ISSUER, allowed_client_ids=frozenset({"app"})),
        hmac_key=lambda: HmacKey(HS_SECRET.encode()),
    )
    spelled = hs_token(
        supabase_claims(app_metadata={"provider": "email", "api_scopes": NBSP_ADMIN})
    )
    assert policy.user_scopes(verifier.verify(spelled)) == {"read"}
    listed = hs_token(
        supabase_claims(app_metadata={"provider": "email", "api_scopes": [NBSP_ADMIN, "write"]})
    )
    assert policy.user_scopes(verifier.verify(listed)) == {"read", "write"}
    spaced = hs_token(
        supabase_claims(app_metadata={"provider": "email", "api_scopes": "write admin"})
    )
    assert policy.user_scopes(verifier.verify(spaced)) == {"read", "write", "admin"}
    # A third-party app's token acts only within the user's consent when that names API
    # scopes: "write read\u00a0admin" names "write" alone.
    app_policy = ScopePolicy(
        ("read", "write", "admin"), ("read",), client_scopes={"app": ("admin", "write")}
    )
    consent = hs_token(
        supabase_claims(
            app_metadata={"provider": "email", "api_scopes": "admin write"},
            client_id="app",
            scope=f"write {NBSP_ADMIN}",
        )
    )
    assert app_policy.user_scopes(verifier.verify(consent)) == {"write"}
