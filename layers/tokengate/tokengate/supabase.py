"""Verification of Supabase Auth access tokens (docs/contract.md §5).

``HS256`` is checked against the project's legacy secret; ``ES256``/``RS256`` against the key the
project's JWKS publishes under the token's ``kid``. The accepted algorithm always comes from the
key: a header ``alg`` that differs is refused before any signature arithmetic.
"""

import time
from collections.abc import Callable
from typing import Any, NamedTuple

from .claims import (
    DEFAULT_LEEWAY_SECONDS,
    check_audience,
    check_issuer,
    check_times,
    check_uuid_subject,
    checked_leeway,
    optional_string,
)
from .defaults import DEFAULT_MIN_AAL
from .errors import ConfigurationError, InvalidTokenError, Reason
from .jwks import JwksCache
from .jws import UnverifiedToken, parse_compact
from .keys import HmacKey, VerificationKey

Clock = Callable[[], float]

SUPABASE_AUDIENCE = "authenticated"
SUPABASE_ROLE = "authenticated"
AAL_LEVELS = {"aal1": 1, "aal2": 2}
# Supabase allows access-token lifetimes of up to one week.
SUPABASE_MAX_LIFETIME = 7 * 24 * 3600


class _SupabasePolicyFields(NamedTuple):
    issuer: str
    leeway: int
    allow_anonymous: bool
    allowed_client_ids: frozenset[str]
    min_aal: str
    max_lifetime: int


class SupabasePolicy(_SupabasePolicyFields):
    """What a Supabase token must satisfy beyond a valid signature. Immutable and checked when
    made (a named tuple: no ``dataclasses`` import at cold start)."""

    __slots__ = ()

    def __new__(
        cls,
        issuer: str,
        leeway: int = DEFAULT_LEEWAY_SECONDS,
        allow_anonymous: bool = False,
        allowed_client_ids: frozenset[str] = frozenset(),
        min_aal: str = DEFAULT_MIN_AAL,
        max_lifetime: int = SUPABASE_MAX_LIFETIME,
    ) -> "SupabasePolicy":
        checked_leeway(leeway)
        if min_aal not in AAL_LEVELS:
            raise ConfigurationError("the minimum aal must be aal1 or aal2")
        return super().__new__(
            cls, issuer, leeway, allow_anonymous, allowed_client_ids, min_aal, max_lifetime
        )

    def check(self, claims: dict[str, Any], now: float) -> "SupabaseIdentity":
        if claims.get("iss") == "supabase" and "ref" in claims:
            raise InvalidTokenError(Reason.API_KEY, "a project API key is not a user token")
        check_issuer(claims, self.issuer)
        check_audience(claims, SUPABASE_AUDIENCE)
        if claims.get("role") != SUPABASE_ROLE:
            raise InvalidTokenError(Reason.ROLE, "role is not authenticated")
        sub = check_uuid_subject(claims)
        session_id = claims.get("session_id")
        if not isinstance(session_id, str) or not session_id:
            raise InvalidTokenError(Reason.SESSION, "session_id missing")
        exp = check_times(claims, now, self.leeway, self.max_lifetime)
        anonymous = claims.get("is_anonymous")
        if anonymous is not False and not (self.allow_anonymous and anonymous is True):
            raise InvalidTokenError(Reason.ANONYMOUS, "anonymous users are not accepted")
        client_id = optional_string(claims, "client_id")
        if client_id is not None and client_id not in self.allowed_client_ids:
            raise InvalidTokenError(Reason.CLIENT, "third-party client not allowed")
        aal = claims.get("aal", "aal1")
        if not isinstance(aal, str) or aal not in AAL_LEVELS:
            raise InvalidTokenError(Reason.AAL, "unknown aal")
        if AAL_LEVELS[aal] < AAL_LEVELS[self.min_aal]:
            raise InvalidTokenError(Reason.AAL, "aal below the required level")
        app_metadata = claims.get("app_metadata")
        return SupabaseIdentity(
            sub=sub,
            session_id=session_id,
            exp=exp,
            aal=aal,
            client_id=client_id,
            app_metadata=app_metadata if isinstance(app_metadata, dict) else {},
            claims=claims,
        )


class SupabaseIdentity(NamedTuple):
    """A verified Supabase user. ``user_metadata`` is deliberately not lifted out of ``claims``:
    it is user-editable and must never grant anything."""

    sub: str
    session_id: str
    exp: float
    aal: str
    client_id: str | None
    app_metadata: dict[str, Any]
    claims: dict[str, Any]


class SupabaseTokenVerifier:
    """Strict parse → key chosen by us → signature → policy."""

    def __init__(
        self,
        policy: SupabasePolicy,
        hmac_key: Callable[[], HmacKey | None] | None = None,
        jwks: JwksCache | None = None,
        clock: Clock = time.time,
    ) -> None:
        if hmac_key is None and jwks is None:
            raise ConfigurationError("configure the legacy secret, the JWKS, or both")
        self.policy = policy
        self._hmac_key = hmac_key
        self._jwks = jwks
        self._clock = clock

    def prefetch(self) -> bool:
        """Load the project's JWKS now (a container's start); a failure is not fatal."""
        return self._jwks.prefetch() if self._jwks is not None else False

    def verify(self, token: object) -> SupabaseIdentity:
        unverified = parse_compact(token)
        key = self._key_for(unverified)
        if not key.verify(unverified.signing_input, unverified.signature):
            raise InvalidTokenError(Reason.SIGNATURE, "signature does not verify")
        return self.policy.check(unverified.unverified_claims, self._clock())

    def verified_session(self, token: object) -> tuple[str, str]:
        """(sub, session_id) of a token the project signed for this issuer, whatever its times
        and other claims: enough to revoke its session (RFC 7009 revokes expired tokens too)."""
        unverified = parse_compact(token)
        key = self._key_for(unverified)
        if not key.verify(unverified.signing_input, unverified.signature):
            raise InvalidTokenError(Reason.SIGNATURE, "signature does not verify")
        claims = unverified.unverified_claims
        check_issuer(claims, self.policy.issuer)
        session_id = claims.get("session_id")
        if not isinstance(session_id, str) or not session_id:
            raise InvalidTokenError(Reason.SESSION, "session_id missing")
        return check_uuid_subject(claims), session_id

    def _key_for(self, unverified: UnverifiedToken) -> VerificationKey:
        typ = unverified.header.get("typ", "JWT")
        if typ.upper() != "JWT":
            raise InvalidTokenError(Reason.TYPE, "not a Supabase access token")
        alg = unverified.alg
        if alg == "HS256":
            key = self._hmac_key() if self._hmac_key is not None else None
            if key is None:
                raise InvalidTokenError(Reason.ALGORITHM, "HS256 is not enabled")
            return key
        if alg not in ("ES256", "RS256") or self._jwks is None:
            raise InvalidTokenError(Reason.ALGORITHM, "algorithm not allowed")
        if unverified.kid is None:
            raise InvalidTokenError(Reason.UNKNOWN_KEY, "kid missing")
        jwk_key = self._jwks.get(unverified.kid)
        if jwk_key.alg != alg:
            raise InvalidTokenError(Reason.ALGORITHM, "alg does not match the key")
        return jwk_key
