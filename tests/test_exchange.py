"""POST /token through the real handler, moto in-process (docs/contract.md §3.1, §4)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest

from devstack.gateway import LambdaContext
from tests.conftest import ISSUER, InProcessApi
from tests.factories import DROP, HS_SECRET, USER_ID, anon_key_claims, hs_token, supabase_claims
from tokengate.errors import INVALID_SUBJECT
from tokengate.exchange import ACCESS_TOKEN, GRANT_TYPE

MakeApi = Callable[..., InProcessApi]


def jwks_of(api: InProcessApi) -> dict[str, Any]:
    status, _, document = api.call("GET", "/.well-known/jwks.json")
    assert status == 200 and isinstance(document, dict)
    return document


def verify_issued(api: InProcessApi, token: str, audience: str = "api") -> dict[str, Any]:
    keys = {jwk["kid"]: jwt.PyJWK(jwk) for jwk in jwks_of(api)["keys"]}
    header = jwt.get_unverified_header(token)
    key = keys[header["kid"]]
    return jwt.decode(
        token, key.key, algorithms=[key.algorithm_name], audience=audience, issuer=ISSUER
    )


@pytest.mark.parametrize(
    "parameters",
    [
        {},
        {"SigningAlgorithm": "ES256"},
        {"SigningMode": "secretsmanager"},
        {"SigningMode": "secretsmanager", "SigningAlgorithm": "ES256"},
    ],
    ids=["kms-rs256", "kms-es256", "secretsmanager-rs256", "secretsmanager-es256"],
)
def test_exchange_issues_an_rfc9068_api_token(
    make_api: MakeApi, parameters: dict[str, str]
) -> None:
    api = make_api(parameters)
    subject = supabase_claims(email="ada@example.com")
    status, headers, body = api.exchange(hs_token(subject))
    assert status == 200, body
    assert headers["Cache-Control"] == "no-store"
    assert headers["Pragma"] == "no-cache"
    assert headers["Content-Type"] == "application/json"
    assert body["issued_token_type"] == ACCESS_TOKEN
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert body["scope"] == "read"
    header = jwt.get_unverified_header(body["access_token"])
    assert header["typ"] == "at+jwt"
    assert header["alg"] == parameters.get("SigningAlgorithm", "RS256")
    claims = verify_issued(api, body["access_token"])
    assert claims["iss"] == ISSUER
    assert claims["sub"] == USER_ID
    assert claims["aud"] == "api"
    assert claims["exp"] - claims["iat"] == 900
    assert len(base64.urlsafe_b64decode(claims["jti"] + "==")) >= 16
    assert claims["client_id"] == "cli"
    assert claims["scope"] == "read"
    assert claims["sid"] == subject["session_id"]
    assert claims["aal"] == "aal1"
    assert "email" not in claims and "user_metadata" not in claims


def test_jti_is_unique(make_api: MakeApi) -> None:
    api = make_api()
    token = hs_token(supabase_claims())
    jtis = {
        jwt.decode(api.exchange(token)[2]["access_token"], options={"verify_signature": False})[
            "jti"
        ]
        for _ in range(20)
    }
    assert len(jtis) == 20


def test_lifetime_never_passes_the_subject_tokens_exp(make_api: MakeApi) -> None:
    api = make_api()
    now = int(time.time())
    status, _, body = api.exchange(hs_token(supabase_claims(iat=now - 3000, exp=now + 120)))
    assert status == 200
    assert body["expires_in"] <= 120
    claims = verify_issued(api, body["access_token"])
    assert claims["exp"] <= now + 120


def test_warm_kms_exchange_makes_exactly_one_sign_call(make_api: MakeApi) -> None:
    api = make_api()
    # At load, the HS256 secret is read once by each function that verifies Supabase tokens
    # (the exchange and the Supabase authorizer; the local API hosts both in one process).
    assert api.aws_calls == ["secretsmanager:GetSecretValue"] * 2
    api.aws_calls.clear()
    token = hs_token(supabase_claims())
    assert api.exchange(token)[0] == 200  # cold: reads the public key once, then signs
    assert api.aws_calls == ["kms:GetPublicKey", "kms:Sign"]
    api.aws_calls.clear()
    for _ in range(5):
        assert api.exchange(token)[0] == 200
    assert api.aws_calls == ["kms:Sign"] * 5


def test_warm_secrets_manager_exchange_makes_no_aws_call(make_api: MakeApi) -> None:
    api = make_api({"SigningMode": "secretsmanager"})
    token = hs_token(supabase_claims())
    assert api.exchange(token)[0] == 200
    api.aws_calls.clear()
    for _ in range(5):
        assert api.exchange(token)[0] == 200
    assert api.aws_calls == []


def test_json_bodies_are_accepted(make_api: MakeApi) -> None:
    api = make_api()
    body = json.dumps(
        {
            "grant_type": GRANT_TYPE,
            "subject_token": hs_token(supabase_claims()),
            "subject_token_type": ACCESS_TOKEN,
        }
    ).encode()
    status, _, document = api.call("POST", "/token", body, Content_Type="application/json")
    assert status == 200, document


def rejected_subjects() -> dict[str, str]:
    now = int(time.time())
    return {
        "anon key": hs_token(anon_key_claims(now, "anon"), kid=DROP),
        "service_role key": hs_token(anon_key_claims(now, "service_role"), kid=DROP),
        "anonymous user": hs_token(supabase_claims(is_anonymous=True)),
        "expired": hs_token(supabase_claims(iat=now - 7200, exp=now - 3600)),
        "wrong issuer": hs_token(supabase_claims(iss="https://other.supabase.co/auth/v1")),
        "alg none": hs_token(supabase_claims())
        .rsplit(".", 2)[0]
        .replace("eyJhbGciOiJIUzI1NiIs", "eyJhbGciOiJub25lIiwi", 1)
        + "."
        + hs_token(supabase_claims()).split(".")[1]
        + ".",
        "garbage": "not-a-token",
        "wrong secret": hs_token(
            supabase_claims(), secret="another-secret-that-is-long-enough-123"
        ),
        "third-party client": hs_token(supabase_claims(client_id="partner")),
        "sb_secret key": "sb_secret_0123456789abcdef",
    }


@pytest.mark.parametrize("name", rejected_subjects().keys())
def test_unacceptable_subject_tokens_get_one_generic_invalid_request(
    make_api: MakeApi, name: str
) -> None:
    api = make_api()
    status, headers, body = api.exchange(rejected_subjects()[name])
    assert status == 400
    assert body == {"error": "invalid_request", "error_description": INVALID_SUBJECT}
    assert headers["Cache-Control"] == "no-store"
    assert "kms:Sign" not in api.aws_calls


def test_an_api_token_is_not_a_subject_token(make_api: MakeApi) -> None:
    api = make_api()
    api_token = api.exchange(hs_token(supabase_claims()))[2]["access_token"]
    status, _, body = api.exchange(api_token)
    assert (status, body["error"]) == (400, "invalid_request")


def test_oauth_error_codes(make_api: MakeApi) -> None:
    api = make_api(
        {
            "ScopesSupported": "read write admin",
            "ResourceAudiences": '{"https://api.example.com/": "api"}',
        }
    )
    token = hs_token(supabase_claims())
    assert (
        api.exchange(token, grant_type="client_credentials")[2]["error"] == "unsupported_grant_type"
    )
    assert api.exchange(token, audience="billing")[2]["error"] == "invalid_target"
    assert api.exchange(token, resource="https://evil.example.com/")[2]["error"] == "invalid_target"
    assert api.exchange(token, scope="read admin")[2]["error"] == "invalid_scope"
    status, _, body = api.exchange(token, resource="https://api.example.com/", scope="read")
    assert status == 200
    assert verify_issued(api, body["access_token"])["aud"] == "api"


def test_extra_scopes_come_from_app_metadata_only(make_api: MakeApi) -> None:
    api = make_api({"ScopesSupported": "read write admin"})
    granted = hs_token(supabase_claims(app_metadata={"provider": "email", "api_scopes": ["write"]}))
    status, _, body = api.exchange(granted, scope="read write")
    assert (status, body["scope"]) == (200, "read write")
    self_granted = hs_token(supabase_claims(user_metadata={"api_scopes": ["write", "admin"]}))
    assert api.exchange(self_granted, scope="write")[2]["error"] == "invalid_scope"
    assert api.exchange(granted, scope="admin")[2]["error"] == "invalid_scope"


def test_multiple_audiences(make_api: MakeApi) -> None:
    api = make_api({"Audiences": "api,billing"})
    token = hs_token(supabase_claims())
    body = urlencode_pairs([("audience", "api"), ("audience", "billing")], token)
    status, _, document = api.call(
        "POST", "/token", body, Content_Type="application/x-www-form-urlencoded"
    )
    assert status == 200
    claims = jwt.decode(document["access_token"], options={"verify_signature": False})
    assert claims["aud"] == ["api", "billing"]


def urlencode_pairs(extra: list[tuple[str, str]], token: str) -> bytes:
    from urllib.parse import urlencode

    return urlencode(
        [
            ("grant_type", GRANT_TYPE),
            ("subject_token", token),
            ("subject_token_type", ACCESS_TOKEN),
            *extra,
        ]
    ).encode()


def test_base64_encoded_bodies(make_api: MakeApi) -> None:
    api = make_api()
    raw = urlencode_pairs([], hs_token(supabase_claims()))
    event_answer = api.gateway.handlers["TokenExchangeFunction"](
        {
            "resource": "/token",
            "path": "/token",
            "httpMethod": "POST",
            "headers": {"content-type": "application/x-www-form-urlencoded"},
            "requestContext": {"apiId": "abc", "stage": "v1"},
            "body": base64.b64encode(raw).decode(),
            "isBase64Encoded": True,
        },
        LambdaContext("TokenExchangeFunction"),
    )
    assert event_answer["statusCode"] == 200


def test_the_hs256_secret_is_read_once(make_api: MakeApi) -> None:
    api = make_api()
    api.aws_calls.clear()
    token = hs_token(supabase_claims())
    for _ in range(5):
        assert api.exchange(token)[0] == 200
    assert "secretsmanager:GetSecretValue" not in api.aws_calls


def test_discovery_documents(make_api: MakeApi) -> None:
    api = make_api()
    for path in ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"):
        status, headers, document = api.call("GET", path)
        assert status == 200
        assert document["issuer"] == ISSUER
        assert document["jwks_uri"] == f"{ISSUER}/.well-known/jwks.json"
        assert document["token_endpoint"] == f"{ISSUER}/token"
        assert document["grant_types_supported"] == [GRANT_TYPE]
        assert "id_token_signing_alg_values_supported" not in document  # no ID token is issued
        assert document["scopes_supported"] == ["read", "write", "admin"]
        assert headers["Cache-Control"] == "public, max-age=300"
    status, headers, jwks = api.call("GET", "/.well-known/jwks.json")
    (key,) = jwks["keys"]
    assert {"kty", "kid", "use", "alg", "n", "e"} <= key.keys()
    assert key["use"] == "sig" and key["alg"] == "RS256"


def test_jwks_publishes_previous_and_next_keys(make_api: MakeApi, aws_env: None) -> None:
    import boto3

    kms = boto3.client("kms", region_name="us-east-1")
    extra = [
        kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec="RSA_2048")["KeyMetadata"]["Arn"]
        for _ in range(2)
    ]
    api = make_api({"PublishedKeyIds": ",".join(extra)})
    kids = [k["kid"] for k in jwks_of(api)["keys"]]
    assert len(kids) == 3 and len(set(kids)) == 3
    token = api.exchange(hs_token(supabase_claims()))[2]["access_token"]
    assert jwt.get_unverified_header(token)["kid"] == kids[0]  # the current key signs


def test_secret_shorter_than_32_bytes_refuses_to_start(make_api: MakeApi, aws_env: None) -> None:
    import boto3

    from tokengate.errors import ConfigurationError

    secrets = boto3.client("secretsmanager", region_name="us-east-1")
    arn = secrets.create_secret(Name="short", SecretString="too-short")["ARN"]
    with pytest.raises(ConfigurationError):
        make_api({"SupabaseJwtSecretArn": arn})


def test_hs_secret_is_used_as_raw_bytes_not_base64(make_api: MakeApi) -> None:
    api = make_api()
    decoded_secret = base64.urlsafe_b64decode(HS_SECRET + "=" * (-len(HS_SECRET) % 4))
    assert len(decoded_secret) >= 32
    assert api.exchange(hs_token(supabase_claims(), secret=decoded_secret))[0] == 400


def test_a_key_that_cannot_sign_the_configured_algorithm_is_a_clear_server_error(
    make_api: MakeApi, aws_env: None
) -> None:
    import boto3

    kms = boto3.client("kms", region_name="us-east-1")
    ec_key = kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec="ECC_NIST_P256")["KeyMetadata"]["Arn"]
    api = make_api({"SigningKeyArn": ec_key, "SigningAlgorithm": "RS256"})
    status, headers, body = api.exchange(hs_token(supabase_claims()))
    assert (status, body) == (500, {"error": "server_error"})
    assert headers["Cache-Control"] == "no-store"
    # The JWKS function, which publishes that key, says the same instead of crashing (a 502).
    status, _, body = api.call("GET", "/.well-known/jwks.json")
    assert (status, body) == (500, {"error": "server_error"})


def exchange_counts(output: str) -> list[dict[str, Any]]:
    """The EMF documents in ``output`` that count an exchange."""
    documents = [json.loads(line) for line in output.splitlines() if line.startswith('{"_aws"')]
    return [d for d in documents if "TokenExchange" in d]


@pytest.mark.parametrize(
    ("environment", "namespace", "service"),
    [
        ({}, "TokenGate", "tokengate"),
        (
            {"POWERTOOLS_METRICS_NAMESPACE": "Elsewhere", "POWERTOOLS_SERVICE_NAME": "gate"},
            "Elsewhere",
            "gate",
        ),
    ],
    ids=["template", "overridden"],
)
def test_each_exchange_is_one_count_in_the_shape_the_alarms_query(
    make_api: MakeApi,
    capsys: pytest.CaptureFixture[str],
    environment: dict[str, str],
    namespace: str,
    service: str,
) -> None:
    """``SELECT SUM(TokenExchange) FROM TokenGate WHERE outcome = ... / reason = ...`` (the
    alarms and the dashboard) finds a count only under exactly this namespace, metric and
    dimension set."""
    api = make_api(**environment)
    capsys.readouterr()
    assert api.exchange(hs_token(supabase_claims()))[0] == 200
    assert api.exchange("not.a.token")[0] == 400
    counts = exchange_counts(capsys.readouterr().out)
    assert [(d["outcome"], d["reason"]) for d in counts] == [
        ("issued", "ok"),
        ("refused", "malformed"),
    ]
    for document in counts:
        (directive,) = document["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == namespace
        assert directive["Metrics"] == [{"Name": "TokenExchange", "Unit": "Count"}]
        (dimensions,) = directive["Dimensions"]
        assert sorted(dimensions) == ["Stack", "outcome", "reason", "service"]
        assert document["service"] == service
        assert document["Stack"] == "tokengate-local"  # the template's AWS::StackName
        assert document["TokenExchange"] == 1
        assert isinstance(document["_aws"]["Timestamp"], int)
