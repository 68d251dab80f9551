"""Discovery metadata, member by member against RFC 8414 §2 and OpenID Connect Discovery §3.

Each row names a member, what each specification requires of it, and what this server does with
it (present and why it is true, or absent and why). Present members are also checked with
authlib's validator for that one member, an implementation written independently of ours.
"""

from __future__ import annotations

from typing import Any

import pytest
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from authlib.oidc.discovery import OpenIDProviderMetadata
from hypothesis import given
from hypothesis import strategies as st

from tokengate.discovery import render_metadata
from tokengate.exchange import GRANT_TYPE

ISSUER = "https://auth.example.com"
SCOPES = ("read", "write")
DOCUMENT = render_metadata(ISSUER, SCOPES)

# member: (RFC 8414 §2, OIDC Discovery §3, expected value or ABSENT)
ABSENT = object()
MEMBERS: dict[str, tuple[str, str, Any]] = {
    "issuer": ("REQUIRED", "REQUIRED", ISSUER),
    "authorization_endpoint": ("REQUIRED unless no grant uses it", "REQUIRED", ABSENT),
    "token_endpoint": (
        "REQUIRED unless implicit only",
        "REQUIRED unless implicit only",
        f"{ISSUER}/token",
    ),
    "jwks_uri": ("OPTIONAL", "REQUIRED", f"{ISSUER}/.well-known/jwks.json"),
    "scopes_supported": ("RECOMMENDED", "RECOMMENDED", list(SCOPES)),
    "response_types_supported": ("REQUIRED", "REQUIRED", []),
    "grant_types_supported": ("OPTIONAL, default code+implicit", "OPTIONAL", [GRANT_TYPE]),
    "token_endpoint_auth_methods_supported": ("OPTIONAL", "OPTIONAL", ["none"]),
    "subject_types_supported": ("—", "REQUIRED", ["public"]),
    "id_token_signing_alg_values_supported": ("—", "REQUIRED", ABSENT),
    "userinfo_endpoint": ("—", "RECOMMENDED", ABSENT),
    "registration_endpoint": ("OPTIONAL", "RECOMMENDED", ABSENT),
    "response_modes_supported": ("OPTIONAL", "OPTIONAL", ABSENT),
    "code_challenge_methods_supported": ("OPTIONAL", "—", ABSENT),
    "claims_supported": ("—", "RECOMMENDED", ABSENT),
}
WHY_ABSENT = {
    "authorization_endpoint": "no authorization endpoint exists; the only grant is token exchange",
    "id_token_signing_alg_values_supported": "no ID token is ever issued",
    "userinfo_endpoint": "there is no UserInfo endpoint",
    "registration_endpoint": "there is no dynamic client registration",
    "response_modes_supported": "no authorization endpoint, so no response modes",
    "code_challenge_methods_supported": "no authorization code grant, so no PKCE",
    "claims_supported": "no ID token or UserInfo claims",
}
# authlib treats an empty response_types_supported as missing; RFC 8414 asks for "a JSON array
# containing a list of the response_type values that this authorization server supports", and
# this server supports none.
AUTHLIB_STRICTER = {"response_types_supported"}


@pytest.mark.parametrize("member", MEMBERS)
def test_each_member(member: str) -> None:
    _, _, expected = MEMBERS[member]
    if expected is ABSENT:
        assert member not in DOCUMENT, WHY_ABSENT[member]
        return
    assert DOCUMENT[member] == expected
    if member in AUTHLIB_STRICTER:
        assert isinstance(DOCUMENT[member], list)
        return
    for metadata in (AuthorizationServerMetadata(DOCUMENT), OpenIDProviderMetadata(DOCUMENT)):
        validate = getattr(metadata, f"validate_{member}", None)
        if validate is not None:
            validate()


def test_nothing_outside_the_table() -> None:
    """A member added to the document must be added to the table, with its requirement."""
    assert set(DOCUMENT) <= set(MEMBERS)


def test_the_rfc_8414_document_is_valid_but_for_the_empty_response_types() -> None:
    metadata = AuthorizationServerMetadata(DOCUMENT)
    for key in metadata.REGISTRY_KEYS:
        if key not in AUTHLIB_STRICTER:
            getattr(metadata, f"validate_{key}")()


@pytest.mark.parametrize(
    "member", ["authorization_endpoint", "id_token_signing_alg_values_supported"]
)
def test_what_openid_connect_requires_of_a_provider_is_knowingly_missing(member: str) -> None:
    """tokengate is not an OpenID Provider: authlib's OIDC validator says exactly these are
    missing, and nothing else is wrong."""
    metadata = OpenIDProviderMetadata(DOCUMENT)
    if member == "authorization_endpoint":
        metadata.validate_authorization_endpoint()  # RFC 8414 lets a server without one omit it
    else:
        with pytest.raises(ValueError, match=member):
            getattr(metadata, f"validate_{member}")()


def test_product_members_are_optional_and_prefixed() -> None:
    assert not any(member.startswith("tokengate_") for member in DOCUMENT)
    with_supabase = render_metadata(
        ISSUER,
        SCOPES,
        supabase_url="https://abc.supabase.co",
        supabase_publishable_key="sb_publishable_x",
    )
    extra = set(with_supabase) - set(DOCUMENT)
    assert extra == {"tokengate_supabase_url", "tokengate_supabase_publishable_key"}
    assert with_supabase["tokengate_supabase_url"] == "https://abc.supabase.co"


def test_verifiers_find_the_keys_from_the_issuer_alone() -> None:
    """What JwtBearer-style verifiers read: issuer (compared to iss) and jwks_uri."""
    assert DOCUMENT["issuer"] == ISSUER
    assert DOCUMENT["jwks_uri"].startswith(ISSUER + "/")


def test_the_served_documents_carry_the_product_members_when_asked(make_api: Any) -> None:
    api = make_api({"DiscoverySupabase": "true", "SupabaseApiKey": "sb_publishable_x"})
    for path in ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"):
        status, _, document = api.call("GET", path)
        assert status == 200
        assert document["tokengate_supabase_publishable_key"] == "sb_publishable_x"
        assert document["tokengate_supabase_url"].startswith("https://")
        assert "id_token_signing_alg_values_supported" not in document


@given(
    host=st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z]{2,6}){1,2}", fullmatch=True),
    path=st.sampled_from(["", "/v1", "/prod/auth"]),
    scopes=st.lists(st.from_regex(r"[a-z][a-z:._-]{0,12}", fullmatch=True), unique=True),
)
def test_any_issuer_gives_a_document_every_verifier_can_follow(
    host: str, path: str, scopes: list[str]
) -> None:
    issuer = f"https://{host}{path}"
    document = render_metadata(issuer, scopes)
    # The oracle: the table above, with this issuer substituted.
    expected = {
        member: value for member, (_, _, value) in MEMBERS.items() if value is not ABSENT
    } | {
        "issuer": issuer,
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "token_endpoint": f"{issuer}/token",
        "scopes_supported": scopes,
    }
    assert document == expected
    metadata = AuthorizationServerMetadata(document)
    for member in ("issuer", "token_endpoint", "jwks_uri", "scopes_supported"):
        getattr(metadata, f"validate_{member}")()
