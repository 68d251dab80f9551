"""Public signing keys from configuration: what the JWKS publishes in the Secrets Manager key mode.

In that mode the private keys live in secrets only the token exchange may read. The JWKS function
answers anyone, unauthenticated, and has no need of a private key, so it never reads one: it
publishes the public halves given in ``SIGNING_PUBLIC_KEYS`` (the template's ``SigningPublicKeys``,
written by ``make deploy`` and the rotation runbook from the secrets, with the operator's
credentials).

The value is each key's SubjectPublicKeyInfo (DER) in unpadded base64url, comma-separated, the
signing key first: no quotes, spaces or ``=``, so it passes through ``sam deploy
--parameter-overrides`` unchanged, and a private key cannot be mistaken for one (its DER is not a
SubjectPublicKeyInfo).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from .errors import ConfigurationError
from .jws import b64url_decode, b64url_encode
from .keys import MIN_RSA_BITS, PublicKey, algorithm_for, public_jwk, thumbprint

VARIABLE = "SIGNING_PUBLIC_KEYS"


class PublishedKey:
    """One public key to publish: its JWK, with the RFC 7638 thumbprint as ``kid`` (the ``kid``
    the exchange puts in the tokens it signs with the matching private key)."""

    def __init__(self, public_key: PublicKey) -> None:
        if isinstance(public_key, rsa.RSAPublicKey):
            if public_key.key_size < MIN_RSA_BITS:
                raise ConfigurationError(f"{VARIABLE}: RSA keys must be at least 2048 bits")
        elif not (
            isinstance(public_key, ec.EllipticCurvePublicKey)
            and isinstance(public_key.curve, ec.SECP256R1)
        ):
            raise ConfigurationError(f"{VARIABLE}: keys must be RSA (2048+) or EC P-256")
        self.alg = algorithm_for(public_key)
        self.kid = thumbprint(public_key)
        self._jwk = public_jwk(public_key, self.kid)

    @classmethod
    def from_text(cls, text: str) -> PublishedKey:
        try:
            key = serialization.load_der_public_key(b64url_decode(text))
        except ValueError as exc:
            raise ConfigurationError(
                f"{VARIABLE}: an entry is not a base64url SubjectPublicKeyInfo"
            ) from exc
        if not isinstance(key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)):
            raise ConfigurationError(f"{VARIABLE}: keys must be RSA (2048+) or EC P-256")
        return cls(key)

    def public_jwk(self) -> dict[str, str]:
        return dict(self._jwk)


def encode_public_key(public_key: PublicKey) -> str:
    """One entry of ``SIGNING_PUBLIC_KEYS``."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return b64url_encode(der)


def encode_public_keys(public_keys: Iterable[PublicKey]) -> str:
    return ",".join(dict.fromkeys(encode_public_key(key) for key in public_keys))


def published_keys(environ: Mapping[str, str], alg: str) -> list[PublishedKey]:
    """The keys of ``SIGNING_PUBLIC_KEYS``, in order; every one must verify ``alg``."""
    keys = [
        PublishedKey.from_text(entry.strip())
        for entry in environ.get(VARIABLE, "").split(",")
        if entry.strip()
    ]
    for key in keys:
        if key.alg != alg:
            raise ConfigurationError(f"{VARIABLE}: key {key.kid} cannot verify {alg}")
    return keys


def public_keys_of_pems(pems: Iterable[bytes]) -> str:
    """``SIGNING_PUBLIC_KEYS`` for PEM private keys (what the signing secrets hold), in order:
    operator tooling computes it with its own credentials; only public halves come out."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    public_keys: list[PublicKey] = []
    for pem in pems:
        try:
            private_key = load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as exc:
            raise ConfigurationError("a signing secret is not an unencrypted PEM key") from exc
        if not isinstance(private_key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
            raise ConfigurationError("a signing secret must hold an RSA or EC P-256 key")
        PublishedKey(private_key.public_key())  # the same checks as the publishing side
        public_keys.append(private_key.public_key())
    return encode_public_keys(public_keys)
