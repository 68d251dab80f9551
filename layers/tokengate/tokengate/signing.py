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
    def from_pem(cls, pem: bytes, *, own_key: bool = False) -> LocalKeySigner:
        """A signer for an unencrypted PEM private key (RSA 2048+ or EC P-256).

        ``own_key=True`` is for the key our own tooling generated and wrote to our own secret
        (the Secrets Manager signing mode): OpenSSL's full RSA key check (primality of p and q,
        the CRT values) is skipped, which is most of a cold start's key load (~35 ms of ~40).
        It is safe for that key because (1) only our rotation tooling writes it, from
        ``cryptography``'s own generator, and the secret's IAM policy lets nobody else write it
        (anyone who could write there could store any key of their choosing, checked or not, so
        the check defends against nothing an attacker could do); (2) what the check would catch
        is a corrupted or hand-made key, and the self-test below catches any key whose
        signatures would not verify under its public key, at a fraction of the cost; and
        (3) OpenSSL checks every CRT signature against the public key before releasing it, so a
        bad CRT value cannot leak the key through a faulty signature. Any other PEM is checked in
        full.
        """
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        try:
            key = load_pem_private_key(pem, password=None, unsafe_skip_rsa_key_validation=own_key)
        except (ValueError, TypeError) as exc:
            raise ConfigurationError("the signing key is not an unencrypted PEM key") from exc
        if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
            raise ConfigurationError("the signing key must be RSA or EC P-256")
        signer = cls(key)
        if own_key and isinstance(key, rsa.RSAPrivateKey):
            signer._self_test()
        return signer

    def _self_test(self) -> None:
        """Sign a probe and verify it with the public key: a key that cannot issue verifiable
        tokens stops the function at start instead of minting tokens no one accepts."""
        from cryptography.exceptions import InvalidSignature

        probe = b"tokengate signing key self-test"
        try:
            signature = self.sign(probe)
            public_key = self._private_key.public_key()
            if isinstance(public_key, rsa.RSAPublicKey):
                public_key.verify(signature, probe, padding.PKCS1v15(), hashes.SHA256())
        except (InvalidSignature, ValueError) as exc:
            raise ConfigurationError("the signing key does not produce valid signatures") from exc

    def sign(self, signing_input: bytes) -> bytes:
        if isinstance(self._private_key, rsa.RSAPrivateKey):
            return self._private_key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return der_to_jose(self._private_key.sign(signing_input, ec.ECDSA(hashes.SHA256())))

    def public_jwk(self) -> dict[str, str]:
        return dict(self._jwk)
