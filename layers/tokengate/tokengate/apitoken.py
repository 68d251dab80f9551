"""API tokens: minting (RFC 9068 profile, docs/contract.md §4) and verification (§6)."""

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from .claims import (
    DEFAULT_LEEWAY_SECONDS,
    allow_grace,
    canonical_subject,
    check_audience,
    check_issuer,
    check_times,
    checked_leeway,
    optional_string,
    scope_tokens,
)
from .errors import ConfigurationError, InvalidTokenError, Reason
from .jws import b64url_encode, encode_compact, jwt_parts
from .keys import AsymmetricKey

if TYPE_CHECKING:  # the authorizers verify, never sign: they do not load the signers
    from .signing import Signer

Clock = Callable[[], float]

ACCESS_TOKEN_TYPE = "at+jwt"
_new = tuple.__new__
MIN_TTL, MAX_TTL = 60, 3600
DEFAULT_TTL = 900


class IssuedToken(NamedTuple):
    token: str
    expires_in: int
    claims: dict[str, Any]
    kid: str = ""  # the signing key's, as the token's header names it

    def __repr__(self) -> str:
        return f"IssuedToken(jti={self.claims.get('jti')!r}, expires_in={self.expires_in})"


class ApiTokenIssuer:
    """Mints API tokens; the signer is injected (KMS or an in-memory key).

    ``expires_in`` is how long the token works at the gateway: the authorizer allows it only
    while ``now + cache_ttl < exp + leeway`` (:func:`tokengate.claims.allow_grace`), so when the
    cache TTL exceeds the leeway the difference comes off the token's lifetime."""

    def __init__(
        self,
        signer: "Signer",
        ttl: int = DEFAULT_TTL,
        clock: Clock = time.time,
        *,
        leeway: int = DEFAULT_LEEWAY_SECONDS,
        cache_ttl: int = 0,
    ) -> None:
        if not MIN_TTL <= ttl <= MAX_TTL:
            raise ConfigurationError(f"the token lifetime must be within {MIN_TTL}-{MAX_TTL} s")
        self._signer = signer
        self._ttl = ttl
        self._clock = clock
        # What the gateway takes off the end of a token's life (0 while the leeway covers it).
        self._lost_to_cache = max(0, -allow_grace(leeway, cache_ttl))

    def issue(
        self,
        *,
        issuer: str,
        subject: str,
        audiences: list[str],
        scopes: list[str],
        client_id: str,
        session_id: str,
        not_after: float,
        extra_claims: Mapping[str, Any] | None = None,
    ) -> IssuedToken:
        """Sign a token living ``ttl`` seconds, cut short at ``not_after`` (the subject token's
        ``exp``), so an exchange never extends a session."""
        import secrets  # minting only: verifiers (the authorizers) never load it

        now = int(self._clock())
        exp = min(now + self._ttl, int(not_after))
        if exp <= now:
            raise InvalidTokenError(Reason.EXPIRED, "the subject token expires now")
        expires_in = exp - now - self._lost_to_cache
        if expires_in <= 0:
            raise InvalidTokenError(
                Reason.EXPIRES_WITHIN_CACHE_TTL,
                "the subject token expires before an API token could pass the gateway",
            )
        claims: dict[str, Any] = dict(extra_claims or {})
        claims.update(
            iss=issuer,
            sub=subject,
            aud=audiences[0] if len(audiences) == 1 else list(audiences),
            iat=now,
            exp=exp,
            jti=b64url_encode(secrets.token_bytes(18)),
            client_id=client_id,
            scope=" ".join(scopes),
            sid=session_id,
        )
        header = {"alg": self._signer.alg, "typ": ACCESS_TOKEN_TYPE, "kid": self._signer.kid}
        signing_input = encode_compact(header, claims)
        signature = self._signer.sign(signing_input)
        token = signing_input.decode("ascii") + "." + b64url_encode(signature)
        return IssuedToken(token=token, expires_in=expires_in, claims=claims, kid=header["kid"])


class KeySource(Protocol):
    def get(self, kid: str) -> AsymmetricKey:
        """The key for ``kid``, or InvalidTokenError / DependencyUnavailableError."""
        ...


class ApiTokenClaims(NamedTuple):
    sub: str
    scopes: tuple[str, ...]
    client_id: str
    jti: str
    sid: str
    claims: dict[str, Any]


class ApiTokenVerifier:
    """Verifies our own API tokens: strict structure, ``typ: at+jwt``, our keys, our issuer.

    ``cache_ttl`` (an authorizer's: how long API Gateway replays its answer) shortens the
    accepted life: a token is accepted only while ``now + cache_ttl < exp + leeway``, so a
    replayed answer never outlives the token. 0 for anything that does not answer a cache."""

    def __init__(
        self,
        keys: KeySource,
        issuer: str,
        audience: str,
        leeway: int = DEFAULT_LEEWAY_SECONDS,
        max_lifetime: int = MAX_TTL,
        clock: Clock = time.time,
        cache_ttl: int = 0,
    ) -> None:
        if not issuer or not audience:
            raise ConfigurationError("the issuer and the audience are required")
        self._keys = keys
        self.issuer = issuer
        self.audience = audience
        self._leeway = checked_leeway(leeway)
        self._grace = allow_grace(leeway, cache_ttl)  # exp + grace: the last allowed instant
        self._max_lifetime = max_lifetime
        self._clock = clock
        # scope claim -> its tokens (scope_tokens): tokens repeat a few scope values, and a
        # lookup costs less than the split on the warm path.
        self._scope_tokens: dict[str, tuple[str, ...]] = {}

    def _tokens_of(self, scope: str) -> tuple[str, ...]:
        if len(self._scope_tokens) >= 256:
            self._scope_tokens.clear()
        tokens = self._scope_tokens[scope] = scope_tokens(scope)
        return tokens

    def verify(self, token: object) -> ApiTokenClaims:
        sub, scope, client_id, jti, sid, claims = self.read(token)
        scopes = self._scope_tokens.get(scope)
        if scopes is None:
            scopes = self._tokens_of(scope)
        # ApiTokenClaims(...) without the generated Python __new__ frame (what it does, in C).
        return _new(ApiTokenClaims, (sub, scopes, client_id, jti, sid, claims))

    def read(
        self, token: object, now: float | None = None
    ) -> tuple[str, str, str, str, str, dict[str, Any]]:
        """:meth:`verify`'s checks and answer without the scope claim's split: (the canonical
        sub, the scope claim, client_id, jti, sid, the claims), for a reader that remembers what
        it makes of each scope value itself. ``now``: a reading of this verifier's clock the
        caller made for the decision (else the clock is read here)."""
        header, claims, signing_input, signature = jwt_parts(token)
        if header.get("typ") != ACCESS_TOKEN_TYPE:
            raise InvalidTokenError(Reason.TYPE, "not an API access token")
        kid = header.get("kid")  # the parser admits only a non-empty string here
        if kid is None:
            raise InvalidTokenError(Reason.UNKNOWN_KEY, "kid missing")
        key = self._keys.get(kid)
        if header["alg"] != key.alg:
            raise InvalidTokenError(Reason.ALGORITHM, "alg does not match the key")
        if not key.verify(signing_input, signature):
            raise InvalidTokenError(Reason.SIGNATURE, "signature does not verify")
        if now is None:
            now = self._clock()
        try:  # the plain valid token, read by subscript (no exception costs nothing here)
            iss, aud, exp, iat = claims["iss"], claims["aud"], claims["exp"], claims["iat"]
            sub, scope, client_id = claims["sub"], claims["scope"], claims["client_id"]
            jti, sid = claims["jti"], claims["sid"]
        except KeyError:
            plain = False
        else:
            plain = (
                iss == self.issuer
                and aud == self.audience
                and type(exp) is int
                and type(iat) is int
                and "nbf" not in claims
                and now - self._grace < exp
                and iat <= now + self._leeway
                and exp - iat <= self._max_lifetime
                and type(sub) is str
                and type(scope) is str
                and type(client_id) is str
                and type(jti) is str
                and type(sid) is str
                and sub != ""
                and client_id != ""
                and jti != ""
            )
        if not plain:  # anything else: the full rules decide, and name the reason
            sub, scope, client_id, jti, sid = self._checked_claims(claims, now)
        return (
            # A subject minted by the exchange is canonical already: lower case throughout
            # (lowering it changes nothing), so the UUID test is skipped for it.
            sub if sub.lower() == sub else canonical_subject(sub),
            scope,
            client_id,
            jti,
            sid,
            claims,
        )

    def _checked_claims(self, claims: dict[str, Any], now: float) -> tuple[str, str, str, str, str]:
        """The claim rules in full (RFC 9068 §2.2, docs/contract.md §6): the reason of the first
        one a token breaks, or its sub, scope, client_id, jti and sid."""
        check_issuer(claims, self.issuer)
        check_audience(claims, self.audience)
        exp = check_times(claims, now, self._leeway, self._max_lifetime)
        if exp <= now - self._grace:
            raise InvalidTokenError(
                Reason.EXPIRES_WITHIN_CACHE_TTL, "valid for less than the authorizer cache TTL"
            )
        sub, scope, client_id, jti, sid = (
            optional_string(claims, name) for name in ("sub", "scope", "client_id", "jti", "sid")
        )
        if not sub or scope is None or not client_id or not jti or sid is None:
            raise InvalidTokenError(Reason.CLAIM, "a required API token claim is missing")
        return sub, scope, client_id, jti, sid
