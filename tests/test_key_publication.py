"""No private key behind a public route: in the Secrets Manager key mode the JWKS function
publishes the configured public keys (SigningPublicKeys), reads no secret, and its role could not
read the signing secrets if it tried."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from devstack.gateway import iam_pattern_matches
from devstack.moto_aws import new_private_key_pem
from devstack.template import Template
from tests.conftest import InProcessApi
from tests.factories import hs_token, supabase_claims
from tests.jwks_server import JwksServer
from tokengate.errors import ConfigurationError
from tokengate.jws import b64url_encode
from tokengate.keys import thumbprint
from tokengate.published import encode_public_key, public_keys_of_pems, published_keys

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from rotate_signing_key import (
    create_secret_key,
    public_keys_parameter,
    rotation_overrides,
    with_public_keys,
)

MakeApi = Callable[..., InProcessApi]
SIGNING_SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:tokengate/signing-AbCdEf"
NEXT_SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:tokengate/next-GhIjKl"
JWT_SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:supabase-jwt-MnOpQr"

# A small pool of real keys (generation is the slow part); hypothesis draws lists from it.
EC_KEYS = [ec.generate_private_key(ec.SECP256R1()) for _ in range(3)]
RSA_KEYS = [rsa.generate_private_key(65537, 2048) for _ in range(2)]


# -- the configured public keys --------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    chosen=st.lists(st.integers(0, len(EC_KEYS) - 1), max_size=6),
    alg=st.sampled_from(["ES256", "RS256"]),
)
def test_published_keys_are_exactly_the_configured_ones_in_order(
    chosen: list[int], alg: str
) -> None:
    """Oracle: the RFC 7638 thumbprints of the chosen keys, first occurrence order."""
    pool = EC_KEYS if alg == "ES256" else RSA_KEYS
    picks = [pool[i % len(pool)] for i in chosen]
    pems = [
        k.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        for k in picks
    ]
    value = public_keys_of_pems(pems)
    keys = published_keys({"SIGNING_PUBLIC_KEYS": value}, alg)
    expected = list(dict.fromkeys(thumbprint(k.public_key()) for k in picks))
    assert [k.kid for k in keys] == expected
    for key, private in zip(keys, dict.fromkeys(picks), strict=True):
        jwk = key.public_jwk()
        assert jwk["alg"] == alg and jwk["use"] == "sig"
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(jwk)  # never private members
        assert jwk["kid"] == thumbprint(private.public_key())
    assert "=" not in value and " " not in value  # passes through sam's parameter overrides


def test_anything_but_a_strong_public_key_is_refused() -> None:
    private_der = EC_KEYS[0].private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    weak = rsa.generate_private_key(65537, 1024).public_key()
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    for value, match in [
        (b64url_encode(private_der), "not a base64url SubjectPublicKeyInfo"),
        ("not-a-key", "not a base64url SubjectPublicKeyInfo"),
        (encode_public_key(weak), "at least 2048"),
        (encode_public_key(p384), "RSA \\(2048\\+\\) or EC P-256"),
        (encode_public_key(EC_KEYS[0].public_key()), "cannot verify RS256"),
    ]:
        with pytest.raises(ConfigurationError, match="SIGNING_PUBLIC_KEYS"):
            published_keys({"SIGNING_PUBLIC_KEYS": value}, "RS256")
        with pytest.raises(ConfigurationError, match=match):
            published_keys({"SIGNING_PUBLIC_KEYS": value}, "RS256")


# -- the JWKS function ------------------------------------------------------------------------


@pytest.fixture
def own_jwks() -> Iterator[JwksServer]:
    with JwksServer({"keys": []}) as server:
        yield server


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_the_jwks_function_reads_no_secret_and_its_keys_verify_the_tokens(
    make_api: MakeApi, own_jwks: JwksServer, alg: str
) -> None:
    api = make_api(
        {"SigningMode": "secretsmanager", "SigningAlgorithm": alg},
        API_JWKS_URL=own_jwks.jwks_url,
    )
    api.aws_calls.clear()
    status, _, jwks = api.call("GET", "/.well-known/jwks.json")
    assert status == 200, jwks
    assert api.aws_calls == []  # no GetSecretValue: nothing private is read to publish
    own_jwks.document = jwks
    status, _, body = api.exchange(hs_token(supabase_claims()))
    assert status == 200
    token = body["access_token"]
    (jwk,) = jwks["keys"]
    assert jwt.get_unverified_header(token)["kid"] == jwk["kid"]
    jwt.decode(token, jwt.PyJWK(jwk).key, algorithms=[alg], audience="api")
    assert api.call("GET", "/whoami", Authorization=f"Bearer {token}")[0] == 200


@pytest.mark.parametrize(
    "value",
    ["", "not-a-key", encode_public_key(EC_KEYS[0].public_key())],
    ids=["empty", "malformed", "wrong algorithm"],
)
def test_missing_or_wrong_public_keys_are_a_server_error_for_the_operator(
    make_api: MakeApi, caplog: pytest.LogCaptureFixture, value: str
) -> None:
    api = make_api({"SigningMode": "secretsmanager", "SigningPublicKeys": value})
    caplog.set_level(logging.ERROR)
    status, _, body = api.call("GET", "/.well-known/jwks.json")
    assert (status, body) == (500, {"error": "server_error"})
    assert any(r.getMessage() == "keys misconfigured" for r in caplog.records)


# -- the template: what the JWKS function's role may do ----------------------------------------


def allows(statements: list[dict[str, Any]], action: str, resource: str) -> bool:
    """IAM's evaluation of identity-policy statements for one request (no conditions met by the
    request are assumed): an explicit Deny wins, then any Allow. Action and resource patterns
    with ``*`` and ``?``; actions case-insensitively; NotAction / NotResource as IAM reads them."""

    def matches(patterns: Any, value: str, fold: bool) -> bool:
        patterns = [patterns] if isinstance(patterns, str) else list(patterns)
        if fold:
            return any(iam_pattern_matches(p.lower(), value.lower()) for p in patterns)
        return any(iam_pattern_matches(p, value) for p in patterns)

    allowed = False
    for statement in statements:
        if statement is None:
            continue
        if "Action" in statement:
            acts = matches(statement["Action"], action, fold=True)
        else:
            acts = not matches(statement["NotAction"], action, fold=True)
        if "Resource" in statement:
            on = matches(statement["Resource"], resource, fold=False)
        else:
            on = not matches(statement["NotResource"], resource, fold=False)
        if acts and on:
            if statement["Effect"] == "Deny":
                return False
            allowed = True
    return allowed


def jwks_role_statements(template: Template) -> list[dict[str, Any]]:
    """Every statement the JwksFunction's role holds: SAM's implicit role gets the function's
    ``Policies`` and AWSLambdaBasicExecutionRole (logs only); an explicit role its own."""
    function = template.functions()["JwksFunction"]
    assert "Role" not in function, "an explicit role: evaluate its policies here"
    statements: list[dict[str, Any]] = []
    for policy in template.evaluate(function.get("Policies", [])):
        assert isinstance(policy, dict) and "Statement" in policy, "inline statements only"
        statements.extend(policy["Statement"])
    return statements


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
@pytest.mark.parametrize("published", ["", NEXT_SECRET])
def test_the_jwks_role_cannot_read_any_signing_secret(alg: str, published: str) -> None:
    template = Template.load(
        {
            "SigningMode": "secretsmanager",
            "SigningAlgorithm": alg,
            "SigningKeySecretArn": SIGNING_SECRET,
            "PublishedKeyIds": published,
            "SupabaseJwtSecretArn": JWT_SECRET,
        }
    )
    statements = jwks_role_statements(template)
    for secret in filter(None, [SIGNING_SECRET, published]):
        for action in ("secretsmanager:GetSecretValue", "secretsmanager:BatchGetSecretValue"):
            assert not allows(statements, action, secret), (action, secret)
    # The evaluator sees an Allow when there is one: the exchange's role reads the secret.
    exchange = template.evaluate(template.resources["TokenExchangeRole"]["Properties"]["Policies"])
    exchange_statements = [s for p in exchange if p for s in p["PolicyDocument"]["Statement"]]
    assert allows(exchange_statements, "secretsmanager:GetSecretValue", SIGNING_SECRET)
    assert template.environment("JwksFunction")["SIGNING_PUBLIC_KEYS"] == ""


def test_the_evaluator_sees_wildcards_and_denies() -> None:
    arn = SIGNING_SECRET
    assert allows(
        [{"Effect": "Allow", "Action": "secretsmanager:*", "Resource": "*"}],
        "secretsmanager:GetSecretValue",
        arn,
    )
    assert allows(
        [{"Effect": "Allow", "Action": "*", "Resource": arn[:-3] + "*"}],
        "secretsmanager:GetSecretValue",
        arn,
    )
    assert allows(
        [{"Effect": "Allow", "NotAction": "kms:*", "Resource": "*"}],
        "secretsmanager:GetSecretValue",
        arn,
    )
    assert not allows(
        [
            {"Effect": "Allow", "Action": "*", "Resource": "*"},
            {"Effect": "Deny", "Action": "secretsmanager:Get*", "Resource": arn},
        ],
        "secretsmanager:GetSecretValue",
        arn,
    )


# -- the runbook and make deploy: SigningPublicKeys from the secrets -------------------------


@pytest.fixture
def secrets(aws_env: None) -> Iterator[Any]:
    from moto import mock_aws

    with mock_aws():
        yield boto3.client("secretsmanager", region_name="us-east-1")


def test_public_keys_follow_the_rotation_steps(secrets: Any) -> None:
    current_arn = secrets.create_secret(
        Name="tokengate/signing", SecretString=new_private_key_pem("ES256").decode()
    )["ARN"]
    next_arn = create_secret_key(secrets, "ES256", "tokengate")
    public = {
        arn: thumbprint(
            serialization.load_pem_private_key(
                secrets.get_secret_value(SecretId=arn)["SecretString"].encode(), None
            ).public_key()  # type: ignore[arg-type]
        )
        for arn in (current_arn, next_arn)
    }

    def kids(parameters: dict[str, str]) -> list[str]:
        return [
            k.kid
            for k in published_keys(
                {"SIGNING_PUBLIC_KEYS": parameters["SigningPublicKeys"]}, "ES256"
            )
        ]

    key = "SigningKeySecretArn"
    deployed = {"SigningMode": "secretsmanager", key: current_arn, "PublishedKeyIds": ""}
    assert with_public_keys(secrets, {"SigningMode": "kms"}, {"X": "y"}) == {"X": "y"}
    step = with_public_keys(
        secrets, deployed, rotation_overrides("publish", deployed, "", next_arn, key)
    )
    assert kids(step) == [public[current_arn], public[next_arn]]
    deployed |= step
    step = with_public_keys(
        secrets, deployed, rotation_overrides("switch", deployed, "", next_arn, key)
    )
    assert step[key] == next_arn
    assert kids(step) == [public[next_arn], public[current_arn]]
    deployed |= step
    step = with_public_keys(secrets, deployed, rotation_overrides("retire", deployed, "", "", key))
    assert kids(step) == [public[next_arn]]
    assert public_keys_parameter(secrets, deployed | step) == step["SigningPublicKeys"]


def test_three_published_rsa_keys_fit_lambdas_environment_limit() -> None:
    """Lambda refuses a function whose variables exceed 4 KB in all: the JWKS function's, with
    the current, previous and next RSA keys and long values elsewhere, stays well under."""
    keys = ",".join(
        encode_public_key(rsa.generate_private_key(65537, 2048).public_key()) for _ in range(3)
    )
    template = Template.load(
        {
            "SigningMode": "secretsmanager",
            "SigningKeySecretArn": SIGNING_SECRET,
            "PublishedKeyIds": f"{NEXT_SECRET},{SIGNING_SECRET}",
            "SupabaseJwtSecretArn": JWT_SECRET,
            "SigningPublicKeys": keys,
            "SupabaseUrl": "https://abcdefghijklmnopqrst.supabase.co",
        }
    )
    environment = template.environment("JwksFunction")
    size = sum(len(k) + len(v) for k, v in environment.items())
    assert size < 4096 - 512, size  # room for the parameters' longer values
