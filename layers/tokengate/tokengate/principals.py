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
from .claims import allow_grace, scalar_claims, scope_tokens
from .emf import EmfCounter
from .errors import InvalidTokenError, Reason
from .issuer import api_base_url
from .jwks import HttpJwksFetcher, JwksCache, JwksFetcher
from .statuscache import DEFAULT_MAX_AGE_SECONDS, DEFAULT_REFRESH_SECONDS, StatusListCache
from .statuslist import StatusListView, session_digest, user_digest

if TYPE_CHECKING:  # the API-token authorizer never loads the Supabase side
    from .scopes import ScopePolicy
    from .supabase import SupabaseIdentity, SupabaseTokenVerifier


# ``Principal(...)`` without the generated Python ``__new__`` frame, on the warm path: what that
# ``__new__`` itself does, one C call.
_new = tuple.__new__
_SCALARS = (str, int, float, bool)


def status_list_url(issuer: str, jwks_url: str = "") -> str:
    """Where the authorizers fetch the status list: beside the JWKS they read (the issuer may
    name another host than the stack's own API), else under the issuer."""
    suffix = "/.well-known/jwks.json"
    base = jwks_url[: -len(suffix)] if jwks_url.endswith(suffix) else issuer
    return f"{base}/statuslists/1"


def check_status_entry(claims: Mapping[str, Any], uri: str, view: StatusListView) -> int:
    """The token's entry (``status.status_list``) in the list ``uri`` whose verified ``view`` is
    given: its index, or InvalidTokenError, ``status`` (no usable reference: missing, another
    list, an index outside this one) or ``revoked``. The API-token authorizer's check (its warm
    path inlines the same steps), and ``tokengate explain``'s."""
    try:
        reference = claims["status"]["status_list"]
        idx = reference["idx"]
        usable = reference["uri"] == uri and type(idx) is int and 0 <= idx < view.size
    except (KeyError, TypeError):
        usable = False
    if not usable:
        raise InvalidTokenError(Reason.STATUS, "no usable status list reference")
    if idx in view.revoked:
        raise InvalidTokenError(Reason.REVOKED, "the token's session is revoked")
    return int(idx)


class StatusLists:
    """The published status list of each issuer, fetched with the given fetcher and verified with
    that issuer's JWKS (docs/revocation.md)."""

    def __init__(
        self,
        fetcher: JwksFetcher,
        *,
        jwks_url: str = "",
        clock: Callable[[], float] = time.time,
        budget: Budget | None = None,
        metrics: EmfCounter | None = None,
        refresh: float = DEFAULT_REFRESH_SECONDS,
        max_age: float = DEFAULT_MAX_AGE_SECONDS,
        read_bits: bool = True,
    ) -> None:
        """``read_bits=False``: the product claim only (the Supabase authorizer's tokens carry
        no index; see :func:`tokengate.statuslist.verify_status_list`)."""
        self._fetcher = fetcher
        self._jwks_url = jwks_url
        self._read_bits = read_bits
        self._clock = clock
        self._budget = budget
        self._metrics = metrics
        self._refresh = refresh
        self._max_age = max_age
        self._lists: dict[str, StatusListCache] = {}

    def for_issuer(self, issuer: str, keys: JwksCache | None = None) -> StatusListCache:
        cache = self._lists.get(issuer)
        if cache is None:
            if len(self._lists) >= ApiTokenPrincipals.MAX_ISSUERS:
                self._lists.clear()
            if keys is None:
                keys = JwksCache(
                    self._jwks_url or f"{issuer}/.well-known/jwks.json",
                    self._fetcher,
                    clock=self._clock,
                    budget=self._budget,
                    metrics=self._metrics,
                )
            cache = self._lists[issuer] = StatusListCache(
                status_list_url(issuer, self._jwks_url),
                f"{issuer}/statuslists/1",
                self._fetcher,
                keys,
                clock=self._clock,
                refresh=self._refresh,
                max_age=self._max_age,
                budget=self._budget,
                metrics=self._metrics,
                read_bits=self._read_bits,
            )
        return cache


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
        status_lists: StatusLists | None = None,
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
        self._status_lists = status_lists
        self._verifiers: dict[str, tuple[ApiTokenVerifier, JwksCache]] = {}
        # The configured issuer's verifier, built once: the warm path takes it without a lookup.
        self._configured = self._entry(issuer)[0] if issuer else None
        self._configured_status = (
            status_lists.for_issuer(issuer, self._entry(issuer)[1])
            if issuer and status_lists is not None
            else None
        )
        # scope claim -> (the scope set, its canonical spelling): tokens repeat a few scope sets.
        self._scope_sets: dict[str, tuple[frozenset[str], str]] = {}

    def prefetch(self) -> bool:
        """Load the configured issuer's keys now (a container's start); False if it could not
        (not fatal: the first request tries again) or no issuer is configured yet."""
        if not self._issuer:
            return False
        keys = self._entry(self._issuer)[1].prefetch()
        if self._configured_status is not None:
            return self._configured_status.prefetch() and keys
        return keys

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
        now = self._clock()  # one reading, for the claims and the status list's freshness
        sub, scope, client_id, jti, sid, claims = (
            self._configured or self._derived_verifier(request)
        ).read(token, now)
        held = self._scope_sets.get(scope)
        if held is None:
            if len(self._scope_sets) >= 256:
                self._scope_sets.clear()
            tokens = scope_tokens(scope)
            held = self._scope_sets[scope] = (frozenset(tokens), " ".join(tokens))
        # flat_context(scalar_claims(...) | {...}), spelled out: the five values are strings
        # already, so only the configured claims need the scalar test.
        context: dict[str, CONTEXT_VALUE] = {}
        for name in self._context_claims:
            value = claims.get(name)
            if isinstance(value, _SCALARS):
                context[name] = value
        status = self._configured_status
        if status is not None:  # the status list entry, inline: the warm path's one addition
            view = status.held
            if view is None or now >= status.fresh_until:
                view = status.view()
            try:
                reference = claims["status"]["status_list"]
                idx = reference["idx"]
                usable = reference["uri"] == status.uri and 0 <= idx < view.size
            except (KeyError, TypeError):
                usable = False
            if not usable or type(idx) is not int:
                raise InvalidTokenError(Reason.STATUS, "no usable status list reference")
            if idx in view.revoked:
                raise InvalidTokenError(Reason.REVOKED, "the token's session is revoked")
        elif self._status_lists is not None:
            self._check_status(claims)
        context["sub"] = sub
        context["scope"] = held[1]
        context["client_id"] = client_id
        context["jti"] = jti
        context["sid"] = sid
        return _new(Principal, (sub, held[0], context))

    def _check_status(self, claims: dict[str, Any]) -> None:
        """The token's status list entry (docs/revocation.md): a reference to our own list, an
        index inside it, and status VALID. A dict lookup, a set lookup and two comparisons."""
        status = self._configured_status
        if status is None:
            assert self._status_lists is not None
            issuer = claims["iss"]  # verified: the derived issuer's verifier accepted it
            status = self._status_lists.for_issuer(issuer, self._entry(issuer)[1])
        check_status_entry(claims, status.uri, status.view())


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
        status_lists: StatusLists | None = None,
        issuer: str = "",
    ) -> None:
        self._verifier = verifier
        self._scopes = scopes
        self._context_claims = context_claims
        self._grace = allow_grace(verifier.policy.leeway, cache_ttl)
        self._clock = clock
        self._status_lists = status_lists
        self._issuer = issuer  # the API tokens' issuer: whose status list is read

    def prefetch(self) -> bool:
        ready = self._verifier.prefetch()
        if self._status_lists is not None and self._issuer:
            ready = self._status_lists.for_issuer(self._issuer).prefetch() and ready
        return ready

    def _check_status(self, identity: SupabaseIdentity, request: AuthRequest) -> None:
        """A revoked session, or a token issued before its user's revocation, is refused."""
        assert self._status_lists is not None
        issuer = self._issuer
        if not issuer:
            if request.arn_base is None:
                raise InvalidTokenError(Reason.ISSUER, "no issuer for this event")
            issuer = api_base_url(request.arn_base)
        view = self._status_lists.for_issuer(issuer).view()
        if session_digest(identity.session_id) in view.sessions:
            raise InvalidTokenError(Reason.REVOKED, "the session is revoked")
        before = view.users.get(user_digest(identity.sub))
        if before is not None and identity.claims["iat"] <= before:
            raise InvalidTokenError(Reason.REVOKED, "the user's sessions were revoked")

    def __call__(self, token: str, request: AuthRequest) -> Principal:
        identity = self._verifier.verify(token)
        if identity.exp <= self._clock() - self._grace:
            raise InvalidTokenError(
                Reason.EXPIRES_WITHIN_CACHE_TTL, "valid for less than the authorizer cache TTL"
            )
        if self._status_lists is not None:
            self._check_status(identity, request)
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
