"""Strict compact JWS (RFC 7515 §7.1) parsing and encoding helpers.

Parsing produces an :class:`UnverifiedToken`: nothing in it may be trusted until a verifier has
checked the signature with a key it chose itself. The rules are stricter than RFC 7515 requires
(RFC 8725 §3): canonical unpadded base64url only, strict JSON objects with no duplicate members or
non-finite numbers, a size cap applied before any decoding, and a closed set of header members.
"""

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


def b64url_encode(data: bytes) -> str:
    """Unpadded base64url (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# base64url -> standard base64 for binascii, with the standard alphabet's own "+", "/" and "="
# mapped to "!", which binascii's strict mode (Python 3.11+) refuses: one C pass checks the
# alphabet and decodes. Without strict mode (Python 3.10, where the command-line client also
# runs) binascii would skip such characters, so the alphabet is checked by a regex first there.
_TO_STANDARD = bytes.maketrans(b"-_+/=", b"+/!!!")
_STRICT = sys.version_info >= (3, 11)
_B64URL = re.compile(r"[A-Za-z0-9_-]+")
# With 2 (3) characters in the last quantum, the low 4 (2) bits of the last one are unused and
# must be zero: the last character is then one of these.
_CANONICAL_LAST = {
    0: _ALPHABET,
    2: "".join(c for i, c in enumerate(_ALPHABET) if not i & 0b1111),
    3: "".join(c for i, c in enumerate(_ALPHABET) if not i & 0b11),
}
_PADDING = {0: b"", 2: b"==", 3: b"="}
_a2b = binascii.a2b_base64


def b64url_decode(segment: str) -> bytes:
    """Decode canonical unpadded base64url; anything else raises ``ValueError``.

    Canonical means the unused trailing bits are zero, so two spellings of one value cannot both
    pass (re-encoding the result gives the same text back).
    """
    rest = len(segment) & 3
    if not segment or rest == 1 or segment[-1] not in _CANONICAL_LAST[rest]:
        raise ValueError("not canonical base64url")
    try:
        if _STRICT:
            return binascii.a2b_base64(
                segment.encode("ascii").translate(_TO_STANDARD) + _PADDING[rest], strict_mode=True
            )
        if not _B64URL.fullmatch(segment):
            raise ValueError("not canonical base64url")
        return binascii.a2b_base64(segment.encode("ascii").translate(_TO_STANDARD) + _PADDING[rest])
    except (UnicodeEncodeError, binascii.Error) as exc:
        raise ValueError("not canonical base64url") from exc


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
_SCAN = _STRICT_DECODER.scan_once  # type: ignore[attr-defined]  # set by JSONDecoder.__init__


def strict_json_object(data: bytes) -> dict[str, Any]:
    """Parse UTF-8 JSON that must be an object; duplicates, NaN and Infinity are refused."""
    try:
        text = data.decode("utf-8")
        if text[:1] == "{" and text[-1:] == "}":
            # The common case, without the decoder's whitespace regexes around the value:
            # a value that starts and ends with a brace has to end exactly at the last one.
            value, end = _SCAN(text, 0)
            if end != len(text):
                raise ValueError("extra data")
        else:
            value = _STRICT_DECODER.decode(text)
    except (UnicodeDecodeError, ValueError, RecursionError, StopIteration) as exc:
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


def _split(token: object) -> tuple[dict[str, Any], bytes, bytes, bytes]:
    """(checked header, payload, signing input, signature) of a compact JWS. The header is the
    memoized one: callers copy it before handing it out."""
    if type(token) is not str or len(token) > MAX_TOKEN_LENGTH:
        raise InvalidTokenError(Reason.MALFORMED, "not a string of acceptable size")
    first = token.find(".")
    second = token.find(".", first + 1)
    if first < 1 or second < first + 2 or token.find(".", second + 1) >= 0:
        raise InvalidTokenError(Reason.MALFORMED, "not three base64url segments")
    try:
        header = _HEADER_CACHE.get(token[:first]) or _header(token[:first])
        payload = b64url_decode(token[first + 1 : second])
        signature = b64url_decode(token[second + 1 :])
    except ValueError as exc:
        raise InvalidTokenError(Reason.MALFORMED, str(exc)) from exc
    global _LAST_HEADER
    _LAST_HEADER = (token[: first + 1], header)
    return header, payload, token[:second].encode("ascii"), signature


def parse_jws(token: object) -> UnverifiedJws:
    """Split and decode a compact JWS (any payload), refusing anything outside the profile."""
    header, payload, signing_input, signature = _split(token)
    return UnverifiedJws(dict(header), payload, signing_input, signature)


def jwt_parts(token: object) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """``parse_compact`` for the verifiers' hot path: the same checks, as a plain tuple whose
    header is shared with the parser's memo (read it, never change it).

    A token whose header is the one last seen, with canonical other segments, is taken apart in
    this one frame (:func:`_split`, :func:`b64url_decode` and :func:`strict_json_object` spelled
    out, with the same tests): the header is recognized by a prefix comparison, without slicing
    and hashing it. Anything else goes the long way, which names the reason."""
    if type(token) is str and len(token) <= MAX_TOKEN_LENGTH and _STRICT:
        header_dot, header = _LAST_HEADER
        if token.startswith(header_dot):
            first = len(header_dot) - 1
            second = token.find(".", first + 1)
            p_rest, s_rest = (second - first - 1) & 3, (len(token) - second - 1) & 3
            if (
                second > first + 1  # a payload (a missing second dot leaves one in the signature)
                and second + 1 < len(token)  # and a signature
                and p_rest != 1
                and s_rest != 1
                and token[second - 1] in _CANONICAL_LAST[p_rest]
                and token[-1] in _CANONICAL_LAST[s_rest]
                # The standard alphabet's own "+" and "/" are not base64url: with neither in
                # the token, swapping "-" and "_" for them over the whole token (two memchr-led
                # passes, no per-byte table) gives standard base64, whose strict decoder refuses
                # "=" anywhere but in the padding added here.
                and "+" not in token
                and "/" not in token
            ):
                try:
                    raw = token.encode("ascii")
                    standard = raw.replace(b"-", b"+").replace(b"_", b"/")
                    signature = _a2b(standard[second + 1 :] + _PADDING[s_rest], strict_mode=True)
                    text = _a2b(
                        standard[first + 1 : second] + _PADDING[p_rest], strict_mode=True
                    ).decode("utf-8")
                    # An object that ends the text exactly: anything around it (whitespace, more
                    # data) or any other value goes the long way.
                    claims, end = _SCAN(text, 0)
                    if end == len(text) and type(claims) is dict:
                        return header, claims, raw[:second], signature
                except (UnicodeError, ValueError, RecursionError, StopIteration):
                    pass  # the long way names the reason (a third dot or an "=" fails base64 here)
    header, payload, signing_input, signature = _split(token)
    try:
        claims = strict_json_object(payload)
    except ValueError as exc:
        raise InvalidTokenError(Reason.MALFORMED, str(exc)) from exc
    return header, claims, signing_input, signature


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
    header, claims, signing_input, signature = jwt_parts(token)
    return UnverifiedToken(dict(header), claims, signing_input, signature)


_HEADER_CACHE: dict[str, dict[str, Any]] = {}
_HEADER_CACHE_SIZE = 64
# The header most recently decoded, checked and seen in a parsed token: (its text followed by
# the dot that ends it, the header). Set below to a checked header, so it is never a stand-in.
_LAST_HEADER: tuple[str, dict[str, Any]]


def _header(segment: str) -> dict[str, Any]:
    """Decode and check a protected header. Headers repeat across tokens (same alg, typ and
    kid), so checked ones are memoized by their exact text; a bounded dict, cleared when full."""
    header = strict_json_object(b64url_decode(segment))
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


def _seed_last_header() -> tuple[str, dict[str, Any]]:
    text = b64url_encode(b'{"alg":"HS256","typ":"JWT"}')
    return text + ".", _header(text)


_LAST_HEADER = _seed_last_header()
