"""The signer interface, and the signer for a PEM private key held in memory.

A signer produces JOSE-form signatures (RFC 7518 §3.3-3.4) over a signing input. The KMS signer
lives with the other AWS adapters in :mod:`tokengate.aws`.
"""

from __future__ import annotations

from typing import Protocol

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from .errors import ConfigurationError
from .keys import PublicKey, algorithm_for, public_jwk, thumbprint


class Signer(Protocol):
    @property
    def alg(self) -> str: ...

    @property
    def kid(self) -> str: ...

    def sign(self, signing_input: bytes) -> bytes: ...

    def public_jwk(self) -> dict[str, str]: ...


def der_to_jose(der_signature: bytes, size: int = 32) -> bytes:
    """DER ECDSA signature → fixed-width ``r || s``, each zero-padded to ``size`` bytes.

    Without the padding, roughly 1 in 128 ES256 signatures (r or s with a leading zero byte)
    would come out short and fail verification.
    """
    r, s = decode_dss_signature(der_signature)
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


class LocalKeySigner:
    """Signs with a private key held in memory (the Secrets Manager mode)."""

    def __init__(self, private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> None:
        public_key: PublicKey = private_key.public_key()
        if isinstance(private_key, rsa.RSAPrivateKey):
            if private_key.key_size < 2048:
                raise ConfigurationError("RSA signing keys must be at least 2048 bits")
        elif not isinstance(private_key.curve, ec.SECP256R1):
            raise ConfigurationError("EC signing keys must be on P-256")
        self._private_key = private_key
        self.alg = algorithm_for(public_key)
        self.kid = thumbprint(public_key)
        self._jwk = public_jwk(public_key, self.kid)

    @classmethod
    def from_pem(cls, pem: bytes) -> LocalKeySigner:
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        try:
            key = load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as exc:
            raise ConfigurationError("the signing key is not an unencrypted PEM key") from exc
        if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
            raise ConfigurationError("the signing key must be RSA or EC P-256")
        return cls(key)

    def sign(self, signing_input: bytes) -> bytes:
        if isinstance(self._private_key, rsa.RSAPrivateKey):
            return self._private_key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return der_to_jose(self._private_key.sign(signing_input, ec.ECDSA(hashes.SHA256())))

    def public_jwk(self) -> dict[str, str]:
        return dict(self._jwk)
