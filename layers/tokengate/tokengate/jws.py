"""Strict compact JWS (RFC 7515 §7.1) parsing and encoding helpers.

Parsing produces an :class:`UnverifiedToken`: nothing in it may be trusted until a verifier has
checked the signature with a key it chose itself. The rules are stricter than RFC 7515 requires
(RFC 8725 §3): canonical unpadded base64url only, strict JSON objects with no duplicate members or
non-finite numbers, a size cap applied before any decoding, and a closed set of header members.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import sys
from typing import Any, NamedTuple

from .errors import InvalidTokenError, Reason

MAX_TOKEN_LENGTH = 8192
ALLOWED_HEADER_MEMBERS = frozenset({"alg", "typ", "kid"})
MAX_KID_LENGTH = 256

_B64URL = re.compile(r"[A-Za-z0-9_-]+")
_COMPACT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


def b64url_encode(data: bytes) -> str:
    """Unpadded base64url (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_INDEX = {char: value for value, char in enumerate(_ALPHABET)}
_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
# strict_mode (Python 3.11+) refuses only what the checks here already refuse (characters outside
# the alphabet, misplaced padding); the command-line client also runs on Python 3.10.
_STRICT: dict[str, bool] = {"strict_mode": True} if sys.version_info >= (3, 11) else {}
# With 2 (3) characters in the last quantum, the low 4 (2) bits of the last one are unused.
_UNUSED_BITS = {2: 0b1111, 3: 0b11}


def b64url_decode(segment: str) -> bytes:
    """Decode canonical unpadded base64url; anything else raises ``ValueError``.

    Canonical means the unused trailing bits are zero, so two spellings of one value cannot both
    pass (re-encoding the result gives the same text back).
    """
    if not _B64URL.fullmatch(segment):
        raise ValueError("not canonical base64url")
    return _decode_checked(segment)


def _decode_checked(segment: str) -> bytes:
    """``b64url_decode`` for text already known to be in the base64url alphabet."""
    rest = len(segment) % 4
    if rest == 1 or (rest and _INDEX[segment[-1]] & _UNUSED_BITS[rest]):
        raise ValueError("not canonical base64url")
    padded = segment.encode("ascii").translate(_TO_STANDARD) + b"=" * (-len(segment) % 4)
    try:
        return binascii.a2b_base64(padded, **_STRICT)
    except binascii.Error as exc:
        raise ValueError("not base64url") from exc


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name}")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("non-finite number")
    return value


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate member")
    return result


_STRICT_DECODER = json.JSONDecoder(
    object_pairs_hook=_unique_members, parse_constant=_reject_constant, parse_float=_finite_float
)


def strict_json_object(data: bytes) -> dict[str, Any]:
    """Parse UTF-8 JSON that must be an object; duplicates, NaN and Infinity are refused."""
    try:
        value = _STRICT_DECODER.decode(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ValueError("not strict JSON") from exc
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


class UnverifiedJws(NamedTuple):
    """A compact JWS split and decoded, signature not yet checked; the payload is bytes."""

    header: dict[str, Any]
    payload: bytes
    signing_input: bytes
    signature: bytes


def parse_jws(token: object) -> UnverifiedJws:
    """Split and decode a compact JWS (any payload), refusing anything outside the profile."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        raise InvalidTokenError(Reason.MALFORMED, "not a string of acceptable size")
    if not _COMPACT.fullmatch(token):
        raise InvalidTokenError(Reason.MALFORMED, "not three base64url segments")
    header_b64, payload_b64, signature_b64 = token.split(".")
    try:
        header = _header(header_b64)
        payload = _decode_checked(payload_b64)
        signature = _decode_checked(signature_b64)
    except ValueError as exc:
        raise InvalidTokenError(Reason.MALFORMED, str(exc)) from exc
    signing_input = f"{header_b64}.{payload_b64}".encode("ascii")
    return UnverifiedJws(dict(header), payload, signing_input, signature)


class UnverifiedToken(NamedTuple):
    """A compact JWS split and decoded, signature not yet checked."""

    header: dict[str, Any]
    unverified_claims: dict[str, Any]
    signing_input: bytes
    signature: bytes

    @property
    def alg(self) -> str:
        return str(self.header["alg"])

    @property
    def kid(self) -> str | None:
        kid = self.header.get("kid")
        return kid if isinstance(kid, str) else None


def parse_compact(token: object) -> UnverifiedToken:
    """A JWT: a strict compact JWS whose payload is a strict JSON object."""
    jws = parse_jws(token)
    try:
        claims = strict_json_object(jws.payload)
    except ValueError as exc:
        raise InvalidTokenError(Reason.MALFORMED, str(exc)) from exc
    return UnverifiedToken(jws.header, claims, jws.signing_input, jws.signature)


_HEADER_CACHE: dict[str, dict[str, Any]] = {}
_HEADER_CACHE_SIZE = 64


def _header(segment: str) -> dict[str, Any]:
    """Decode and check a protected header. Headers repeat across tokens (same alg, typ and
    kid), so checked ones are memoized by their exact text; a bounded dict, cleared when full."""
    header = _HEADER_CACHE.get(segment)
    if header is None:
        header = strict_json_object(_decode_checked(segment))
        _check_header(header)
        if len(_HEADER_CACHE) >= _HEADER_CACHE_SIZE:
            _HEADER_CACHE.clear()
        _HEADER_CACHE[segment] = header
    return header


def _check_header(header: dict[str, Any]) -> None:
    extra = header.keys() - ALLOWED_HEADER_MEMBERS
    if extra:
        raise InvalidTokenError(Reason.HEADER, "header member not allowed")
    if not isinstance(header.get("alg"), str):
        raise InvalidTokenError(Reason.ALGORITHM, "alg missing")
    if "typ" in header and not isinstance(header["typ"], str):
        raise InvalidTokenError(Reason.TYPE, "typ not a string")
    if "kid" in header:
        kid = header["kid"]
        if not isinstance(kid, str) or not kid or len(kid) > MAX_KID_LENGTH:
            raise InvalidTokenError(Reason.UNKNOWN_KEY, "kid not a usable string")


def encode_compact(header: dict[str, Any], claims: dict[str, Any]) -> bytes:
    """The signing input ``b64(header).b64(claims)`` with compact, deterministic JSON."""
    return (
        b64url_encode(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + b64url_encode(json.dumps(claims, separators=(",", ":")).encode())
    ).encode("ascii")
