"""template.yaml: least privilege per function, and the single source of truth for routes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from devstack.gateway import Gateway
from devstack.template import TEMPLATE, ParameterError, Template

KEY = "arn:aws:kms:us-east-1:123456789012:key/current"
JWT_SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:jwt"
PEM_SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:pem"
OLD_KEY = "arn:aws:kms:us-east-1:123456789012:key/previous"

Grant = tuple[str, str, str]  # (action, resource, condition)


def permissions(parameters: dict[str, str]) -> dict[str, set[Grant]]:
    template = Template.load({"SupabaseUrl": "https://x.supabase.co"} | parameters)
    template.attributes["SigningKey.Arn"] = KEY
    grants: dict[str, set[Grant]] = {}
    for name, props in template.functions().items():
        found: set[Grant] = set()
        for policy in template.evaluate(props.get("Policies", [])):
            assert isinstance(policy, dict), f"{name}: only inline statements, no managed policies"
            for statement in policy["Statement"]:
                if statement is None:
                    continue
                assert statement["Effect"] == "Allow"
                resources = statement["Resource"]
                for resource in [resources] if isinstance(resources, str) else resources:
                    assert "*" not in resource, f"{name}: wildcard resource"
                    for action in statement["Action"]:
                        condition = str(statement.get("Condition", ""))
                        found.add((action, resource, condition))
        grants[name] = found
    return grants


SIGN_RS = str({"StringEquals": {"kms:SigningAlgorithm": "RSASSA_PKCS1_V1_5_SHA_256"}})
SIGN_ES = str({"StringEquals": {"kms:SigningAlgorithm": "ECDSA_SHA_256"}})

CASES: dict[str, tuple[dict[str, str], dict[str, set[Grant]]]] = {
    "kms RS256 with HS256 secret": (
        {"SupabaseJwtSecretArn": JWT_SECRET},
        {
            "TokenExchangeFunction": {
                ("kms:Sign", KEY, SIGN_RS),
                ("kms:GetPublicKey", KEY, ""),
                ("secretsmanager:GetSecretValue", JWT_SECRET, ""),
            },
            "JwksFunction": {("kms:GetPublicKey", KEY, "")},
            "ApiTokenAuthorizerFunction": set(),
            "SupabaseAuthorizerFunction": {("secretsmanager:GetSecretValue", JWT_SECRET, "")},
            "WhoamiFunction": set(),
        },
    ),
    "kms ES256, JWKS only, rotating": (
        {"SigningAlgorithm": "ES256", "PublishedKeyIds": OLD_KEY},
        {
            "TokenExchangeFunction": {("kms:Sign", KEY, SIGN_ES), ("kms:GetPublicKey", KEY, "")},
            "JwksFunction": {("kms:GetPublicKey", KEY, ""), ("kms:GetPublicKey", OLD_KEY, "")},
            "ApiTokenAuthorizerFunction": set(),
            "SupabaseAuthorizerFunction": set(),
            "WhoamiFunction": set(),
        },
    ),
    "rotation: signing with the next key, previous published": (
        {
            "SigningKeyArn": "arn:aws:kms:us-east-1:123456789012:key/1111aaaa-2222-3333-4444-555566667777",
            "PublishedKeyIds": OLD_KEY,
            "SupabaseJwtSecretArn": JWT_SECRET,
        },
        {
            "TokenExchangeFunction": {
                (
                    "kms:Sign",
                    "arn:aws:kms:us-east-1:123456789012:key/1111aaaa-2222-3333-4444-555566667777",
                    SIGN_RS,
                ),
                (
                    "kms:GetPublicKey",
                    "arn:aws:kms:us-east-1:123456789012:key/1111aaaa-2222-3333-4444-555566667777",
                    "",
                ),
                ("secretsmanager:GetSecretValue", JWT_SECRET, ""),
            },
            "JwksFunction": {
                (
                    "kms:GetPublicKey",
                    "arn:aws:kms:us-east-1:123456789012:key/1111aaaa-2222-3333-4444-555566667777",
                    "",
                ),
                ("kms:GetPublicKey", OLD_KEY, ""),
            },
            "ApiTokenAuthorizerFunction": set(),
            "SupabaseAuthorizerFunction": {("secretsmanager:GetSecretValue", JWT_SECRET, "")},
            "WhoamiFunction": set(),
        },
    ),
    "secrets manager key": (
        {
            "SigningMode": "secretsmanager",
            "SigningKeySecretArn": PEM_SECRET,
            "SupabaseJwtSecretArn": JWT_SECRET,
        },
        {
            "TokenExchangeFunction": {
                ("secretsmanager:GetSecretValue", PEM_SECRET, ""),
                ("secretsmanager:GetSecretValue", JWT_SECRET, ""),
            },
            "JwksFunction": {("secretsmanager:GetSecretValue", PEM_SECRET, "")},
            "ApiTokenAuthorizerFunction": set(),
            "SupabaseAuthorizerFunction": {("secretsmanager:GetSecretValue", JWT_SECRET, "")},
            "WhoamiFunction": set(),
        },
    ),
}


@pytest.mark.parametrize("parameters, expected", CASES.values(), ids=CASES.keys())
def test_each_function_has_exactly_its_permissions(
    parameters: dict[str, str], expected: dict[str, set[Grant]]
) -> None:
    assert permissions(parameters) == expected


def test_no_function_but_the_exchange_may_sign() -> None:
    for parameters, _ in CASES.values():
        for name, grants in permissions(parameters).items():
            if name != "TokenExchangeFunction":
                assert not any(action == "kms:Sign" for action, _, _ in grants), name


def test_signing_key_is_retained_and_sign_verify() -> None:
    key = Template.load().resources["SigningKey"]
    assert key["DeletionPolicy"] == "Retain"
    assert key["UpdateReplacePolicy"] == "Retain"
    assert key["Properties"]["KeyUsage"] == "SIGN_VERIFY"


def test_every_function_has_a_log_group_with_retention() -> None:
    template = Template.load()
    for name, props in template.functions().items():
        group = props["LoggingConfig"]["LogGroup"].value
        assert template.resources[group]["Type"] == "AWS::Logs::LogGroup", name
        assert "RetentionInDays" in template.resources[group]["Properties"]


def test_logical_ids_tooling_relies_on() -> None:
    assert {
        "TokenExchangeFunction",
        "JwksFunction",
        "ApiTokenAuthorizerFunction",
        "SupabaseAuthorizerFunction",
    } <= set(Template.load().functions())


def test_routes_and_authorizers_come_from_the_template(tmp_path: Path) -> None:
    """Renaming a route in the template renames it in the local stack."""
    changed = tmp_path / "template.yaml"
    changed.write_text(TEMPLATE.read_text().replace("Path: /whoami", "Path: /me"))
    template = Template.load({"SupabaseUrl": "https://x.supabase.co"}, path=changed)
    gateway = Gateway(template, handlers={})
    assert gateway.handle("GET", "/whoami", {}, b"", "127.0.0.1").status == 404  # no such route
    answer = gateway.handle("GET", "/me", {}, b"", "127.0.0.1")
    assert answer.status == 401  # the route exists, guarded by the template's authorizer
    routes = {(r.method, r.path): r.authorizer for r in template.routes()}
    assert routes[("GET", "/me")] == "ApiTokenAuthorizer"
    assert routes[("GET", "/supabase/whoami")] == "SupabaseAuthorizer"
    assert routes[("POST", "/token")] is None
    assert gateway.unlisted_routes() == ["GET /me"]  # RouteScopes still names /whoami


def test_route_scopes_list_every_guarded_route_of_the_template() -> None:
    """Each authorizer decides for the routes its table lists; the default table lists every
    route the template guards, with its own path syntax."""
    gateway = Gateway(Template.load({"SupabaseUrl": "https://x.supabase.co"}), handlers={})
    assert gateway.unlisted_routes() == []


def test_parameters_document_themselves() -> None:
    for name, spec in Template.load().document["Parameters"].items():
        assert spec.get("Description"), name


def test_globals_use_a_current_runtime_on_arm64_with_json_logs() -> None:
    glob: dict[str, Any] = Template.load().document["Globals"]["Function"]
    assert glob["Runtime"] == "python3.13"
    assert glob["Architectures"] == ["arm64"]
    assert glob["LoggingConfig"]["LogFormat"] == "JSON"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"SigningAlgorithm": "PS256"}, "choose one of RS256, ES256"),
        ({"SigningMode": "KMS"}, "choose one of kms, secretsmanager"),
        ({"SupabaseUrl": "https://x.supabase.co/auth/v1"}, "does not match"),
        ({"SupabaseUrl": "ftp://x.supabase.co"}, "does not match"),
        ({"SigningKeyArn": "arn:aws:kms:us-east-1:123456789012:alias/x"}, "does not match"),
        ({"TokenTtlSeconds": "59"}, "outside 60..3600"),
        ({"TokenTtlSeconds": "3601"}, "outside 60..3600"),
        ({"LeewaySeconds": "ten"}, "is not a number"),
        ({"LogRetentionDays": "2"}, "choose one of"),
        ({"SigningAlgoritm": "ES256"}, "is not a parameter"),
    ],
)
def test_parameter_values_cloudformation_refuses_are_refused(
    overrides: dict[str, str], message: str
) -> None:
    with pytest.raises(ParameterError, match=message):
        Template.load(overrides)


def test_parameter_values_within_the_constraints_are_taken() -> None:
    values = {
        "SigningAlgorithm": "ES256",
        "SupabaseUrl": "http://127.0.0.1:54321",
        "TokenTtlSeconds": "60",
        "LeewaySeconds": "0",
        "LogRetentionDays": "365",
        "SigningKeyArn": "",
    }
    assert Template.load(values).parameters.items() >= values.items()
