"""Token factories: real keys, real signatures, overrides instead of pasted JWT strings."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from devstack.supabase_dev import project_api_key_claims
from tokengate.errors import InvalidTokenError, Reason
from tokengate.jws import b64url_encode
from tokengate.keys import AsymmetricKey, public_jwk, thumbprint
from tokengate.signing import der_to_jose

SUPABASE_URL = "https://abcdefghijklmnopqrst.supabase.co"
SUPABASE_ISSUER = f"{SUPABASE_URL}/auth/v1"
HS_SECRET = "super-secret-jwt-token-with-at-least-32-characters-long"
USER_ID = "8b3b1c7e-2f1a-4c3d-9e8f-0a1b2c3d4e5f"


def b64json(value: Any) -> str:
    return b64url_encode(json.dumps(value, separators=(",", ":")).encode())


@dataclass
class KeyPair:
    """A generated private key with its published JWK."""

    private: Any
    kid: str = ""
    extra_jwk: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.kid:
            self.kid = thumbprint(self.private.public_key())

    @property
    def alg(self) -> str:
        return "RS256" if isinstance(self.private, rsa.RSAPrivateKey) else "ES256"

    def jwk(self) -> dict[str, Any]:
        return public_jwk(self.private.public_key(), self.kid) | self.extra_jwk

    def public_pem(self) -> bytes:
        pem: bytes = self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return pem

    def sign(self, signing_input: bytes) -> bytes:
        if isinstance(self.private, rsa.RSAPrivateKey):
            return self.private.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return der_to_jose(self.private.sign(signing_input, ec.ECDSA(hashes.SHA256())))


def rsa_pair(bits: int = 2048, kid: str = "") -> KeyPair:
    return KeyPair(rsa.generate_private_key(65537, bits), kid)


def ec_pair(kid: str = "") -> KeyPair:
    return KeyPair(ec.generate_private_key(ec.SECP256R1()), kid)


def hs256(signing_input: bytes, secret: str | bytes = HS_SECRET) -> bytes:
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, signing_input, hashlib.sha256).digest()


def supabase_claims(now: float | None = None, **overrides: Any) -> dict[str, Any]:
    """Claims exactly as Supabase Auth puts them in an access token (docs/contract.md §5)."""
    issued = int(now if now is not None else time.time())
    claims: dict[str, Any] = {
        "iss": SUPABASE_ISSUER,
        "sub": USER_ID,
        "aud": "authenticated",
        "exp": issued + 3600,
        "iat": issued,
        "email": "user@example.com",
        "phone": "",
        "app_metadata": {"provider": "email", "providers": ["email"]},
        "user_metadata": {"name": "User"},
        "role": "authenticated",
        "aal": "aal1",
        "amr": [{"method": "password", "timestamp": issued}],
        "session_id": str(uuid.uuid4()),
        "is_anonymous": False,
    }
    for name, value in overrides.items():
        if value is DROP:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


DROP = object()


def jws(header: dict[str, Any], claims: dict[str, Any] | str, sign: Any) -> str:
    """Compact JWS with any header and a signer callable (or raw signature bytes)."""
    payload = claims if isinstance(claims, str) else b64json(claims)
    signing_input = f"{b64json(header)}.{payload}".encode()
    signature = sign(signing_input) if callable(sign) else sign
    return f"{signing_input.decode()}.{b64url_encode(signature)}"


def hs_token(claims: dict[str, Any], secret: str | bytes = HS_SECRET, **header: Any) -> str:
    head = {"alg": "HS256", "typ": "JWT", "kid": "0TRLgU4IVDYEpL98"} | header
    return jws({k: v for k, v in head.items() if v is not DROP}, claims, lambda m: hs256(m, secret))


def key_token(pair: KeyPair, claims: dict[str, Any], **header: Any) -> str:
    head = {"alg": pair.alg, "typ": "JWT", "kid": pair.kid} | header
    return jws({k: v for k, v in head.items() if v is not DROP}, claims, pair.sign)


def anon_key_claims(now: float | None = None, role: str = "anon") -> dict[str, Any]:
    """The project's legacy API keys: HS256 JWTs with iss 'supabase', a ref, no sub."""
    return project_api_key_claims(role, "abcdefghijklmnopqrst", now)


class StaticKeySet:
    """A fixed set of public keys: the KeySource seam for verifier tests (no JWKS, no network)."""

    def __init__(self, keys: Iterable[AsymmetricKey]) -> None:
        self._keys = {key.kid: key for key in keys if key.kid}

    def get(self, kid: str) -> AsymmetricKey:
        try:
            return self._keys[kid]
        except KeyError:
            raise InvalidTokenError(Reason.UNKNOWN_KEY, "kid is not one of ours") from None
