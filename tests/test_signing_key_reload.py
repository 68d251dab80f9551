"""The Secrets Manager signing mode keeps its last good key when a re-read finds a broken one
(moto in-process stands in for Secrets Manager; real keys and signatures throughout)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import boto3
import jwt
import pytest
from moto import mock_aws

from devstack.moto_aws import new_private_key_pem
from tokengate.apitoken import ApiTokenIssuer
from tokengate.aws import SecretsManagerSigner
from tokengate.emf import EmfCounter
from tokengate.errors import ConfigurationError

BROKEN: dict[str, Callable[[str], str]] = {
    "not a PEM key": lambda alg: (
        "-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n"
    ),
    "another algorithm's key": lambda alg: new_private_key_pem(
        "ES256" if alg == "RS256" else "RS256"
    ).decode(),
    "truncated": lambda alg: new_private_key_pem(alg).decode()[:200],
}


def issue(signer: SecretsManagerSigner) -> str:
    return (
        ApiTokenIssuer(signer, ttl=600)
        .issue(
            issuer="https://api.example.com",
            subject="8b3b1c7e-2f1a-4c3d-9e8f-0a1b2c3d4e5f",
            audiences=["api"],
            scopes=["read"],
            client_id="cli",
            session_id="s-1",
            not_after=time.time() + 600,
        )
        .token
    )


@pytest.mark.parametrize("broken", sorted(BROKEN))
@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_a_reread_that_finds_a_broken_key_keeps_the_last_good_key(
    aws_env: None, caplog: pytest.LogCaptureFixture, alg: str, broken: str
) -> None:
    with mock_aws():
        secrets = boto3.client("secretsmanager", region_name="us-east-1")
        arn = secrets.create_secret(Name="signing", SecretString=new_private_key_pem(alg).decode())[
            "ARN"
        ]
        lines: list[str] = []
        signer = SecretsManagerSigner(
            arn, alg, max_age=0.0, secrets=secrets, metrics=EmfCounter(write=lines.append)
        )
        good_jwk = signer.public_jwk()
        secrets.put_secret_value(SecretId=arn, SecretString=BROKEN[broken](alg))
        with caplog.at_level(logging.ERROR, logger="tokengate.signing"):
            token = issue(signer)  # max_age 0: this re-reads the secret and finds it broken
        public = jwt.PyJWK(good_jwk).key
        assert jwt.decode(token, public, algorithms=[alg], audience="api")["scope"] == "read"
        assert signer.kid == good_jwk["kid"]
        (record,) = caplog.records
        assert "keeping the last good key" in record.getMessage()
        assert record.__dict__["kid"] == good_jwk["kid"]
        assert [line for line in lines if '"SigningKeyRejected":1' in line]
        assert "PRIVATE KEY" not in caplog.text  # never the secret


def test_a_broken_key_at_the_first_read_is_still_a_configuration_error(aws_env: None) -> None:
    with mock_aws():
        secrets = boto3.client("secretsmanager", region_name="us-east-1")
        arn = secrets.create_secret(Name="signing", SecretString=BROKEN["truncated"]("RS256"))[
            "ARN"
        ]
        signer = SecretsManagerSigner(arn, "RS256", secrets=secrets)
        with pytest.raises(ConfigurationError):
            signer.public_jwk()
