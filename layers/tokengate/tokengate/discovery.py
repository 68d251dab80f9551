"""Key publication (RFC 7517 JWKS) and discovery metadata (RFC 8414, OpenID Discovery)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .exchange import GRANT_TYPE


def render_jwks(jwks: Iterable[dict[str, str]]) -> dict[str, Any]:
    """One entry per ``kid``, in the order given (current first)."""
    unique = {jwk["kid"]: jwk for jwk in jwks}
    return {"keys": list(unique.values())}


def render_metadata(
    issuer: str, algorithms: Iterable[str], scopes: Iterable[str]
) -> dict[str, Any]:
    """The same document serves ``openid-configuration`` and ``oauth-authorization-server``;
    ``issuer`` equals the API tokens' ``iss`` exactly."""
    return {
        "issuer": issuer,
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "token_endpoint": f"{issuer}/token",
        "grant_types_supported": [GRANT_TYPE],
        "token_endpoint_auth_methods_supported": ["none"],
        "response_types_supported": ["token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": sorted(set(algorithms)),
        "scopes_supported": list(scopes),
    }
