"""Verified callers for the two authorizers: a token in, a :class:`Principal` out.

Each class verifies one token kind and builds the authorizer context API Gateway passes to the
backend (flat string, number or boolean values only).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .apitoken import ApiTokenVerifier
from .authorizer import CONTEXT_VALUE, AuthRequest, Principal
from .budget import Budget
from .claims import allow_grace, scalar_claims
from .emf import EmfCounter
from .errors import InvalidTokenError, Reason
from .issuer import api_base_url
from .jwks import HttpJwksFetcher, JwksCache, JwksFetcher

if TYPE_CHECKING:  # the API-token authorizer never loads the Supabase side
    from .scopes import ScopePolicy
    from .supabase import SupabaseTokenVerifier


# ``Principal(...)`` without the generated Python ``__new__`` frame, on the warm path: what that
# ``__new__`` itself does, one C call.
_new = tuple.__new__
_SCALARS = (str, int, float, bool)


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
        fetcher: JwksFetcher | None = None,
        budget: Budget | None = None,
        metrics: EmfCounter | None = None,
        cache_ttl: int = 0,
    ) -> None:
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway
        self._cache_ttl = cache_ttl  # API Gateway replays an answer this long
        self._context_claims = context_claims
        self._jwks_url = jwks_url
        self._clock = clock
        self._fetcher = fetcher or HttpJwksFetcher()
        self._budget = budget
        self._metrics = metrics
        self._verifiers: dict[str, tuple[ApiTokenVerifier, JwksCache]] = {}
        # The configured issuer's verifier, built once: the warm path takes it without a lookup.
        self._configured = self._entry(issuer)[0] if issuer else None
        # scope claim -> (the scope set, its canonical spelling): tokens repeat a few scope sets.
        self._scope_sets: dict[str, tuple[frozenset[str], str]] = {}

    def prefetch(self) -> bool:
        """Load the configured issuer's keys now (a container's start); False if it could not
        (not fatal: the first request tries again) or no issuer is configured yet."""
        if not self._issuer:
            return False
        return self._entry(self._issuer)[1].prefetch()

    def _derived_verifier(self, request: AuthRequest) -> ApiTokenVerifier:
        """With no configured issuer: the verifier of the API's default URL, from the event."""
        if request.arn_base is None:
            raise InvalidTokenError(Reason.ISSUER, "no issuer for this event")
        return self._entry(api_base_url(request.arn_base))[0]

    def _entry(self, issuer: str) -> tuple[ApiTokenVerifier, JwksCache]:
        entry = self._verifiers.get(issuer)
        if entry is None:
            if len(self._verifiers) >= self.MAX_ISSUERS:
                self._verifiers.clear()
            jwks_url = self._jwks_url or f"{issuer}/.well-known/jwks.json"
            keys = JwksCache(
                jwks_url,
                self._fetcher,
                clock=self._clock,
                budget=self._budget,
                metrics=self._metrics,
            )
            verifier = ApiTokenVerifier(
                keys,
                issuer,
                self._audience,
                self._leeway,
                clock=self._clock,
                cache_ttl=self._cache_ttl,
            )
            entry = self._verifiers[issuer] = (verifier, keys)
        return entry

    def __call__(self, token: str, request: AuthRequest) -> Principal:
        verified = (self._configured or self._derived_verifier(request)).verify(token)
        # flat_context(scalar_claims(...) | {...}), spelled out: the five values are strings
        # already, so only the configured claims need the scalar test.
        claims = verified.claims
        context: dict[str, CONTEXT_VALUE] = {}
        for name in self._context_claims:
            value = claims.get(name)
            if isinstance(value, _SCALARS):
                context[name] = value
        scope = claims["scope"]  # a string: the verifier checked it
        held = self._scope_sets.get(scope)
        if held is None:
            if len(self._scope_sets) >= 256:
                self._scope_sets.clear()
            held = self._scope_sets[scope] = (frozenset(verified.scopes), " ".join(verified.scopes))
        context["sub"] = verified.sub
        context["scope"] = held[1]
        context["client_id"] = verified.client_id
        context["jti"] = verified.jti
        context["sid"] = verified.sid
        return _new(Principal, (verified.sub, held[0], context))


class SupabasePrincipals:
    """Verifies Supabase tokens for the Supabase authorizer, with the exchange's own verifier and
    scope rule (default scopes plus ``app_metadata`` extras).

    A token is accepted only while ``now + cache_ttl < exp + leeway``: API Gateway replays the
    answer for ``cache_ttl`` seconds, and no replay may outlive the token. (The exchange uses the
    same verifier without this rule: its answer is not replayed.)"""

    def __init__(
        self,
        verifier: SupabaseTokenVerifier,
        scopes: ScopePolicy,
        context_claims: tuple[str, ...],
        cache_ttl: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._verifier = verifier
        self._scopes = scopes
        self._context_claims = context_claims
        self._grace = allow_grace(verifier.policy.leeway, cache_ttl)
        self._clock = clock

    def prefetch(self) -> bool:
        return self._verifier.prefetch()

    def __call__(self, token: str, request: AuthRequest) -> Principal:
        identity = self._verifier.verify(token)
        if identity.exp <= self._clock() - self._grace:
            raise InvalidTokenError(
                Reason.EXPIRES_WITHIN_CACHE_TTL, "valid for less than the authorizer cache TTL"
            )
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
