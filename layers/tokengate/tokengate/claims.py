"""Claim rules shared by both token kinds (RFC 7519 §4.1, RFC 8725 §3.8-3.10).

Each rule is one small function that raises :class:`InvalidTokenError` with its reason code.
Time rules take ``now`` from the caller, so verifiers are tested with an injected clock.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import ConfigurationError, InvalidTokenError, Reason

MAX_LEEWAY_SECONDS = 60
DEFAULT_LEEWAY_SECONDS = 30
# API Gateway replays an authorizer's answer for its cache TTL whatever the token's exp, so an
# authorizer allows a token only while it stays valid for the whole replay (see allow_grace).
DEFAULT_AUTHORIZER_CACHE_TTL = 30
MAX_AUTHORIZER_CACHE_TTL = 60
# How far the cache TTL may exceed the leeway: what a token may lose of its life at the gateway.
# Below the shortest API token lifetime (60 s), so every token is usable.
MAX_CACHE_TTL_OVER_LEEWAY = 30
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def checked_leeway(leeway: int) -> int:
    """A clock-skew allowance a verifier may be built with: 0-60 s (docs/contract.md §5)."""
    if not 0 <= leeway <= MAX_LEEWAY_SECONDS:
        raise ConfigurationError(f"the leeway must be within 0-{MAX_LEEWAY_SECONDS} seconds")
    return leeway


def allow_grace(leeway: int, cache_ttl: int) -> int:
    """How long after its ``exp`` an authorizer may still allow a token: ``leeway - cache_ttl``
    (negative when the cache TTL is the longer). An Allow given at ``now`` is replayed until
    ``now + cache_ttl``; requiring ``now + cache_ttl < exp + leeway`` keeps every replay inside
    the token's validity. Checked here: cache TTL 0-60 s, at most 30 s over the leeway."""
    checked_leeway(leeway)
    if not 0 <= cache_ttl <= MAX_AUTHORIZER_CACHE_TTL:
        raise ConfigurationError(
            f"the authorizer cache TTL must be within 0-{MAX_AUTHORIZER_CACHE_TTL} seconds"
        )
    if cache_ttl - leeway > MAX_CACHE_TTL_OVER_LEEWAY:
        raise ConfigurationError(
            f"the authorizer cache TTL ({cache_ttl} s) may exceed the leeway ({leeway} s) by at "
            f"most {MAX_CACHE_TTL_OVER_LEEWAY} s: an authorizer allows a token only while it "
            "outlives a cached answer, so a larger gap would cut every token short by more"
        )
    return leeway - cache_ttl


def _number(claims: dict[str, Any], name: str) -> int | float | None:
    """A NumericDate (RFC 7519 §2): a JSON number; strings and booleans are refused.

    Kept as parsed: JSON integers have no size limit, and Python compares an int with a float
    exactly, so no conversion can overflow before the range checks below."""
    if name not in claims:
        return None
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidTokenError(Reason.TIME_CLAIM, f"{name} is not a number")
    return value


def check_times(claims: dict[str, Any], now: float, leeway: int, max_lifetime: int) -> float:
    """``exp`` required and in the future, ``iat`` required and not in the future, ``nbf``
    (if any) reached, all within ``leeway``; ``exp - iat`` at most ``max_lifetime``.

    Returns ``exp``.
    """
    exp = _number(claims, "exp")
    iat = _number(claims, "iat")
    nbf = _number(claims, "nbf")
    if exp is None or iat is None:
        raise InvalidTokenError(Reason.TIME_CLAIM, "exp and iat are required")
    if exp <= now - leeway:
        raise InvalidTokenError(Reason.EXPIRED, "token expired")
    if iat > now + leeway or (nbf is not None and nbf > now + leeway):
        raise InvalidTokenError(Reason.NOT_YET_VALID, "token used before its time")
    if exp > iat + max_lifetime:  # not exp - iat: that would turn a huge int into a float
        raise InvalidTokenError(Reason.LIFETIME, "lifetime longer than the issuer allows")
    return float(exp)  # now bounded by now + leeway + max_lifetime


def check_issuer(claims: dict[str, Any], issuer: str) -> None:
    """Exact string equality (RFC 7519 §4.1.1): no case folding, no trailing-slash repair."""
    if claims.get("iss") != issuer:
        raise InvalidTokenError(Reason.ISSUER, "unexpected issuer")


def check_audience(claims: dict[str, Any], audience: str) -> None:
    """``aud`` is the expected string, or an array of strings containing it (RFC 7519 §4.1.3)."""
    aud = claims.get("aud")
    if isinstance(aud, str):
        ok = aud == audience
    elif isinstance(aud, list) and aud and all(isinstance(a, str) for a in aud):
        ok = audience in aud
    else:
        ok = False
    if not ok:
        raise InvalidTokenError(Reason.AUDIENCE, "audience not accepted")


def canonical_subject(sub: str) -> str:
    """One spelling per user: a UUID in lower case (RFC 9562 §4: UUIDs are case-insensitive on
    input and lower case on output), anything else as it is."""
    lowered = sub.lower()
    return lowered if len(sub) == 36 and sub.isascii() and _UUID.fullmatch(lowered) else sub


def check_uuid_subject(claims: dict[str, Any]) -> str:
    """``sub`` must be a UUID string; returned in its canonical, lower-case form, so the same
    user never becomes two principals."""
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub.isascii() or not _UUID.fullmatch(sub.lower()):
        raise InvalidTokenError(Reason.SUBJECT, "sub is not a UUID")
    return sub.lower()


def optional_string(claims: dict[str, Any], name: str) -> str | None:
    value = claims.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidTokenError(Reason.CLAIM, f"{name} is not a string")
    return value


def scalar_claims(claims: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """The named claims whose values are a string, number or boolean (objects, lists and nulls
    are left out): what may be copied into an API token or an authorizer context."""
    return {
        name: claims[name]
        for name in names
        if isinstance(claims.get(name), (str, int, float, bool))
    }


def scope_tokens(value: str) -> tuple[str, ...]:
    """The scope tokens of a scope value, one rule for every reader (RFC 6749 §3.3:
    ``scope-token *( SP scope-token )``): separated by the space character (%x20) alone. A tab,
    a no-break space or any other whitespace is part of the token it sits in, which then names
    no scope the API knows. Empty pieces (doubled, leading or trailing spaces) are dropped; a
    request whose scope has one is malformed (:func:`is_scope_value` tells)."""
    return tuple(filter(None, value.split(" ")))


def is_scope_value(value: str) -> bool:
    """Whether ``value`` is well formed: one or more tokens, each between single spaces."""
    return " ".join(scope_tokens(value)) == value != ""
