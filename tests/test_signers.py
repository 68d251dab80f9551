"""Signers: KMS (moto, in-process) and a Secrets Manager-held PEM key (docs/contract.md §4; the ES256
zero-padding trap)."""

from __future__ import annotations

import boto3
import jwt
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from devstack.moto_aws import new_private_key_pem
from tokengate.apitoken import ApiTokenIssuer
from tokengate.aws import KMS_KEY_SPECS, KmsSigner, local_signer_from_secret
from tokengate.errors import ConfigurationError, DependencyUnavailableError
from tokengate.jws import b64url_decode
from tokengate.keys import key_from_jwk
from tokengate.signing import LocalKeySigner


@pytest.fixture
def kms(aws_env: None):  # type: ignore[no-untyped-def]
    with mock_aws():
        yield boto3.client("kms", region_name="us-east-1")


def kms_key(kms, alg: str) -> str:  # type: ignore[no-untyped-def]
    return kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec=KMS_KEY_SPECS[alg])["KeyMetadata"]["Arn"]


def issue(signer, n: int = 1) -> list[str]:  # type: ignore[no-untyped-def]
    issuer = ApiTokenIssuer(signer, ttl=900)
    return [
        issuer.issue(
            issuer="https://api.example.com",
            subject="u",
            audiences=["api"],
            scopes=["read"],
            client_id="cli",
            session_id="s",
            not_after=4_000_000_000,
        ).token
        for _ in range(n)
    ]


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_kms_tokens_verify_with_pyjwt(kms, alg: str) -> None:  # type: ignore[no-untyped-def]
    signer = KmsSigner(kms_key(kms, alg), alg, kms=kms)
    (token,) = issue(signer)
    header = jwt.get_unverified_header(token)
    assert header == {"alg": alg, "typ": "at+jwt", "kid": signer.kid}
    public = jwt.PyJWK(signer.public_jwk()).key
    claims = jwt.decode(
        token, public, algorithms=[alg], audience="api", issuer="https://api.example.com"
    )
    assert claims["sub"] == "u"


def test_kms_es256_tokens_verify_a_thousand_times_out_of_a_thousand(kms) -> None:  # type: ignore[no-untyped-def]
    signer = KmsSigner(kms_key(kms, "ES256"), "ES256", kms=kms)
    key = key_from_jwk(signer.public_jwk())
    tokens = issue(signer, 1000)
    failures = 0
    for token in tokens:
        signing_input, _, signature = token.rpartition(".")
        raw = b64url_decode(signature)
        failures += len(raw) != 64 or not key.verify(signing_input.encode(), raw)
    assert failures == 0


def test_kms_signer_kid_is_the_rfc7638_thumbprint_and_stable(kms) -> None:  # type: ignore[no-untyped-def]
    arn = kms_key(kms, "RS256")
    one, two = KmsSigner(arn, "RS256", kms=kms), KmsSigner(arn, "RS256", kms=kms)
    assert one.kid == two.kid
    assert one.kid == jwt.PyJWK(one.public_jwk()).key_id


def test_kms_key_of_the_wrong_type_is_a_configuration_error(kms) -> None:  # type: ignore[no-untyped-def]
    signer = KmsSigner(kms_key(kms, "ES256"), "RS256", kms=kms)
    with pytest.raises(ConfigurationError):
        issue(signer)


@pytest.mark.parametrize(
    "code",
    [
        "ThrottlingException",
        "KMSInternalException",
        "DisabledException",
        "KMSInvalidStateException",
    ],
)
def test_kms_sign_errors_fail_closed(kms, code: str) -> None:  # type: ignore[no-untyped-def]
    signer = KmsSigner(kms_key(kms, "RS256"), "RS256", kms=kms)
    assert signer.kid  # the public key is read from moto first
    with Stubber(kms) as stub:
        stub.add_client_error("sign", service_error_code=code, http_status_code=400)
        with pytest.raises(DependencyUnavailableError) as caught:
            issue(signer)
    assert caught.value.reason == "kms_unavailable"


def test_missing_kms_key_fails_closed(kms) -> None:  # type: ignore[no-untyped-def]
    signer = KmsSigner(
        "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000",
        "RS256",
        kms=kms,
    )
    with pytest.raises(DependencyUnavailableError):
        issue(signer)


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_secrets_manager_signer(aws_env: None, alg: str) -> None:
    with mock_aws():
        secrets = boto3.client("secretsmanager", region_name="us-east-1")
        arn = secrets.create_secret(Name="k", SecretString=new_private_key_pem(alg).decode())["ARN"]
        signer = local_signer_from_secret(arn, alg, secrets)
        (token,) = issue(signer)
        public = jwt.PyJWK(signer.public_jwk()).key
        assert jwt.decode(token, public, algorithms=[alg], audience="api")["scope"] == "read"
        with pytest.raises(ConfigurationError):
            local_signer_from_secret(arn, "ES256" if alg == "RS256" else "RS256", secrets)


def test_pem_that_is_not_a_key_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        LocalKeySigner.from_pem(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
