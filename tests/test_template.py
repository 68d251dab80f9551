"""template.yaml: least privilege per function, and the single source of truth for routes."""

from __future__ import annotations

import fnmatch
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.gateway import Gateway
from devstack.template import TEMPLATE, ParameterError, Template

KEY = "arn:aws:kms:us-east-1:123456789012:key/current"
JWT_SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:jwt"
PEM_SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:pem"
OLD_KEY = "arn:aws:kms:us-east-1:123456789012:key/previous"

TABLE = "arn:aws:dynamodb:us-east-1:123456789012:table/revocation"
Grant = tuple[str, str, str]  # (action, resource, condition)
# The revocation table: the exchange reads, allocates, revokes and publishes; the public JWKS
# function reads the signed status list item alone (docs/revocation.md).
STORE_GRANTS: set[tuple[str, str, str]] = {
    (action, TABLE, "")
    for action in (
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:ConditionCheckItem",  # the transaction of a session's first exchange
        "dynamodb:Scan",
    )
}
LIST_GRANT = (
    "dynamodb:GetItem",
    TABLE,
    str({"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["l#*"]}}),
)


def permissions(parameters: dict[str, str]) -> dict[str, set[Grant]]:
    """Each function's effective grants: its role's IAM statements, and what the signing key's
    policy grants its role by name."""
    template = deployed(parameters)
    named = []
    if template.condition("UseKms"):
        named = [st for st in key_policy(template)["Statement"] if st["Principal"]["AWS"] != ROOT]
    grants: dict[str, set[Grant]] = {}
    for name in template.functions():
        found: set[Grant] = set()
        if role_of(template, name) == "TokenExchangeRole":
            for statement in named:
                assert statement["Principal"]["AWS"] == EXCHANGE_ROLE
                for action in statement["Action"]:
                    found.add((action, KEY, str(statement.get("Condition", ""))))
        for statements in iam_statements(template, name):
            for statement in statements:
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


def role_of(template: Template, function: str) -> str | None:
    """The logical id of a function's explicit role (None: SAM's implicit role)."""
    role = template.functions()[function].get("Role")
    return None if role is None else str(role.value[0])


def iam_statements(template: Template, function: str) -> list[list[dict[str, Any]]]:
    """The statements of each inline policy of a function's role, evaluated: SAM ``Policies``
    for an implicit role, the ``AWS::IAM::Role``'s ``Policies`` for an explicit one."""
    role = role_of(template, function)
    if role is None:
        policies = template.evaluate(template.functions()[function].get("Policies", []))
        for policy in policies:
            assert isinstance(policy, dict), f"{function}: only inline statements"
        return [policy["Statement"] for policy in policies]
    properties = template.resources[role]["Properties"]
    assert properties["ManagedPolicyArns"] == [properties["ManagedPolicyArns"][0]]
    assert "AWSLambdaBasicExecutionRole" in template.evaluate(properties["ManagedPolicyArns"][0])
    policies = [p for p in template.evaluate(properties.get("Policies", [])) if p is not None]
    return [policy["PolicyDocument"]["Statement"] for policy in policies]


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
                # The stack's own key still names the exchange's role (it may still be published).
                ("kms:Sign", KEY, SIGN_RS),
                ("kms:GetPublicKey", KEY, ""),
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
            "JwksFunction": set(),  # publishes SigningPublicKeys: no private key to read
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
    with_store = dict(expected)
    with_store["TokenExchangeFunction"] = expected["TokenExchangeFunction"] | STORE_GRANTS
    with_store["JwksFunction"] = expected["JwksFunction"] | {LIST_GRANT}
    assert permissions(parameters) == with_store
    assert permissions(parameters | {"Revocation": "false"}) == expected


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


# -- who may sign? The key policy and the IAM policies, evaluated together --------------------

ACCOUNT = "123456789012"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"
EXCHANGE_ROLE = f"arn:aws:iam::{ACCOUNT}:role/tokengate-TokenExchangeRole-X"
ADMIN = f"arn:aws:iam::{ACCOUNT}:role/Administrator"
ADMIN_POLICY = [{"Effect": "Allow", "Action": ["kms:*"], "Resource": "*"}]  # the usual admin grant


def deployed(parameters: dict[str, str] | None = None) -> Template:
    template = Template.load({"SupabaseUrl": "https://x.supabase.co"} | (parameters or {}))
    template.attributes.update(
        {
            "SigningKey.Arn": KEY,
            "AWS::Partition": "aws",
            "AWS::AccountId": ACCOUNT,
            "TokenExchangeRole.Arn": EXCHANGE_ROLE,
            "RevocationTable.Arn": TABLE,
        }
    )
    return template


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def matches(patterns: Any, value: str) -> bool:
    return any(fnmatch.fnmatchcase(value.lower(), str(p).lower()) for p in as_list(patterns))


def iam_principals(template: Template) -> dict[str, list[dict[str, Any]]]:
    """Every IAM principal of the account that could act on the key: each function's role, and
    an administrator holding ``kms:*`` on ``*``."""
    principals = {ADMIN: ADMIN_POLICY}
    for function in template.functions():
        role = role_of(template, function)
        arn = EXCHANGE_ROLE if role == "TokenExchangeRole" else f"{function}Role"
        principals[arn] = [st for sts in iam_statements(template, function) for st in sts if st]
    return principals


def who_may(action: str, key_policy: dict[str, Any], template: Template) -> set[str]:
    """Principals allowed ``action`` on the key: named in the key policy, or allowed by their
    IAM policy where the key policy delegates that action to the account (its root)."""
    allowed: set[str] = set()
    delegated = False
    for statement in key_policy["Statement"]:
        assert statement["Effect"] == "Allow"
        if not matches(statement["Action"], action):
            continue
        for principal in as_list(statement["Principal"]["AWS"]):
            if principal == ROOT:
                delegated = True
            else:
                allowed.add(principal)
    if delegated:
        for principal, statements in iam_principals(template).items():
            if any(
                st["Effect"] == "Allow"
                and matches(st["Action"], action)
                and matches(st["Resource"], KEY)
                for st in statements
            ):
                allowed.add(principal)
    return allowed


def key_policy(template: Template) -> dict[str, Any]:
    policy = template.evaluate(template.resources["SigningKey"]["Properties"]["KeyPolicy"])
    assert isinstance(policy, dict)
    return policy


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_only_the_exchange_role_may_sign_and_administrators_still_administer(alg: str) -> None:
    template = deployed({"SigningAlgorithm": alg})
    policy = key_policy(template)
    assert who_may("kms:Sign", policy, template) == {EXCHANGE_ROLE}
    assert who_may("kms:CreateGrant", policy, template) == set()  # a grant could hand out Sign
    assert who_may("kms:Verify", policy, template) == set()
    for administration in (
        "kms:DescribeKey",
        "kms:DisableKey",
        "kms:PutKeyPolicy",
        "kms:ScheduleKeyDeletion",
        "kms:CancelKeyDeletion",
        "kms:ListAliases",
    ):
        assert ADMIN in who_may(administration, policy, template), administration
    assert who_may("kms:GetPublicKey", policy, template) == {
        EXCHANGE_ROLE,
        "JwksFunctionRole",
        ADMIN,
    }
    (sign,) = [st for st in policy["Statement"] if matches(st["Action"], "kms:Sign")]
    expected = "ECDSA_SHA_256" if alg == "ES256" else "RSASSA_PKCS1_V1_5_SHA_256"
    assert sign["Condition"] == {"StringEquals": {"kms:SigningAlgorithm": expected}}


def test_the_evaluator_sees_an_account_wide_key_policy() -> None:
    """The check can fail: with the old account-wide policy, any kms:* administrator signs."""
    template = deployed()
    wide = {"Statement": [{"Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "kms:*"}]}
    assert ADMIN in who_may("kms:Sign", wide, template)


def test_rotation_keys_get_the_stack_keys_policy() -> None:
    sys.path.insert(0, str(TEMPLATE.parent / "scripts"))
    try:
        from rotate_signing_key import signing_key_policy
    finally:
        sys.path.remove(str(TEMPLATE.parent / "scripts"))
    for alg in ("RS256", "ES256"):
        template = deployed({"SigningAlgorithm": alg})
        made = json.loads(signing_key_policy(EXCHANGE_ROLE, alg))
        assert made == key_policy(template)
        assert who_may("kms:Sign", made, template) == {EXCHANGE_ROLE}


def references(value: Any) -> Iterator[str]:
    """Logical ids a template value refers to (Ref, GetAtt, Sub)."""
    import re

    from devstack.template import _Tag

    if isinstance(value, _Tag):
        if value.name == "Ref":
            yield str(value.value)
        elif value.name == "GetAtt":
            yield str(
                value.value[0] if isinstance(value.value, list) else value.value.split(".")[0]
            )
        elif value.name == "Sub":
            text = value.value if isinstance(value.value, str) else value.value[0]
            yield from (m.split(".")[0] for m in re.findall(r"\$\{([^}]+)\}", text))
            if not isinstance(value.value, str):
                yield from references(value.value[1])
        else:
            yield from references(value.value)
    elif isinstance(value, list):
        for item in value:
            yield from references(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key != "Events":  # SAM turns events into permissions and routes of the API
                yield from references(item)


def test_resources_have_no_circular_dependency() -> None:
    """CloudFormation refuses a cycle: the key policy names the exchange role, so that role must
    not name the key (SAM's implicit role would, through the function's Policies)."""
    resources = Template.load().resources
    graph = {
        name: {r for r in references(res) if r in resources and r != name}
        | set(as_list(res.get("DependsOn", [])))
        for name, res in resources.items()
    }
    assert "TokenExchangeRole" in graph["SigningKey"]
    visiting: set[str] = set()
    done: set[str] = set()

    def visit(node: str, path: tuple[str, ...]) -> None:
        assert node not in visiting, f"cycle: {' -> '.join((*path, node))}"
        if node in done:
            return
        visiting.add(node)
        for nxt in graph[node]:
            visit(nxt, (*path, node))
        visiting.discard(node)
        done.add(node)

    for node in graph:
        visit(node, ())


def test_the_issuance_audit_log_is_retained_like_the_key() -> None:
    group = Template.load().resources["TokenExchangeLogGroup"]
    assert group["DeletionPolicy"] == "Retain"
    assert group["UpdateReplacePolicy"] == "Retain"


def test_the_jwks_route_has_a_throttle_of_its_own() -> None:
    """The API-token authorizer reads its keys from GET /.well-known/jwks.json: a method-level
    setting takes that route out of the stage throttle callers share."""
    settings = Template.load().resources["Api"]["Properties"]["MethodSettings"]
    (jwks,) = [s for s in settings if s["ResourcePath"] == "/~1.well-known~1jwks.json"]
    assert jwks["HttpMethod"] == "GET"
    assert int(jwks["ThrottlingRateLimit"]) > 0 and int(jwks["ThrottlingBurstLimit"]) > 0
    (stage,) = [s for s in settings if s["ResourcePath"] == "/*"]
    assert "Ref" in repr(stage["ThrottlingRateLimit"])  # the stage keeps the operator's limit
