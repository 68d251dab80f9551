"""The Supabase issuer and JWKS location, configurable apart from the project URL (Supabase custom
domains): a token is accepted exactly when its ``iss`` is the configured one."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devstack.template import ParameterError, Template
from tests.factories import SUPABASE_URL, KeyPair, key_token, supabase_claims
from tests.jwks_server import JwksServer
from tokengate.config import Settings
from tokengate.errors import ConfigurationError, InvalidTokenError, Reason
from tokengate.runtime import supabase_verifier

CUSTOM_ISSUER = "https://auth.example.com/auth/v1"
PROJECT_ISSUER = f"{SUPABASE_URL}/auth/v1"


def settings(**env: str) -> Settings:
    return Settings.from_env({"SUPABASE_URL": SUPABASE_URL} | env)


def test_defaults_are_todays_behaviour() -> None:
    configured = settings()
    assert configured.supabase_issuer == PROJECT_ISSUER
    assert configured.supabase_jwks_url == f"{PROJECT_ISSUER}/.well-known/jwks.json"


def test_the_jwks_url_follows_the_issuer_unless_set() -> None:
    assert settings(SUPABASE_ISSUER=CUSTOM_ISSUER).supabase_jwks_url == (
        f"{CUSTOM_ISSUER}/.well-known/jwks.json"
    )
    overridden = settings(
        SUPABASE_ISSUER=CUSTOM_ISSUER, SUPABASE_JWKS_URL="https://keys.example.com/jwks.json"
    )
    assert overridden.supabase_jwks_url == "https://keys.example.com/jwks.json"
    assert overridden.supabase_issuer == CUSTOM_ISSUER


@pytest.mark.parametrize(
    "env",
    [
        {"SUPABASE_ISSUER": "auth.example.com/auth/v1"},
        {"SUPABASE_ISSUER": "ftp://auth.example.com"},
        {"SUPABASE_ISSUER": "https://auth.example.com/auth/v1?x=1"},
        {"SUPABASE_JWKS_URL": "keys.example.com"},
    ],
)
def test_a_bad_issuer_or_jwks_url_stops_the_function_at_start(env: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError, match=next(iter(env))):
        settings(**env)


HOSTS = st.from_regex(r"[a-z][a-z0-9]{0,10}(\.[a-z][a-z0-9]{0,6}){1,2}", fullmatch=True)


@given(
    project=HOSTS, issuer_host=st.one_of(st.none(), HOSTS), path=st.sampled_from(["", "/auth/v1"])
)
def test_the_expected_issuer_is_the_configured_one_else_the_project_url(
    project: str, issuer_host: str | None, path: str
) -> None:
    env = {"SUPABASE_URL": f"https://{project}/"}
    if issuer_host is not None:
        env["SUPABASE_ISSUER"] = f"https://{issuer_host}{path}"
    configured = Settings.from_env(env)
    # The oracle, written from the documented rule.
    expected = env.get("SUPABASE_ISSUER") or f"https://{project}/auth/v1"
    assert configured.supabase_issuer == expected
    assert configured.supabase_jwks_url == expected + "/.well-known/jwks.json"


@pytest.mark.parametrize(
    ("configured_issuer", "token_issuer", "accepted"),
    [
        (CUSTOM_ISSUER, CUSTOM_ISSUER, True),
        (CUSTOM_ISSUER, PROJECT_ISSUER, False),  # the project-URL issuer is not the configured one
        ("", PROJECT_ISSUER, True),
        ("", CUSTOM_ISSUER, False),
    ],
)
def test_tokens_are_held_to_the_configured_issuer(
    supabase_server: JwksServer,
    ec_key: KeyPair,
    configured_issuer: str,
    token_issuer: str,
    accepted: bool,
) -> None:
    # The keys come from the configured JWKS URL (a loopback server), not from the project URL.
    verifier = supabase_verifier(
        settings(SUPABASE_ISSUER=configured_issuer, SUPABASE_JWKS_URL=supabase_server.jwks_url)
    )
    token = key_token(ec_key, supabase_claims(iss=token_issuer))
    if accepted:
        assert verifier.verify(token).claims["iss"] == token_issuer
    else:
        with pytest.raises(InvalidTokenError) as refused:
            verifier.verify(token)
        assert refused.value.reason == Reason.ISSUER


@pytest.mark.parametrize(
    ("parameter", "variable", "value"),
    [
        ("SupabaseIssuer", "SUPABASE_ISSUER", "https://auth.example.com/auth/v1"),
        ("SupabaseIssuer", "SUPABASE_ISSUER", "http://127.0.0.1:54321/auth/v1"),
        ("SupabaseIssuer", "SUPABASE_ISSUER", "https://auth.example.com/auth/v1?x=1"),
        ("SupabaseIssuer", "SUPABASE_ISSUER", "https://auth.example.com/#f"),
        ("SupabaseIssuer", "SUPABASE_ISSUER", "ftp://auth.example.com"),
        ("SupabaseIssuer", "SUPABASE_ISSUER", "auth.example.com"),
        ("SupabaseJwksUrl", "SUPABASE_JWKS_URL", "https://keys.example.com/jwks.json"),
        ("SupabaseJwksUrl", "SUPABASE_JWKS_URL", "https://keys.example.com/jwks.json?v=2"),
        ("SupabaseJwksUrl", "SUPABASE_JWKS_URL", "keys.example.com/jwks.json"),
    ],
)
def test_the_template_and_the_functions_accept_the_same_values(
    parameter: str, variable: str, value: str
) -> None:
    """A value CloudFormation takes must not stop the functions at start, and the reverse."""
    try:
        Template.load({"SupabaseUrl": SUPABASE_URL, parameter: value})
        template_accepts = True
    except ParameterError:
        template_accepts = False
    try:
        settings(**{variable: value})
        functions_accept = True
    except ConfigurationError:
        functions_accept = False
    assert template_accepts == functions_accept
