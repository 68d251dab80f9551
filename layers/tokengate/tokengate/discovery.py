"""Key publication (RFC 7517 JWKS) and discovery metadata (RFC 8414, OpenID Connect Discovery).

One document answers at both ``/.well-known/oauth-authorization-server`` and
``/.well-known/openid-configuration``, and every member in it is true of this server:

* ``issuer``, ``jwks_uri`` and ``token_endpoint``: what verifiers and clients need. JwtBearer-style
  verifiers (ASP.NET Core JwtBearer, openid-client, Spring's resource server, a pyjwt
  ``PyJWKClient`` fed from discovery) read ``issuer`` and ``jwks_uri`` and nothing else.
* ``grant_types_supported`` names the one grant (RFC 8693 token exchange): RFC 8414's default when
  it is omitted (authorization code and implicit) would be false.
* ``token_endpoint_auth_methods_supported`` is ``["none"]``: callers authenticate with the subject
  token, not as an OAuth client.
* ``response_types_supported`` is ``[]``: the member is REQUIRED by both specifications, and this
  server has no authorization endpoint, so it supports no response type. Listing ``token`` would
  advertise an implicit flow that does not exist.
* ``subject_types_supported`` is ``["public"]``: ``sub`` is the Supabase user id, the same for
  every audience (no pairwise identifiers).
* ``scopes_supported``: the configured scopes.

Left out on purpose: ``authorization_endpoint`` (there is none; RFC 8414 lets a server without a
grant that uses it omit it) and ``id_token_signing_alg_values_supported`` (no ID token is ever
issued). OpenID Connect Discovery calls both REQUIRED of an OpenID Provider; tokengate is not
one, and serves ``openid-configuration`` only because verifiers find ``jwks_uri`` there. The
algorithm of the API tokens is in each JWK's ``alg``.

Product members (optional, ``tokengate_``-prefixed, both values public): the Supabase project URL
and its publishable key, so a client can find the sign-in service from the issuer alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .exchange import GRANT_TYPE


def render_jwks(jwks: Iterable[dict[str, str]]) -> dict[str, Any]:
    """One entry per ``kid``, in the order given (current first)."""
    unique = {jwk["kid"]: jwk for jwk in jwks}
    return {"keys": list(unique.values())}


def render_metadata(
    issuer: str,
    scopes: Iterable[str],
    *,
    supabase_url: str = "",
    supabase_publishable_key: str = "",
    revocation: bool = False,
) -> dict[str, Any]:
    """The discovery document; ``issuer`` equals the API tokens' ``iss`` exactly."""
    metadata: dict[str, Any] = {
        "issuer": issuer,
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "token_endpoint": f"{issuer}/token",
        "grant_types_supported": [GRANT_TYPE],
        "token_endpoint_auth_methods_supported": ["none"],
        "response_types_supported": [],
        "subject_types_supported": ["public"],
        "scopes_supported": list(scopes),
    }
    if revocation:
        # RFC 7009 / RFC 8414 §2, and the Token Status List's aggregation (draft §9.3): where a
        # verifier finds every status list this issuer publishes (docs/revocation.md).
        metadata["revocation_endpoint"] = f"{issuer}/revoke"
        metadata["revocation_endpoint_auth_methods_supported"] = ["none"]
        metadata["status_list_aggregation_endpoint"] = f"{issuer}/statuslists"
    if supabase_url:
        metadata["tokengate_supabase_url"] = supabase_url
    if supabase_publishable_key:
        metadata["tokengate_supabase_publishable_key"] = supabase_publishable_key
    return metadata
