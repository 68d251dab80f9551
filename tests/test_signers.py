"""Signers: KMS (moto, in-process) and a Secrets Manager-held PEM key (docs/contract.md §4; the ES256
zero-padding trap)."""

from __future__ import annotations

import base64
import json
import logging
import os
from collections.abc import Callable

import boto3
import jwt
import pytest
from botocore.stub import Stubber
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_der_public_key,
)
from hypothesis import example, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from devstack.moto_aws import LocalAws, new_private_key_pem
from tests.fresh import run_fresh
from tokengate.apitoken import ApiTokenIssuer
from tokengate.aws import (
    KMS_KEY_SPECS,
    AwsJsonClient,
    KmsSigner,
    local_signer_from_secret,
    public_key_from_spki,
)
from tokengate.errors import (
    ConfigurationError,
    DependencyMisconfiguredError,
    DependencyUnavailableError,
)
from tokengate.jws import b64url_decode
from tokengate.keys import key_from_jwk
from tokengate.signing import LocalKeySigner


@pytest.fixture
def kms(aws_env: None):  # type: ignore[no-untyped-def]
    with mock_aws():
        yield boto3.client("kms", region_name="us-east-1")


def kms_key(kms, alg: str) -> str:  # type: ignore[no-untyped-def]
    return str(
        kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec=KMS_KEY_SPECS[alg])["KeyMetadata"]["Arn"]
    )


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
    ("code", "status", "reason", "misconfigured"),
    [
        ("ThrottlingException", 400, "kms_throttled", False),
        ("KMSInternalException", 500, "kms_unavailable", False),
        ("KeyUnavailableException", 500, "kms_unavailable", False),
        ("DisabledException", 400, "kms_misconfigured", True),
        ("KMSInvalidStateException", 400, "kms_misconfigured", True),
        ("AccessDeniedException", 400, "kms_misconfigured", True),
        ("NotFoundException", 400, "kms_misconfigured", True),
    ],
)
def test_kms_sign_errors_fail_closed(  # type: ignore[no-untyped-def]
    kms, code: str, status: int, reason: str, misconfigured: bool
) -> None:
    signer = KmsSigner(kms_key(kms, "RS256"), "RS256", kms=kms)
    assert signer.kid  # the public key is read from moto first
    with Stubber(kms) as stub:
        stub.add_client_error("sign", service_error_code=code, http_status_code=status)
        with pytest.raises(DependencyUnavailableError) as caught:
            issue(signer)
    assert caught.value.reason == reason
    assert isinstance(caught.value, DependencyMisconfiguredError) is misconfigured


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


def _corrupted_rsa_pem() -> bytes:
    """An RSA key whose private exponent does not invert the public one (its CRT values agree
    with the wrong exponent): what a corrupted secret could hold."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    good = rsa.generate_private_key(65537, 2048).private_numbers()
    d = good.d + 2
    broken = rsa.RSAPrivateNumbers(
        good.p, good.q, d, d % (good.p - 1), d % (good.q - 1), good.iqmp, good.public_numbers
    ).private_key(unsafe_skip_rsa_key_validation=True)
    return broken.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def test_our_own_key_skips_the_full_check_but_not_the_self_test() -> None:
    pem = _corrupted_rsa_pem()
    with pytest.raises(ConfigurationError, match="valid signatures"):
        LocalKeySigner.from_pem(pem, own_key=True)
    with pytest.raises(ConfigurationError, match="PEM"):
        LocalKeySigner.from_pem(pem)  # any other key: OpenSSL's full check refuses it


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_our_own_key_signs_tokens_anyone_can_verify(alg: str) -> None:
    signer = LocalKeySigner.from_pem(new_private_key_pem(alg), own_key=True)
    (token,) = issue(signer)
    public = jwt.PyJWK(signer.public_jwk()).key
    assert jwt.decode(token, public, algorithms=[alg], audience="api")["scope"] == "read"


# -- the functions' own AWS client: SigV4-signed JSON over the deadline-bounded transport -------


class Capture:
    """A loopback endpoint that records one request and answers like KMS ``Sign`` would."""

    def __init__(self) -> None:
        import http.server
        import threading

        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append(("POST", self.path, dict(self.headers.items()), body))
                answer = b'{"KeyId":"k","Signature":"c2ln","SigningAlgorithm":"ECDSA_SHA_256"}'
                self.send_response(200)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    "AWS_SESSION_TOKEN": "session-token-as-lambda-provides-it",
    "AWS_REGION": "eu-west-1",
}


def test_our_requests_carry_the_signature_botocore_computes() -> None:
    """The request as it arrived, re-signed by botocore's SigV4Auth with the same credentials,
    timestamp and body: the Authorization header must be the one we sent."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    from tokengate.aws import KmsApi

    capture = Capture()
    try:
        kms = KmsApi(environ=CREDENTIALS | {"AWS_ENDPOINT_URL": capture.url})
        answer = kms.sign(
            KeyId="arn:aws:kms:eu-west-1:123456789012:key/k",
            Message=b"header.payload",
            MessageType="RAW",
            SigningAlgorithm="ECDSA_SHA_256",
        )
    finally:
        capture.close()
    assert answer["Signature"] == b"sig"
    ((method, path, headers, body),) = capture.requests
    assert headers["X-Amz-Target"] == "TrentService.Sign"
    assert headers["Content-Type"] == "application/x-amz-json-1.1"
    assert headers["X-Amz-Security-Token"] == CREDENTIALS["AWS_SESSION_TOKEN"]
    sent = headers.pop("Authorization")
    assert sent.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-1/kms/aws4_request" in sent
    request = AWSRequest(
        method=method,
        url=f"{capture.url}{path}",
        data=body,
        headers={k: v for k, v in headers.items() if k.lower() in sent.lower()},
    )
    request.context["timestamp"] = headers["X-Amz-Date"]
    credentials = Credentials(
        CREDENTIALS["AWS_ACCESS_KEY_ID"],
        CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        CREDENTIALS["AWS_SESSION_TOKEN"],
    )
    auth = SigV4Auth(credentials, "kms", "eu-west-1")
    canonical = auth.canonical_request(request)
    signature = auth.signature(auth.string_to_sign(request, canonical), request)
    assert sent.endswith(f"Signature={signature}")
    signed = sent.split("SignedHeaders=")[1].split(",")[0].split(";")
    assert {"host", "x-amz-date", "x-amz-target", "x-amz-security-token"} <= set(signed)
    body_sent = json.loads(body)
    assert body_sent["Message"] == base64.b64encode(b"header.payload").decode()


def test_a_changed_body_does_not_match_the_signature() -> None:
    """The oracle above can fail: the same headers over another body give another signature."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    credentials = Credentials("AKIDEXAMPLE", "secret", None)
    signatures = set()
    for body in (b'{"a":1}', b'{"a":2}'):
        request = AWSRequest(method="POST", url="http://127.0.0.1:1/", data=body, headers={})
        request.context["timestamp"] = "20261128T000000Z"
        auth = SigV4Auth(credentials, "kms", "us-east-1")
        signatures.add(
            auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)
        )
    assert len(signatures) == 2


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_moto_server_serves_our_kms_and_secrets_manager_calls(
    moto_server: LocalAws, aws_env: None, alg: str
) -> None:
    from tokengate.aws import KmsApi, SecretsApi, SecretsManagerSigner

    environ = dict(os.environ) | {"AWS_ENDPOINT_URL": moto_server.endpoint}
    kms_admin, secrets_admin = moto_server.client("kms"), moto_server.client("secretsmanager")
    arn = kms_key(kms_admin, alg)
    signer = KmsSigner(arn, alg, kms=KmsApi(environ=environ))
    (token,) = issue(signer)
    public = jwt.PyJWK(signer.public_jwk()).key
    assert jwt.decode(token, public, algorithms=[alg], audience="api")["sub"] == "u"
    secret = secrets_admin.create_secret(
        Name=f"pem-{alg}", SecretString=new_private_key_pem(alg).decode()
    )["ARN"]
    held = SecretsManagerSigner(secret, alg, secrets=SecretsApi(environ=environ))
    (token,) = issue(held)
    public = jwt.PyJWK(held.public_jwk()).key
    assert jwt.decode(token, public, algorithms=[alg], audience="api")["sub"] == "u"


def test_missing_credentials_are_a_configuration_fault() -> None:
    from tokengate.aws import KmsApi

    kms = KmsApi(environ={"AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": "http://127.0.0.1:1"})
    with pytest.raises(DependencyMisconfiguredError):
        kms.get_public_key(KeyId="k")


def test_the_endpoint_must_be_https_or_loopback() -> None:
    from tokengate.aws import KmsApi

    with pytest.raises(ConfigurationError):
        KmsApi(environ=CREDENTIALS | {"AWS_ENDPOINT_URL": "http://kms.example.com"})
    assert KmsApi(environ=CREDENTIALS).endpoint == "https://kms.eu-west-1.amazonaws.com/"


def test_no_attempt_starts_that_the_budget_cannot_cover() -> None:
    from tokengate.aws import MIN_ATTEMPT_SECONDS, KmsApi
    from tokengate.budget import Budget

    budget = Budget()
    capture = Capture()
    try:
        kms = KmsApi(budget, environ=CREDENTIALS | {"AWS_ENDPOINT_URL": capture.url})
        with budget.within(MIN_ATTEMPT_SECONDS / 2), pytest.raises(DependencyUnavailableError):
            kms.get_public_key(KeyId="k")
        assert capture.requests == []
        with budget.within(2.0):
            kms.sign(KeyId="k", Message=b"m", MessageType="RAW", SigningAlgorithm="ECDSA_SHA_256")
        assert len(capture.requests) == 1
    finally:
        capture.close()


@pytest.mark.parametrize("service", ["kms", "secretsmanager"])
@pytest.mark.parametrize("name", ["AWS_ENDPOINT_URL_KMS", "AWS_ENDPOINT_URL_SECRETS_MANAGER"])
def test_service_endpoint_variables_are_read_as_the_aws_sdks_read_them(
    service: str, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The functions and the boto3 scripts must reach the same endpoint for one environment."""
    environ = {"AWS_REGION": "eu-west-3", name: "http://127.0.0.1:4567"}
    for key in [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL")]:
        monkeypatch.delenv(key)
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    expected = boto3.client(service, region_name="eu-west-3").meta.endpoint_url
    assert AwsJsonClient(service, environ=environ).endpoint.rstrip("/") == expected.rstrip("/")


def test_signing_logs_no_credential_and_no_signature_even_at_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An operator who turns the function's log level to DEBUG must not find the session token
    or a request signature in the log (botocore's signer logs both at DEBUG)."""
    from tokengate.aws import KmsApi

    caplog.set_level(logging.DEBUG)  # the root logger, as Lambda's DEBUG log level sets it
    session_token = "IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKEN"
    kms = KmsApi(environ=CREDENTIALS | {"AWS_SESSION_TOKEN": session_token})
    headers = kms._signed_headers("Sign", b'{"KeyId":"k"}')
    signature = headers["Authorization"].rpartition("Signature=")[2]
    assert headers["X-Amz-Security-Token"] == session_token
    assert session_token not in caplog.text
    assert signature not in caplog.text
    assert CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in caplog.text


# -- reading KMS's GetPublicKey answer -----------------------------------------------------------

_SPKI_KEYS: dict[str, Callable[[], object]] = {
    "RSA_2048": lambda: rsa.generate_private_key(65537, 2048).public_key(),
    "RSA_3072": lambda: rsa.generate_private_key(65537, 3072).public_key(),
    "RSA_4096": lambda: rsa.generate_private_key(65537, 4096).public_key(),
    "ECC_NIST_P256": lambda: ec.generate_private_key(ec.SECP256R1()).public_key(),
    # Read by the library's parser: other curves, another exponent, another key type.
    "ECC_NIST_P384": lambda: ec.generate_private_key(ec.SECP384R1()).public_key(),
    "RSA_2048_E3": lambda: rsa.generate_private_key(3, 2048).public_key(),
    "ED25519": lambda: ed25519.Ed25519PrivateKey.generate().public_key(),
}


def _spki(key: object) -> bytes:
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)  # type: ignore[attr-defined,no-any-return]


@pytest.fixture(scope="module")
def spki_keys() -> dict[str, bytes]:
    return {spec: _spki(make()) for spec, make in _SPKI_KEYS.items()}


@pytest.mark.parametrize("spec", sorted(_SPKI_KEYS))
def test_a_public_key_answer_reads_as_the_library_reads_it(
    spki_keys: dict[str, bytes], spec: str
) -> None:
    der = spki_keys[spec]
    assert _spki(public_key_from_spki(der)) == _spki(load_der_public_key(der)) == der


@settings(max_examples=300, deadline=None)
@example(spec="ECC_NIST_P256", cut=0, position=26, value=6, extra=b"")  # hybrid points
@example(spec="ECC_NIST_P256", cut=0, position=26, value=7, extra=b"")
@given(
    spec=st.sampled_from(sorted(_SPKI_KEYS)),
    cut=st.integers(0, 600),
    position=st.integers(0, 600),
    value=st.integers(0, 255),
    extra=st.binary(max_size=3),
)
def test_a_changed_answer_is_read_as_the_library_reads_it_or_refused(
    spki_keys: dict[str, bytes], spec: str, cut: int, position: int, value: int, extra: bytes
) -> None:
    """Whatever the fast path accepts, the library's parser accepts as the same key; what the
    library refuses, the fast path refuses (a ValueError, as the library's)."""
    der = bytearray(spki_keys[spec])
    der[position % len(der)] = value
    changed = bytes(der[: len(der) - cut % 8]) + extra
    try:
        expected = _spki(load_der_public_key(changed))
    except (ValueError, UnsupportedAlgorithm):
        with pytest.raises((ValueError, UnsupportedAlgorithm)):
            public_key_from_spki(changed)
        return
    assert _spki(public_key_from_spki(changed)) == expected


@pytest.mark.parametrize("spec", ["RSA_2048", "ECC_NIST_P256"])
def test_the_stacks_key_specs_are_read_without_the_serialization_package(
    spki_keys: dict[str, bytes], spec: str
) -> None:
    code = (
        "import sys\n"
        "from tokengate.aws import public_key_from_spki\n"
        f"public_key_from_spki(bytes.fromhex({spki_keys[spec].hex()!r}))\n"
        "print('cryptography.hazmat.primitives.serialization' in sys.modules)\n"
    )
    assert run_fresh(code).stdout.strip() == "False"
