"""Which API scopes a verified Supabase user may hold: one rule for the exchange and the Supabase
authorizer.

A user gets the default scopes plus the extras listed under one ``app_metadata`` key
(server-controlled), never anything from ``user_metadata`` (user-editable), and only scopes the
API knows.

A token Supabase's OAuth server issued to a third-party app (it carries ``client_id``) acts for
the user only as far as the app may: its API scopes are the user's, limited to what the
configuration lets that client ever receive (nothing for a client it does not list) and, when the
token's own ``scope`` (the user's consent) names API scopes, to those too.
"""

from collections.abc import Mapping
from typing import TYPE_CHECKING, NamedTuple

from .claims import scope_tokens
from .defaults import DEFAULT_SCOPES_CLAIM
from .errors import ConfigurationError, RequestError

if TYPE_CHECKING:
    from .supabase import SupabaseIdentity


class _ScopePolicyFields(NamedTuple):
    scopes_supported: tuple[str, ...]
    default_scopes: tuple[str, ...]
    scopes_claim: str | None
    client_scopes: Mapping[str, tuple[str, ...]]


class ScopePolicy(_ScopePolicyFields):
    """Immutable and checked when made (a named tuple: no ``dataclasses`` import at cold start)."""

    __slots__ = ()

    def __new__(
        cls,
        scopes_supported: tuple[str, ...],
        default_scopes: tuple[str, ...],
        scopes_claim: str | None = DEFAULT_SCOPES_CLAIM,
        client_scopes: Mapping[str, tuple[str, ...]] | None = None,
    ) -> "ScopePolicy":
        if not set(default_scopes) <= set(scopes_supported):
            raise ConfigurationError("default scopes must be among the supported scopes")
        return super().__new__(
            cls,
            scopes_supported,
            default_scopes,
            scopes_claim,
            client_scopes if client_scopes is not None else {},
        )

    def user_scopes(self, identity: "SupabaseIdentity") -> set[str]:
        """Default scopes plus extras from ``app_metadata[scopes_claim]`` (a list or a
        space-separated string), limited to the supported scopes."""
        granted = set(self.default_scopes)
        extra = identity.app_metadata.get(self.scopes_claim) if self.scopes_claim else None
        if isinstance(extra, str):
            extra = list(scope_tokens(extra))
        if isinstance(extra, list):
            granted.update(s for s in extra if isinstance(s, str))
        granted &= set(self.scopes_supported)
        if identity.client_id is not None:
            granted &= set(self.client_scopes.get(identity.client_id, ()))
            consent = identity.claims.get("scope")
            named = (
                set(scope_tokens(consent)) & set(self.scopes_supported)
                if isinstance(consent, str)
                else set()
            )
            if named:
                granted &= named
        return granted

    def scopes_for(
        self, requested: tuple[str, ...] | None, identity: "SupabaseIdentity"
    ) -> list[str]:
        """RFC 6749 §3.3: the default scopes when none is requested, else the requested ones,
        each of which this user must be entitled to (``invalid_scope`` otherwise)."""
        if requested is None:
            allowed = self.user_scopes(identity)
            return [scope for scope in self.default_scopes if scope in allowed]
        if not all(requested):
            raise RequestError("invalid_scope", "The scope parameter is malformed.")
        if not set(requested) <= self.user_scopes(identity):
            raise RequestError("invalid_scope", "The requested scope exceeds what is allowed.")
        return list(dict.fromkeys(requested))
