"""AWS adapters: the KMS signer, key material from KMS and Secrets Manager.

This is the only module that touches boto3/botocore. Every AWS failure is translated here into
:class:`DependencyUnavailableError` (``raise ... from exc``), so handlers answer 503 and
authorizers never Allow.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from .cache import CachedValue
from .errors import ConfigurationError, DependencyUnavailableError
from .keys import PublicKey, algorithm_for, public_jwk, thumbprint
from .signing import LocalKeySigner, der_to_jose

KMS_ALGORITHMS = {"RS256": "RSASSA_PKCS1_V1_5_SHA_256", "ES256": "ECDSA_SHA_256"}
# The KMS key spec that signs each algorithm (as template.yaml creates the stack's key).
KMS_KEY_SPECS = {"RS256": "RSA_2048", "ES256": "ECC_NIST_P256"}


def client(service: str, endpoint_url: str | None = None) -> Any:
    """A boto3 client with explicit, short timeouts and bounded retries."""
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=2,
        read_timeout=3,
        retries={"mode": "standard", "total_max_attempts": 2},
    )
    return boto3.client(service, config=config, endpoint_url=endpoint_url)


class LazyClient:
    """A boto3 client made on first use: boto3 costs ~200 ms to import and warm paths never
    need it. The endpoint is fixed when the holder is built, so a collaborator keeps talking to
    the AWS it was configured for."""

    def __init__(self, service: str) -> None:
        self._service = service
        self._endpoint_url = os.environ.get("AWS_ENDPOINT_URL") or None
        self._client: Any = None
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = client(self._service, self._endpoint_url)
        return getattr(self._client, name)


def _translated(what: str, call: Callable[[], Any]) -> Any:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return call()
    except (BotoCoreError, ClientError) as exc:
        raise DependencyUnavailableError(f"{what}_unavailable", type(exc).__name__) from exc


def kms_public_key(kms: Any, key_id: str) -> tuple[str, PublicKey]:
    """(key ARN, public key) of a KMS signing key."""
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    answer = _translated("kms", lambda: kms.get_public_key(KeyId=key_id))
    public_key = load_der_public_key(answer["PublicKey"])
    if not isinstance(public_key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)):
        raise ConfigurationError(f"KMS key {key_id} is not an RSA or EC key")
    return str(answer["KeyId"]), public_key


def secret_bytes(secrets: Any, secret_id: str) -> bytes:
    answer = _translated("secretsmanager", lambda: secrets.get_secret_value(SecretId=secret_id))
    if "SecretString" in answer:
        return str(answer["SecretString"]).encode("utf-8")
    return bytes(answer["SecretBinary"])


class KmsSigner:
    """Signs in KMS (``MessageType=RAW``); the private key never leaves KMS.

    The public key is read once, on first use (not at import, so a KMS outage during a cold start
    becomes a 503 instead of a failed init); after that, one ``Sign`` call per token.
    """

    def __init__(self, key_id: str, alg: str, kms: Any = None) -> None:
        if alg not in KMS_ALGORITHMS:
            raise ConfigurationError(f"KMS signing supports {sorted(KMS_ALGORITHMS)}")
        if not key_id:
            raise ConfigurationError("SIGNING_KEY_ID is required")
        self._kms = kms if kms is not None else LazyClient("kms")
        self._key_id = key_id
        self.alg = alg
        self._key = CachedValue(self._read_public_key, max_age=math.inf)

    def _read_public_key(self) -> tuple[str, str, dict[str, str]]:
        arn, public_key = kms_public_key(self._kms, self._key_id)
        if algorithm_for(public_key) != self.alg:
            raise ConfigurationError(f"KMS key {self._key_id} cannot sign {self.alg}")
        kid = thumbprint(public_key)
        return arn, kid, public_jwk(public_key, kid)

    @property
    def kid(self) -> str:
        return self._key.get()[1]

    def public_jwk(self) -> dict[str, str]:
        return dict(self._key.get()[2])

    def sign(self, signing_input: bytes) -> bytes:
        arn = self._key.get()[0]
        answer = _translated(
            "kms",
            lambda: self._kms.sign(
                KeyId=arn,
                Message=signing_input,
                MessageType="RAW",
                SigningAlgorithm=KMS_ALGORITHMS[self.alg],
            ),
        )
        signature = bytes(answer["Signature"])
        if self.alg == "RS256":
            return signature
        try:
            return der_to_jose(signature)
        except ValueError as exc:
            raise DependencyUnavailableError("kms_unavailable", "malformed signature") from exc


def local_signer_from_secret(secret_id: str, alg: str, secrets: Any = None) -> LocalKeySigner:
    """The Secrets Manager signing mode: a PEM private key read from a secret."""
    signer = LocalKeySigner.from_pem(
        secret_bytes(secrets or LazyClient("secretsmanager"), secret_id)
    )
    if signer.alg != alg:
        raise ConfigurationError(f"the key in {secret_id} cannot sign {alg}")
    return signer


class SecretsManagerSigner:
    """A :class:`LocalKeySigner` whose PEM comes from Secrets Manager on first use (the opt-in
    Secrets Manager signing mode), re-read hourly."""

    def __init__(self, secret_id: str, alg: str, max_age: float = 3600.0) -> None:
        self.alg = alg
        secrets = LazyClient("secretsmanager")
        self._signer = CachedValue(
            lambda: local_signer_from_secret(secret_id, alg, secrets), max_age=max_age
        )

    @property
    def kid(self) -> str:
        return self._signer.get().kid

    def sign(self, signing_input: bytes) -> bytes:
        return self._signer.get().sign(signing_input)

    def public_jwk(self) -> dict[str, str]:
        return self._signer.get().public_jwk()
