"""Verified callers for the two authorizers: a token in, a :class:`Principal` out.

Each class verifies one token kind and builds the authorizer context API Gateway passes to the
backend (flat string, number or boolean values only).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from .apitoken import ApiTokenVerifier
from .authorizer import CONTEXT_VALUE, AuthRequest, Principal
from .claims import scalar_claims
from .errors import InvalidTokenError, Reason
from .issuer import api_base_url
from .jwks import JwksCache, UrllibJwksFetcher
from .scopes import ScopePolicy
from .supabase import SupabaseTokenVerifier


def flat_context(values: Mapping[str, Any]) -> dict[str, CONTEXT_VALUE]:
    """API Gateway context values must be strings, numbers or booleans; others become JSON."""
    context: dict[str, CONTEXT_VALUE] = {}
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, (str, int, float, bool)):
            context[key] = value
        else:
            context[key] = json.dumps(value, separators=(",", ":"))
    return context


class ApiTokenPrincipals:
    """Verifies API tokens for the API-token authorizer.

    Keys come from this service's own JWKS (``jwks_url``, else the issuer's), cached in memory:
    warm decisions make no network call and need no boto3 import. With no configured issuer,
    the issuer is the API's default URL, derived from the event's method ARN.
    """

    MAX_ISSUERS = 4

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        leeway: int,
        context_claims: tuple[str, ...],
        jwks_url: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway
        self._context_claims = context_claims
        self._jwks_url = jwks_url
        self._clock = clock
        self._fetcher = UrllibJwksFetcher()
        self._verifiers: dict[str, ApiTokenVerifier] = {}

    def _verifier(self, request: AuthRequest) -> ApiTokenVerifier:
        issuer = self._issuer
        if not issuer:
            if request.arn_base is None:
                raise InvalidTokenError(Reason.ISSUER, "no issuer for this event")
            issuer = api_base_url(request.arn_base)
        verifier = self._verifiers.get(issuer)
        if verifier is None:
            if len(self._verifiers) >= self.MAX_ISSUERS:
                self._verifiers.clear()
            jwks_url = self._jwks_url or f"{issuer}/.well-known/jwks.json"
            keys = JwksCache(jwks_url, self._fetcher, clock=self._clock)
            verifier = ApiTokenVerifier(
                keys, issuer, self._audience, self._leeway, clock=self._clock
            )
            self._verifiers[issuer] = verifier
        return verifier

    def __call__(self, token: str, request: AuthRequest) -> Principal:
        verified = self._verifier(request).verify(token)
        context = flat_context(
            scalar_claims(verified.claims, self._context_claims)
            | {
                "sub": verified.sub,
                "scope": " ".join(verified.scopes),
                "client_id": verified.client_id,
                "jti": verified.jti,
                "sid": verified.sid,
            }
        )
        return Principal(verified.sub, frozenset(verified.scopes), context)


class SupabasePrincipals:
    """Verifies Supabase tokens for the Supabase authorizer, with the exchange's own verifier and
    scope rule (default scopes plus ``app_metadata`` extras)."""

    def __init__(
        self,
        verifier: SupabaseTokenVerifier,
        scopes: ScopePolicy,
        context_claims: tuple[str, ...],
    ) -> None:
        self._verifier = verifier
        self._scopes = scopes
        self._context_claims = context_claims

    def __call__(self, token: str, request: AuthRequest) -> Principal:
        identity = self._verifier.verify(token)
        scopes = frozenset(self._scopes.user_scopes(identity))
        context = flat_context(
            scalar_claims(identity.claims, self._context_claims)
            | {
                "sub": identity.sub,
                "scope": " ".join(sorted(scopes)),
                "client_id": identity.client_id,
                "sid": identity.session_id,
            }
        )
        return Principal(identity.sub, scopes, context)
