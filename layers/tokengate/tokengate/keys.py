"""Verification keys, JWK parsing (RFC 7517/7518) and thumbprints (RFC 7638).

Each key knows the one algorithm it verifies; a token's ``alg`` header only has to agree with it
(RFC 8725 §3.1). Verification goes straight to ``cryptography``: it is the same primitive pyjwt
uses, without pyjwt's per-call algorithm lookup and key re-preparation, and it lets us refuse the
non-JOSE signature shapes (DER ECDSA, short RSA signatures) before any arithmetic.
"""

from __future__ import annotations

import json
from hashlib import sha256 as _sha256
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature

from .errors import ConfigurationError
from .jws import b64url_decode, b64url_encode

MIN_RSA_BITS = 2048
MIN_HMAC_SECRET_BYTES = 32
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

_SHA256 = hashes.SHA256()
_PKCS1 = padding.PKCS1v15()
# Signatures are checked over a SHA-256 digest computed by hashlib (OpenSSL's SHA-256, as
# cryptography's own): cryptography's verify then skips re-checking the hash object's type
# through Python-level ABC hooks on every call, ~1% of a warm authorizer decision.
_PREHASHED = Prehashed(_SHA256)


class _EcdsaVerify(ec.ECDSA):
    """ECDSA over a SHA-256 digest, to verify with. ``ec.ECDSA()`` imports cryptography's whole
    OpenSSL backend module (~3 ms of a cold start) to check a deterministic-signing option that
    only signing reads; verification reads ``algorithm`` alone, so this subclass answers it
    without that constructor."""

    def __init__(self) -> None:  # deliberately not ec.ECDSA.__init__: see above
        pass

    @property
    def algorithm(self) -> Prehashed:
        return _PREHASHED

    @property
    def deterministic_signing(self) -> bool:
        return False


_ECDSA = _EcdsaVerify()


class VerificationKey(Protocol):
    """A key that verifies signatures of exactly one JWS algorithm."""

    @property
    def kid(self) -> str | None: ...

    @property
    def alg(self) -> str: ...

    def verify(self, signing_input: bytes, signature: bytes) -> bool: ...


class HmacKey:
    """The Supabase legacy shared secret, used as its raw bytes."""

    __slots__ = ("_compare", "_digest", "kid", "secret")
    alg = "HS256"

    def __init__(self, secret: bytes, kid: str | None = None) -> None:
        # hmac (and OpenSSL's hashlib behind it) is loaded by the first HS256 key, not by every
        # function that imports this module.
        from hmac import compare_digest, digest

        if len(secret) < MIN_HMAC_SECRET_BYTES:
            raise ConfigurationError(
                f"the HS256 secret must be at least {MIN_HMAC_SECRET_BYTES} bytes"
            )
        self.secret = secret
        self.kid = kid
        self._digest = digest
        self._compare = compare_digest

    def __repr__(self) -> str:  # never the secret
        return f"HmacKey(kid={self.kid!r})"

    def verify(self, signing_input: bytes, signature: bytes) -> bool:
        return self._compare(self._digest(self.secret, signing_input, "sha256"), signature)


class RsaKey:
    __slots__ = ("_signature_length", "kid", "public_key")
    alg = "RS256"

    def __init__(self, public_key: rsa.RSAPublicKey, kid: str | None = None) -> None:
        if public_key.key_size < MIN_RSA_BITS:
            raise ValueError("RSA key under 2048 bits")
        self.public_key = public_key
        self.kid = kid
        self._signature_length = (public_key.key_size + 7) // 8

    def __repr__(self) -> str:
        return f"RsaKey(kid={self.kid!r})"

    def verify(self, signing_input: bytes, signature: bytes) -> bool:
        if len(signature) != self._signature_length:
            return False
        try:
            self.public_key.verify(signature, _sha256(signing_input).digest(), _PKCS1, _PREHASHED)
        except InvalidSignature:
            return False
        return True


class EcKey:
    __slots__ = ("_ecdsa", "kid", "public_key")
    alg = "ES256"

    def __init__(self, public_key: ec.EllipticCurvePublicKey, kid: str | None = None) -> None:
        if not isinstance(public_key.curve, ec.SECP256R1):
            raise ValueError("EC key not on P-256")
        self.public_key = public_key
        self.kid = kid
        self._ecdsa = _ECDSA

    def __repr__(self) -> str:
        return f"EcKey(kid={self.kid!r})"

    def verify(self, signing_input: bytes, signature: bytes) -> bool:
        # JOSE form only (RFC 7518 §3.4): 32-byte r then 32-byte s, each in [1, n-1].
        if len(signature) != 64:
            return False
        r = int.from_bytes(signature[:32], "big")
        s = int.from_bytes(signature[32:], "big")
        if not (0 < r < P256_ORDER and 0 < s < P256_ORDER):
            return False
        try:
            self.public_key.verify(
                encode_dss_signature(r, s), _sha256(signing_input).digest(), self._ecdsa
            )
        except InvalidSignature:
            return False
        return True


AsymmetricKey = RsaKey | EcKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


def _uint(value: int, length: int | None = None) -> str:
    size = length if length is not None else max(1, (value.bit_length() + 7) // 8)
    return b64url_encode(value.to_bytes(size, "big"))


def public_jwk_members(public_key: PublicKey) -> dict[str, str]:
    """The required members of a public JWK, in RFC 7638 order."""
    if isinstance(public_key, rsa.RSAPublicKey):
        numbers = public_key.public_numbers()
        return {"e": _uint(numbers.e), "kty": "RSA", "n": _uint(numbers.n)}
    if isinstance(public_key, ec.EllipticCurvePublicKey) and isinstance(
        public_key.curve, ec.SECP256R1
    ):
        point = public_key.public_numbers()
        return {"crv": "P-256", "kty": "EC", "x": _uint(point.x, 32), "y": _uint(point.y, 32)}
    raise ConfigurationError("signing keys must be RSA (2048+) or EC P-256")


def thumbprint(public_key: PublicKey) -> str:
    """RFC 7638 JWK thumbprint (SHA-256), the stable ``kid`` of our own keys."""
    import hashlib

    canonical = json.dumps(public_jwk_members(public_key), separators=(",", ":"), sort_keys=True)
    return b64url_encode(hashlib.sha256(canonical.encode()).digest())


def algorithm_for(public_key: PublicKey) -> str:
    return "RS256" if isinstance(public_key, rsa.RSAPublicKey) else "ES256"


def public_jwk(public_key: PublicKey, kid: str) -> dict[str, str]:
    """The JWK we publish: ``kty``, ``kid``, ``use``, ``alg`` and the key members."""
    members = public_jwk_members(public_key)
    return {"kty": members["kty"], "kid": kid, "use": "sig", "alg": algorithm_for(public_key)} | {
        k: v for k, v in members.items() if k != "kty"
    }


def _b64_int(jwk: dict[str, Any], name: str, length: int | None = None) -> int:
    value = jwk.get(name)
    if not isinstance(value, str):
        raise ValueError(f"{name} missing")
    raw = b64url_decode(value)
    if length is not None and len(raw) != length:
        raise ValueError(f"{name} has the wrong length")
    return int.from_bytes(raw, "big")


def key_from_jwk(jwk: dict[str, Any]) -> AsymmetricKey:
    """Build a verification key from a public JWK, or raise ``ValueError`` if it is unusable.

    Symmetric (``oct``) keys, encryption keys, keys without a ``kid``, RSA under 2048 bits and EC
    keys off P-256 are all refused: a JWKS can only ever add RS256/ES256 signature keys.
    """
    kid = jwk.get("kid")
    if not isinstance(kid, str) or not kid:
        raise ValueError("kid missing")
    if jwk.get("use", "sig") != "sig":
        raise ValueError("not a signature key")
    key_ops = jwk.get("key_ops")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        raise ValueError("key_ops does not allow verify")
    kty = jwk.get("kty")
    key: AsymmetricKey
    if kty == "RSA":
        numbers = rsa.RSAPublicNumbers(_b64_int(jwk, "e"), _b64_int(jwk, "n"))
        key = RsaKey(numbers.public_key(), kid)
    elif kty == "EC":
        if jwk.get("crv") != "P-256":
            raise ValueError("EC key not on P-256")
        point = ec.EllipticCurvePublicNumbers(
            _b64_int(jwk, "x", 32), _b64_int(jwk, "y", 32), ec.SECP256R1()
        )
        key = EcKey(point.public_key(), kid)
    else:
        raise ValueError("unsupported key type")
    if "alg" in jwk and jwk["alg"] != key.alg:
        raise ValueError("alg does not match the key type")
    return key


def usable_keys(document: dict[str, Any]) -> tuple[dict[str, AsymmetricKey], list[str]]:
    """Usable keys of a JWKS by ``kid``, and why each other entry was dropped (unusable keys and
    ambiguous ``kid``s)."""
    entries = document.get("keys")
    if not isinstance(entries, list):
        raise ValueError("not a JWKS")
    keys: dict[str, AsymmetricKey] = {}
    dropped: list[str] = []
    ambiguous: set[str] = set()
    for entry in entries:
        if not isinstance(entry, dict):
            dropped.append("not an object")
            continue
        try:
            key = key_from_jwk(entry)
        except (ValueError, TypeError) as exc:
            dropped.append(str(exc)[:60] or type(exc).__name__)
            continue
        assert key.kid is not None
        if key.kid in keys:
            ambiguous.add(key.kid)
        keys[key.kid] = key
    for kid in ambiguous:
        del keys[kid]
        dropped.extend(["duplicate kid"] * 2)
    return keys, dropped
