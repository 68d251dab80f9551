"""moto in server mode as the local KMS and Secrets Manager, and what the stack provisions."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import socket
import threading
import uuid
from dataclasses import dataclass
from typing import Any

import boto3
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from moto.server import ThreadedMotoServer

from tokengate.aws import KMS_KEY_SPECS

REGION = "us-east-1"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalAws:
    """A moto server on loopback; ``endpoint`` is what AWS_ENDPOINT_URL points at."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)

    def start(self) -> LocalAws:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no request lines from moto
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop serving and free the port. The server's loop looks for a stop request every
        half second, or after a request: connecting (and hanging up) until it has stopped ends
        the wait at once."""
        stopping = threading.Thread(target=self._server.stop, daemon=True)
        stopping.start()
        while stopping.is_alive():
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.1),
            ):
                pass
            stopping.join(0.02)

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )


@dataclass(frozen=True)
class Provisioned:
    signing_key_arn: str
    jwt_secret_arn: str
    signing_key_secret_arn: str
    revocation_table: str = ""


def create_revocation_table(dynamodb: Any, name: str) -> str:
    """The template's RevocationTable: on demand, key ``pk``, TTL on ``expires_at``."""
    dynamodb.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
    )
    dynamodb.update_time_to_live(
        TableName=name,
        TimeToLiveSpecification={"AttributeName": "expires_at", "Enabled": True},
    )
    return name


def new_private_key_pem(alg: str) -> bytes:
    """A fresh private key for ``alg`` (RS256: RSA-2048; ES256: P-256), PKCS #8 PEM."""
    key = (
        rsa.generate_private_key(65537, 2048)
        if alg == "RS256"
        else ec.generate_private_key(ec.SECP256R1())
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@functools.cache
def development_key_pem(alg: str) -> bytes:
    """The Secrets Manager signing key of the stacks this process starts: made once per
    algorithm (an RSA key takes 50-300 ms to make; the suite's workers start hundreds of stacks,
    each with its own secret holding this key, as they share moto's backend)."""
    return new_private_key_pem(alg)


def provision(
    kms: Any, secrets: Any, alg: str, jwt_secret: str, dynamodb: Any = None
) -> Provisioned:
    """What a deployment has: the KMS signing key (+ alias), the Supabase secret, a PEM signing
    key in a secret for the opt-in Secrets Manager mode, and the revocation table."""
    # Names carry a suffix: stacks started in one process share moto's in-memory backend.
    suffix = uuid.uuid4().hex[:8]
    key = kms.create_key(
        KeyUsage="SIGN_VERIFY", KeySpec=KMS_KEY_SPECS[alg], Description="tokengate local"
    )
    arn = key["KeyMetadata"]["Arn"]
    kms.create_alias(AliasName=f"alias/tokengate-local-signing-{suffix}", TargetKeyId=arn)
    jwt = secrets.create_secret(
        Name=f"tokengate/supabase-jwt-secret-{suffix}", SecretString=jwt_secret
    )
    pem = secrets.create_secret(
        Name=f"tokengate/signing-key-{suffix}", SecretString=development_key_pem(alg).decode()
    )
    table = (
        create_revocation_table(dynamodb, f"tokengate-revocation-{suffix}")
        if dynamodb is not None
        else ""
    )
    return Provisioned(arn, jwt["ARN"], pem["ARN"], table)


def point_boto3_at(endpoint: str) -> None:
    """Every boto3 client created after this talks to the local endpoint."""
    os.environ.update(FAKE_CREDENTIALS)
    os.environ["AWS_ENDPOINT_URL"] = endpoint
