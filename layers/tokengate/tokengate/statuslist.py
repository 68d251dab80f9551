"""Token Status List (IETF draft-ietf-oauth-status-list): encoding, signing and verifying.

A status list is a byte array in which each referenced token owns ``bits`` bits at its index
``idx``: index 0 is the least significant bit of byte 0 (the draft's §4.1 ordering), compressed
with DEFLATE in the ZLIB format and base64url-encoded as ``lst``. The status list token is a JWT
with header ``typ: statuslist+jwt`` and claims ``sub`` (its own URI, which equals the ``uri`` of
every referenced token), ``iat``, ``exp``, ``ttl`` and ``status_list: {bits, lst}``. Status 0 is
VALID, 1 INVALID (revoked).

Supabase access tokens carry no index, so the same token carries a product claim,
``tokengate_revoked``: the revoked sessions and the users' "revoked before" times, as truncated
SHA-256 digests of domain-tagged identifiers (public documents never name a user or a session).
See docs/revocation.md.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from .errors import InvalidTokenError, Reason
from .jws import b64url_decode, b64url_encode, encode_compact, strict_json_object
from .keys import AsymmetricKey

if TYPE_CHECKING:  # verifiers (the authorizers) never sign
    from .signing import Signer

STATUS_LIST_TYPE = "statuslist+jwt"
MEDIA_TYPE = "application/statuslist+jwt"
BITS = 1
VALID, INVALID = 0, 1
# One list: 2^22 indices (512 KiB once inflated, a few hundred bytes compressed while sparse).
CAPACITY = 1 << 22
MAX_INFLATED_BYTES = CAPACITY // 8
MAX_STATUS_LIST_BYTES = 512 * 1024  # the signed document, fetched and stored
HASH_BYTES = 8
PRODUCT_CLAIM = "tokengate_revoked"
_USER_ENTRY = struct.Struct(">8sQ")


def session_digest(session_id: str) -> bytes:
    """What the published document names a session by (never the session id itself)."""
    return hashlib.sha256(b"tokengate-session\x00" + session_id.encode()).digest()[:HASH_BYTES]


def user_digest(sub: str) -> bytes:
    """What the published document names a user by (never the user id itself)."""
    return hashlib.sha256(b"tokengate-user\x00" + sub.encode()).digest()[:HASH_BYTES]


def encode_lst(revoked: Iterable[int], size: int = CAPACITY) -> str:
    """``lst`` for a 1-bit list of ``size`` entries with ``revoked`` set (draft §4.1)."""
    data = bytearray((size + 7) // 8)
    for idx in revoked:
        if not 0 <= idx < size:
            raise ValueError("index outside the list")
        data[idx >> 3] |= 1 << (idx & 7)
    return b64url_encode(zlib.compress(bytes(data), 9))


def inflate_lst(lst: object, limit: int = MAX_INFLATED_BYTES, *, whole: bool = True) -> bytes:
    """The byte array of ``lst``; ValueError if it is not base64url ZLIB or inflates past
    ``limit`` (a compressed list is tiny; a bomb is refused before it is inflated).
    ``whole=False``, for a reader that does not need the bits: only that ``lst`` is base64url and
    starts a ZLIB stream (its header and first byte read, nothing more inflated); b"" then."""
    if not isinstance(lst, str):
        raise ValueError("lst is not a string")
    inflater = zlib.decompressobj()
    try:
        data = inflater.decompress(b64url_decode(lst), limit + 1 if whole else 1)
    except zlib.error as exc:
        raise ValueError("lst is not ZLIB data") from exc
    if not whole:
        return b""
    if len(data) > limit or not inflater.eof or inflater.unused_data:
        raise ValueError("lst is too large or not one ZLIB stream")
    return data


# Bytes per step of the scan for set bits: an all-VALID block is one comparison with zeros.
_SCAN_BYTES = 4096
_ZERO_BLOCK = bytes(_SCAN_BYTES)


def set_indices(data: bytes) -> frozenset[int]:
    """Indices whose (1-bit) status is INVALID: bit ``i % 8`` of byte ``i // 8``, least
    significant first. Scanned a block at a time: a sparse list costs one comparison per block
    and each set bit work on its own block only (read as one integer, the whole 512 KiB list cost
    a pass over all of it per set bit: ~3 ms for three revocations, ~45 ms for a hundred)."""
    found: list[int] = []
    for start in range(0, len(data), _SCAN_BYTES):
        block = data[start : start + _SCAN_BYTES]
        if block == _ZERO_BLOCK[: len(block)]:
            continue
        number = int.from_bytes(block, "little")
        base = start << 3
        while number:
            low = number & -number
            found.append(base + low.bit_length() - 1)
            number ^= low
    return frozenset(found)


def _pack_sessions(digests: Iterable[bytes]) -> str:
    return b64url_encode(zlib.compress(b"".join(sorted(set(digests))), 9)) if digests else ""


def _pack_users(users: Mapping[bytes, int]) -> str:
    packed = b"".join(_USER_ENTRY.pack(k, v) for k, v in sorted(users.items()))
    return b64url_encode(zlib.compress(packed, 9))


def status_list_claims(
    *,
    uri: str,
    iat: int,
    lifetime: int,
    ttl: int,
    revoked: Iterable[int],
    sessions: Iterable[bytes],
    users: Mapping[bytes, int],
) -> dict[str, Any]:
    return {
        "sub": uri,
        "iat": iat,
        "exp": iat + lifetime,
        "ttl": ttl,
        "status_list": {"bits": BITS, "lst": encode_lst(revoked)},
        PRODUCT_CLAIM: {
            "sessions": _pack_sessions(list(sessions)),
            "users": _pack_users(users),
        },
    }


def sign_status_list(signer: Signer, claims: dict[str, Any]) -> str:
    header = {"alg": signer.alg, "typ": STATUS_LIST_TYPE, "kid": signer.kid}
    signing_input = encode_compact(header, claims)
    return signing_input.decode("ascii") + "." + b64url_encode(signer.sign(signing_input))


class StatusListView:
    """A verified status list: what the authorizers decide from. Attributes in slots: an
    authorizer reads two on every decision, where a NamedTuple field goes through a descriptor."""

    __slots__ = ("exp", "iat", "revoked", "sessions", "size", "ttl", "users")

    def __init__(
        self,
        iat: int,
        exp: int,
        ttl: int,
        size: int,
        revoked: frozenset[int],
        sessions: frozenset[bytes],
        users: dict[bytes, int],
    ) -> None:
        self.iat = iat
        self.exp = exp
        self.ttl = ttl
        self.size = size
        self.revoked = revoked  # INVALID indices
        self.sessions = sessions  # revoked sessions' digests
        self.users = users  # user digest -> revoked before (epoch seconds)

    def __repr__(self) -> str:
        return (
            f"StatusListView(iat={self.iat}, exp={self.exp}, size={self.size}, "
            f"revoked={len(self.revoked)}, sessions={len(self.sessions)}, users={len(self.users)})"
        )


class KeySource(Protocol):
    def get(self, kid: str) -> AsymmetricKey: ...


def _unpack_product(claim: object) -> tuple[frozenset[bytes], dict[bytes, int]]:
    if not isinstance(claim, dict):
        raise ValueError("product claim missing")
    sessions_text, users_text = claim.get("sessions"), claim.get("users")
    sessions: frozenset[bytes] = frozenset()
    if sessions_text:
        raw = inflate_lst(sessions_text, MAX_INFLATED_BYTES)
        if len(raw) % HASH_BYTES:
            raise ValueError("sessions not a list of digests")
        sessions = frozenset(raw[i : i + HASH_BYTES] for i in range(0, len(raw), HASH_BYTES))
    users: dict[bytes, int] = {}
    if users_text:
        raw = inflate_lst(users_text, MAX_INFLATED_BYTES)
        if len(raw) % _USER_ENTRY.size:
            raise ValueError("users not a list of entries")
        users = dict(_USER_ENTRY.iter_unpack(raw))
    return sessions, users


def verify_status_list(
    token: object, keys: KeySource, uri: str, now: float, *, read_bits: bool = True
) -> StatusListView:
    """Verify a status list token (draft §8.3): strict compact JWS, ``typ`` statuslist+jwt, a key
    of our JWKS with its own algorithm, ``sub`` equal to ``uri``, not expired, a 1-bit list.

    ``read_bits=False``: for a reader of the product claim alone (the Supabase authorizer, whose
    tokens carry no index), the list's bits are not inflated (512 KiB, ~2 ms): its view has no
    index (size 0), so an index looked up in it is outside the list, refused."""
    if type(token) is not str or len(token) > MAX_STATUS_LIST_BYTES:
        raise InvalidTokenError(Reason.MALFORMED, "not a status list token of acceptable size")
    parts = token.split(".")
    if len(parts) != 3 or not all(parts):
        raise InvalidTokenError(Reason.MALFORMED, "not three base64url segments")
    try:
        header = strict_json_object(b64url_decode(parts[0]))
        claims = strict_json_object(b64url_decode(parts[1]))
        signature = b64url_decode(parts[2])
    except ValueError as exc:
        raise InvalidTokenError(Reason.MALFORMED, str(exc)) from exc
    if set(header) - {"alg", "typ", "kid"} or header.get("typ") != STATUS_LIST_TYPE:
        raise InvalidTokenError(Reason.TYPE, "not a status list token")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise InvalidTokenError(Reason.UNKNOWN_KEY, "kid missing")
    key = keys.get(kid)
    if header.get("alg") != key.alg:
        raise InvalidTokenError(Reason.ALGORITHM, "alg does not match the key")
    if not key.verify(f"{parts[0]}.{parts[1]}".encode("ascii"), signature):
        raise InvalidTokenError(Reason.SIGNATURE, "signature does not verify")
    if claims.get("sub") != uri:
        raise InvalidTokenError(Reason.CLAIM, "sub is not the list's URI")
    iat, exp, ttl = claims.get("iat"), claims.get("exp"), claims.get("ttl", 0)
    if type(iat) is not int or type(exp) is not int or type(ttl) is not int:
        raise InvalidTokenError(Reason.TIME_CLAIM, "iat, exp and ttl must be integers")
    if exp <= now:
        raise InvalidTokenError(Reason.EXPIRED, "status list expired")
    status_list = claims.get("status_list")
    if not isinstance(status_list, dict) or status_list.get("bits") != BITS:
        raise InvalidTokenError(Reason.CLAIM, "not a 1-bit status list")
    try:
        data = inflate_lst(status_list.get("lst"), whole=read_bits)
        sessions, users = _unpack_product(claims.get(PRODUCT_CLAIM))
    except ValueError as exc:
        raise InvalidTokenError(Reason.CLAIM, str(exc)) from exc
    return StatusListView(iat, exp, ttl, len(data) * 8, set_indices(data), sessions, users)
