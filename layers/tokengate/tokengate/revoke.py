"""POST /revoke: OAuth 2.0 Token Revocation (RFC 7009), revoking the presented token's session.

The token may be one of our API tokens (verified with our own public keys and issuer) or a
Supabase access token of the project (verified as the exchange verifies it). Its expiry does not
matter: revoking only ever takes rights away, and RFC 7009 §2.2 answers 200 either way. A token
that is not ours, malformed or unknown revokes nothing and is answered 200 too (§2.2); only a
malformed request is a 400 (§2.2.1), and a store that cannot be written a 503.
"""

import logging
from collections.abc import Callable, Iterable
from typing import NamedTuple

from .apitoken import ACCESS_TOKEN_TYPE
from .errors import DependencyUnavailableError, InvalidTokenError, RequestError
from .exchange import MAX_BODY_BYTES, _form_pairs
from .jws import parse_compact
from .keys import key_from_jwk
from .revocation import RevocationStore, StatusListPublisher
from .supabase import SupabaseTokenVerifier

logger = logging.getLogger("tokengate.revoke")


class RevocationRequest(NamedTuple):
    token: str
    token_type_hint: str | None = None

    def __repr__(self) -> str:  # never the token
        return f"RevocationRequest(token_type_hint={self.token_type_hint!r})"


def _invalid(description: str) -> RequestError:
    return RequestError("invalid_request", description)


def parse_revocation_request(body: bytes, content_type: str | None) -> RevocationRequest:
    """RFC 7009 §2.1: form-encoded ``token`` (required) and ``token_type_hint`` (optional, a
    hint only: an unknown value is not an error). Repeated parameters are refused."""
    if len(body) > MAX_BODY_BYTES:
        raise _invalid("The request body is too large.")
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != "application/x-www-form-urlencoded":
        raise _invalid("Send application/x-www-form-urlencoded.")
    params: dict[str, list[str]] = {}
    for name, value in _form_pairs(body):
        params.setdefault(name, []).append(value)
    for name, values in params.items():
        if len(values) > 1:
            raise _invalid(f"The parameter {name} is repeated.")
    token = params.get("token", [""])[0]
    if not token:
        raise _invalid("token is required.")
    hint = params.get("token_type_hint", [None])[0]
    return RevocationRequest(token, hint)


class RevocationService:
    """Finds the presented token's session and revokes it, then republishes the status list."""

    def __init__(
        self,
        store: RevocationStore,
        publisher: StatusListPublisher,
        supabase: SupabaseTokenVerifier,
        public_jwks: Callable[[], Iterable[dict[str, str]]],
    ) -> None:
        self._store = store
        self._publisher = publisher
        self._supabase = supabase
        self._public_jwks = public_jwks

    def revoke(self, request: RevocationRequest, issuer: str) -> str:
        """The outcome (``revoked`` or ``not_ours``); DependencyUnavailableError when the key
        material or the store cannot answer (then nothing was written)."""
        found = self._session_of(request.token, issuer)
        if found is None:
            return "not_ours"
        sub, session_id = found
        self._store.revoke_session(session_id, sub)
        logger.info("session revoked", extra={"outcome": "revoked", "sub": sub})
        try:
            self._publisher.publish(issuer)
        except DependencyUnavailableError as exc:
            # Stored: the exchange refuses the session already; the scheduled publication
            # carries it to the authorizers.
            logger.warning("status list not published", extra={"reason": exc.reason})
        return "revoked"

    def _session_of(self, token: str, issuer: str) -> tuple[str, str] | None:
        try:
            unverified = parse_compact(token)
        except InvalidTokenError:
            return None
        if unverified.header.get("typ") == ACCESS_TOKEN_TYPE:
            return self._api_token_session(unverified.header, token, issuer)
        try:
            return self._supabase.verified_session(token)
        except InvalidTokenError:
            return None

    def _api_token_session(
        self, header: dict[str, object], token: str, issuer: str
    ) -> tuple[str, str] | None:
        unverified = parse_compact(token)
        for jwk in self._public_jwks():
            if jwk.get("kid") != header.get("kid"):
                continue
            key = key_from_jwk(jwk)
            if header.get("alg") != key.alg:
                return None
            if not key.verify(unverified.signing_input, unverified.signature):
                return None
            claims = unverified.unverified_claims
            sub, sid = claims.get("sub"), claims.get("sid")
            if claims.get("iss") != issuer or not isinstance(sub, str) or not isinstance(sid, str):
                return None
            return (sub, sid) if sid else None
        return None


def revocation_response(
    service: RevocationService | None, event: dict[str, object], issuer: str
) -> dict[str, object]:
    """Event in, response out for POST /revoke; the one place its errors become answers."""
    from .apigw import NO_STORE, BodyError, body_bytes, header, json_response

    if service is None:
        return json_response(404, {"error": "not_found"}, NO_STORE)
    try:
        request = parse_revocation_request(
            body_bytes(event, MAX_BODY_BYTES),
            header(event, "content-type"),
        )
        outcome = service.revoke(request, issuer)
    except RequestError as exc:
        logger.info("revocation refused", extra={"outcome": "refused", "reason": exc.error})
        body = {"error": exc.error, "error_description": exc.description}
        return json_response(400, body, NO_STORE)
    except BodyError as exc:
        logger.info("revocation refused", extra={"outcome": "refused", "reason": "body"})
        return json_response(
            400, {"error": "invalid_request", "error_description": str(exc)}, NO_STORE
        )
    except DependencyUnavailableError as exc:
        logger.warning(
            "revocation unavailable", extra={"outcome": "unavailable", "reason": exc.reason}
        )
        return json_response(
            503,
            {"error": "temporarily_unavailable", "error_description": "Try again shortly."},
            {**NO_STORE, "Retry-After": "5"},
        )
    logger.info("revocation answered", extra={"outcome": outcome})
    return {"statusCode": 200, "headers": dict(NO_STORE), "body": ""}
