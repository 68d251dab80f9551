"""template.yaml in a real AWS account: the first deploy, per-caller limits, reserved concurrency,
per-stack alarms, CloudTrail change rules, "only the exchange function signs", audit logs and
tracing. Each property is checked by evaluating the rendered template with small evaluators of
our own (IAM, AWS WAF statements, EventBridge patterns), never by matching its text."""

from __future__ import annotations

import fnmatch
import json
import logging
import math
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from devstack.template import Template

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = "123456789012"
STACK = "tokengate-local"  # the local evaluator's AWS::StackName
KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/current"
NEXT_KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1111aaaa-2222-3333-4444-555566667777"
EXCHANGE_ROLE = f"arn:aws:iam::{ACCOUNT}:role/tokengate-TokenExchangeRole-X"
EXCHANGE_FN = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:tokengate-TokenExchangeFunction-X"
OTHER_FN = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:someone-elses-function"
FUNCTIONS = [
    "TokenExchangeFunction",
    "JwksFunction",
    "ApiTokenAuthorizerFunction",
    "SupabaseAuthorizerFunction",
    "WhoamiFunction",
]


def rendered(parameters: dict[str, str] | None = None) -> Template:
    template = Template.load({"SupabaseUrl": "https://x.supabase.co"} | (parameters or {}))
    template.attributes.update(
        {
            "AWS::Partition": "aws",
            "AWS::AccountId": ACCOUNT,
            "Api": "abc123",
            "Api.Stage": "v1",
            "SigningKey.Arn": KEY,
            "TokenExchangeRole.Arn": EXCHANGE_ROLE,
            "TokenExchangeFunction.Arn": EXCHANGE_FN,
            "WebAcl.Arn": "arn:aws:wafv2:us-east-1:123456789012:regional/webacl/x/1",
            "ApiGatewayCloudWatchLogsRole.Arn": f"arn:aws:iam::{ACCOUNT}:role/apigw-logs",
            "ChangeEventsTopic": "arn:aws:sns:us-east-1:123456789012:changes",
        }
        | {f"{rule}.Arn": f"arn:aws:events:us-east-1:{ACCOUNT}:rule/{rule}" for rule in RULES}
        | {name: f"tokengate-{name}-X" for name in FUNCTIONS}
        | {f"{name}Role": f"tokengate-{name}Role-X" for name in FUNCTIONS[1:]}
        | {"TokenExchangeRole": "tokengate-TokenExchangeRole-X"}
    )
    return template


RULES = ["SigningKeyChangeRule", "FunctionChangeRule", "RoleChangeRule"]


def present(template: Template) -> dict[str, dict[str, Any]]:
    """The resources this parameter set creates."""
    return {
        name: resource
        for name, resource in template.resources.items()
        if "Condition" not in resource or template.condition(resource["Condition"])
    }


def props(template: Template, name: str) -> Any:
    return template.evaluate(template.resources[name]["Properties"])


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# -- IAM, evaluated as IAM does: explicit Deny wins, then an Allow is needed ---------------------


def _condition_holds(condition: dict[str, Any], context: dict[str, str]) -> bool:
    """The operators the template uses. A key absent from the request makes a positive operator
    false and a negated one true (IAM's rule for operators without IfExists)."""
    for operator, tests in condition.items():
        for key, wanted in tests.items():
            value = context.get(key)
            patterns = [str(p) for p in as_list(wanted)]
            if operator in ("StringEquals", "ArnEquals"):
                holds = value is not None and value in patterns
            elif operator == "ArnLike":
                holds = value is not None and any(fnmatch.fnmatchcase(value, p) for p in patterns)
            elif operator == "ArnNotLike":
                holds = value is None or not any(fnmatch.fnmatchcase(value, p) for p in patterns)
            elif operator == "ArnNotEquals":
                holds = value is None or value not in patterns
            else:
                raise AssertionError(f"operator {operator} is not modelled")
            if not holds:
                return False
    return True


def _applies(statement: dict[str, Any], action: str, resource: str, ctx: dict[str, str]) -> bool:
    def match(patterns: Any, value: str) -> bool:
        return any(fnmatch.fnmatchcase(value.lower(), str(p).lower()) for p in as_list(patterns))

    return (
        match(statement["Action"], action)
        and match(statement.get("Resource", "*"), resource)
        and _condition_holds(statement.get("Condition", {}), ctx)
    )


def exchange_role_policies(template: Template) -> list[dict[str, Any]]:
    """Every identity-based statement on the exchange role: its inline policies, and each
    AWS::IAM::Policy resource of the stack attached to it."""
    role = props(template, "TokenExchangeRole")
    statements = [
        st
        for policy in role.get("Policies", [])
        if policy is not None
        for st in policy["PolicyDocument"]["Statement"]
    ]
    for name, resource in present(template).items():
        if resource["Type"] == "AWS::IAM::Policy":
            policy = props(template, name)
            if "tokengate-TokenExchangeRole-X" in policy["Roles"]:
                statements += policy["PolicyDocument"]["Statement"]
    return statements


def may_sign(template: Template, key: str, context: dict[str, str]) -> bool:
    """Whether the exchange role's credentials, in this request context, may kms:Sign ``key``."""
    identity = exchange_role_policies(template)
    key_policy = (
        props(template, "SigningKey")["KeyPolicy"]["Statement"]
        if key == KEY
        else [  # a rotation key: the runbook gives it the same policy (test_template.py checks)
            st | {"Resource": "*"} for st in props(template, "SigningKey")["KeyPolicy"]["Statement"]
        ]
    )
    everything = identity + key_policy
    if any(st["Effect"] == "Deny" and _applies(st, "kms:Sign", key, context) for st in everything):
        return False
    by_key = any(
        st["Effect"] == "Allow"
        and EXCHANGE_ROLE in as_list(st["Principal"]["AWS"])
        and _applies(st, "kms:Sign", key, context)
        for st in key_policy
    )
    by_identity = any(
        st["Effect"] == "Allow" and _applies(st, "kms:Sign", key, context) for st in identity
    )
    return by_key or by_identity


def contexts(alg: str) -> dict[str, dict[str, str]]:
    algorithm = "ECDSA_SHA_256" if alg == "ES256" else "RSASSA_PKCS1_V1_5_SHA_256"
    base = {"kms:SigningAlgorithm": algorithm, "aws:PrincipalArn": EXCHANGE_ROLE}
    return {
        "the exchange function": base | {"lambda:SourceFunctionArn": EXCHANGE_FN},
        "another function given the exchange role": base | {"lambda:SourceFunctionArn": OTHER_FN},
        "the role's credentials outside Lambda": base,
        "a function whose name extends the exchange's": base
        | {"lambda:SourceFunctionArn": EXCHANGE_FN + "-evil"},
    }


@pytest.mark.parametrize(
    "parameters",
    [{}, {"SigningAlgorithm": "ES256"}, {"SigningKeyArn": NEXT_KEY}],
    ids=["RS256", "ES256", "rotated key"],
)
def test_only_the_exchange_function_signs_not_merely_its_role(parameters: dict[str, str]) -> None:
    template = rendered(parameters)
    alg = parameters.get("SigningAlgorithm", "RS256")
    keys = [KEY, NEXT_KEY] if "SigningKeyArn" in parameters else [KEY]
    for key in keys:
        verdicts = {who: may_sign(template, key, ctx) for who, ctx in contexts(alg).items()}
        assert verdicts == {
            "the exchange function": True,
            "another function given the exchange role": False,
            "the role's credentials outside Lambda": False,
            "a function whose name extends the exchange's": False,
        }, key


def test_the_sign_evaluator_sees_a_role_without_the_deny() -> None:
    """The check can fail: without the stack's Deny, any function with the role signs."""
    template = rendered()
    document = dict(template.document)
    document["Resources"] = {
        name: res
        for name, res in template.document["Resources"].items()
        if name != "ExchangeSignsOnlyFromItsFunction"
    }
    bare = Template(document, template.parameters, template.attributes)
    ctx = contexts("RS256")["another function given the exchange role"]
    assert may_sign(bare, KEY, ctx)


def test_the_deny_is_a_policy_of_its_own_so_no_cycle() -> None:
    """The role cannot name the function that names it: the Deny is a separate AWS::IAM::Policy
    on the role, naming the function's ARN."""
    resource = Template.load().resources["ExchangeSignsOnlyFromItsFunction"]
    assert resource["Type"] == "AWS::IAM::Policy"
    assert "Condition" not in resource  # in every key mode and algorithm
    text = repr(resource["Properties"]["PolicyDocument"])
    assert "TokenExchangeFunction.Arn" in text


# -- The first deploy: API Gateway's account-level CloudWatch role -------------------------------


@pytest.mark.parametrize("choice", ["existing", "create"])
def test_the_api_gateway_account_role_is_created_only_when_asked(choice: str) -> None:
    template = rendered({"ApiGatewayCloudWatchRole": choice})
    made = {"ApiGatewayCloudWatchLogsRole", "ApiGatewayAccount"} & set(present(template))
    if choice == "existing":
        assert made == set()  # the account's setting is never touched
        assert template.evaluate(
            template.resources["ApiGatewayAccountReady"]["Metadata"]["Account"]
        ) == ("")
        return
    assert made == {"ApiGatewayCloudWatchLogsRole", "ApiGatewayAccount"}
    for name in made:  # deleting the stack never leaves the setting naming a deleted role
        assert template.resources[name]["DeletionPolicy"] == "Retain", name
    role = props(template, "ApiGatewayCloudWatchLogsRole")
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "apigateway.amazonaws.com"}
    assert role["ManagedPolicyArns"] == [
        "arn:aws:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"
    ]
    assert props(template, "ApiGatewayAccount")["CloudWatchRoleArn"] == (
        f"arn:aws:iam::{ACCOUNT}:role/apigw-logs"
    )
    # The API (and so its stage, whose access log needs the role) waits for the account setting.
    assert template.resources["Api"]["DependsOn"] == "ApiGatewayAccountReady"
    handle = template.resources["ApiGatewayAccountReady"]["Metadata"]["Account"]
    assert template.evaluate(handle) == "ApiGatewayAccount"


def test_the_default_never_clobbers_an_account_setting() -> None:
    assert Template.load().parameters["ApiGatewayCloudWatchRole"] == "existing"


def test_make_deploy_chooses_from_get_account(tmp_path: Path) -> None:
    import sys

    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import apigw_account
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    assert apigw_account.choose(None) == "create"
    assert apigw_account.choose("") == "create"
    assert apigw_account.choose("arn:aws:iam::1:role/x") == "existing"
    config = tmp_path / "samconfig.toml"
    config.write_text(
        "[default.deploy.parameters]\n"
        'parameter_overrides = "SupabaseUrl=\\"https://x.supabase.co\\" '
        'ApiGatewayCloudWatchRole=\\"existing\\" RouteScopes=\\"{\\\\\\"GET /a\\\\\\": \\\\\\"\\\\\\"}\\""\n'
    )
    saved = apigw_account.saved_overrides(config)
    assert saved == [
        "SupabaseUrl=https://x.supabase.co",
        "ApiGatewayCloudWatchRole=existing",
        'RouteScopes={"GET /a": ""}',
    ]
    merged = apigw_account.merged(saved, "create")
    assert merged[-1] == "ApiGatewayCloudWatchRole=create"
    assert sum(item.startswith("ApiGatewayCloudWatchRole=") for item in merged) == 1
    assert apigw_account.quoted(merged).endswith('ApiGatewayCloudWatchRole="create"')
    assert apigw_account.saved_overrides(tmp_path / "absent.toml") == []
    # Saved back, what sam deploy reads is the same list, and the other settings stay.
    repo_config = (ROOT / "samconfig.toml").read_text()
    for text in (config.read_text(), repo_config, "version = 0.1\n"):
        config.write_text(apigw_account.with_overrides(text, merged))
        assert apigw_account.saved_overrides(config) == merged
        written = tomllib.loads(config.read_text())
        before = tomllib.loads(text).get("default", {}).get("deploy", {}).get("parameters", {})
        after = written["default"]["deploy"]["parameters"]
        assert {k: v for k, v in after.items() if k != "parameter_overrides"} == {
            k: v for k, v in before.items() if k != "parameter_overrides"
        }


# -- AWS WAF: per-IP limits, known bad inputs, body size -----------------------------------------


def waf_matches(statement: dict[str, Any], path: str, body: bytes) -> bool:
    """An AWS WAF statement against a request (URI path and body), for the statements used."""
    if "OrStatement" in statement:
        return any(waf_matches(s, path, body) for s in statement["OrStatement"]["Statements"])
    if "AndStatement" in statement:
        return all(waf_matches(s, path, body) for s in statement["AndStatement"]["Statements"])
    if "NotStatement" in statement:
        return not waf_matches(statement["NotStatement"]["Statement"], path, body)
    if "ByteMatchStatement" in statement:
        spec = statement["ByteMatchStatement"]
        assert spec["FieldToMatch"] == {"UriPath": {}}
        needle, where = str(spec["SearchString"]), str(spec["PositionalConstraint"])
        verdicts: dict[str, bool] = {
            "EXACTLY": path == needle,
            "STARTS_WITH": path.startswith(needle),
            "ENDS_WITH": path.endswith(needle),
            "CONTAINS": needle in path,
        }
        return verdicts[where]
    if "SizeConstraintStatement" in statement:
        spec = statement["SizeConstraintStatement"]
        assert "Body" in spec["FieldToMatch"]
        inspected = 16 * 1024  # WAF reads the first 16 KiB of a body sent to API Gateway
        oversize = len(body) > inspected
        if oversize and spec["FieldToMatch"]["Body"].get("OversizeHandling") == "MATCH":
            return True
        size = min(len(body), inspected)
        return bool(
            {"GT": size > spec["Size"], "GE": size >= spec["Size"]}[spec["ComparisonOperator"]]
        )
    raise AssertionError(f"statement not modelled: {sorted(statement)}")


def rate_rules(acl: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        rule["Name"]: rule["Statement"]["RateBasedStatement"]
        for rule in acl["Rules"]
        if "RateBasedStatement" in rule["Statement"]
    }


def per_ip_limit(acl: dict[str, Any], path: str) -> int | None:
    """The per-IP requests per minute that apply to ``path`` (the tightest), or None."""
    limits = []
    for spec in rate_rules(acl).values():
        assert spec["AggregateKeyType"] == "IP"
        scope = spec.get("ScopeDownStatement")
        if scope is None or waf_matches(scope, path, b""):
            limits.append(int(spec["Limit"]) * 60 // int(spec["EvaluationWindowSec"]))
    return min(limits) if limits else None


PATHS = {
    # path as it reaches WAF: on the execute-api URL (with the stage) and on a custom domain
    "/v1/token": "write",
    "/token": "write",
    "/v1/revoke": "write",
    "/revoke": "write",
    "/v1/.well-known/jwks.json": "public",
    "/.well-known/openid-configuration": "public",
    "/v1/.well-known/oauth-authorization-server": "public",
    "/v1/statuslists/1": "public",
    "/statuslists/7": "public",
    "/v1/statuslists": "public",
    "/v1/whoami": None,
    "/v1/orders/12": None,
    "/v1/files/token-notes": None,
}


def test_the_web_acl_guards_the_stage_with_per_ip_limits_by_route() -> None:
    template = rendered()
    assert {"WebAcl", "WebAclAssociation"} <= set(present(template))
    association = props(template, "WebAclAssociation")
    assert association["ResourceArn"] == (
        "arn:aws:apigateway:us-east-1::/restapis/abc123/stages/v1"
    )
    acl = props(template, "WebAcl")
    assert acl["Scope"] == "REGIONAL" and acl["DefaultAction"] == {"Allow": {}}
    write, public = (
        int(template.parameters["WafTokenRateLimit"]),
        int(template.parameters["WafPublicRateLimit"]),
    )
    for path, kind in PATHS.items():
        expected = {"write": write, "public": public, None: None}[kind]
        assert per_ip_limit(acl, path) == expected, path
    for rule in acl["Rules"]:
        if "RateBasedStatement" in rule["Statement"]:
            block = rule["Action"]["Block"]["CustomResponse"]
            assert block["ResponseCode"] == 429
            body = acl["CustomResponseBodies"][block["CustomResponseBodyKey"]]
            assert json.loads(body["Content"])["error"] == "temporarily_unavailable"


def test_the_web_acl_limits_follow_the_parameters() -> None:
    acl = props(rendered({"WafTokenRateLimit": "20", "WafPublicRateLimit": "40"}), "WebAcl")
    assert per_ip_limit(acl, "/v1/token") == 20
    assert per_ip_limit(acl, "/v1/.well-known/jwks.json") == 40


def test_known_bad_inputs_and_body_size_on_the_write_routes() -> None:
    from tokengate.exchange import MAX_BODY_BYTES

    acl = props(rendered(), "WebAcl")
    groups = [
        rule["Statement"]["ManagedRuleGroupStatement"]
        for rule in acl["Rules"]
        if "ManagedRuleGroupStatement" in rule["Statement"]
    ]
    assert {"VendorName": "AWS", "Name": "AWSManagedRulesKnownBadInputsRuleSet"} in groups
    blocking = [
        rule
        for rule in acl["Rules"]
        if "Block" in rule.get("Action", {}) and "RateBasedStatement" not in rule["Statement"]
    ]

    def blocked(path: str, body: bytes) -> bool:
        return any(waf_matches(rule["Statement"], path, body) for rule in blocking)

    for path in ("/v1/token", "/revoke"):
        assert not blocked(path, b"x" * MAX_BODY_BYTES), path  # the product's own cap passes
        assert blocked(path, b"x" * (MAX_BODY_BYTES + 1)), path
        assert blocked(path, b"x" * (1024 * 1024)), path  # past what WAF inspects: oversize
    assert not blocked("/v1/files/big", b"x" * (1024 * 1024))  # backends keep their own rules
    assert len({rule["Priority"] for rule in acl["Rules"]}) == len(acl["Rules"])


def test_the_web_acl_can_be_turned_off() -> None:
    template = rendered({"WebAclEnabled": "false"})
    assert not {"WebAcl", "WebAclAssociation"} & set(present(template))


def method_settings(template: Template) -> dict[tuple[str, str], dict[str, Any]]:
    api = template.evaluate(template.api())
    return {(s["ResourcePath"], s["HttpMethod"]): s for s in api["MethodSettings"]}


def test_a_flood_of_public_routes_cannot_starve_the_authorizers_keys() -> None:
    """The API-token authorizer reads this API's GET /.well-known/jwks.json (API_JWKS_URL empty).
    That method has a throttle bucket of its own (per method: discovery and status-list floods
    drain other buckets), and WAF caps each IP on it: draining the bucket takes at least 100
    addresses at once. Warm authorizers keep their last good keys across failed refreshes."""
    template = rendered()
    env = template.environment("ApiTokenAuthorizerFunction")
    assert env["API_JWKS_URL"] == ""  # <issuer>/.well-known/jwks.json: the route below
    settings = method_settings(template)
    jwks = settings[("/~1.well-known~1jwks.json", "GET")]
    stage = settings[("/*", "*")]
    assert int(jwks["ThrottlingRateLimit"]) > int(stage["ThrottlingRateLimit"])
    acl = props(template, "WebAcl")
    per_ip_per_second = per_ip_limit(acl, "/v1/.well-known/jwks.json")
    assert per_ip_per_second is not None
    addresses = math.ceil(int(jwks["ThrottlingRateLimit"]) * 60 / per_ip_per_second)
    assert addresses >= 100, addresses
    # The authorizers' key source is not a route a per-IP rule leaves uncapped.
    assert per_ip_limit(acl, "/.well-known/jwks.json") == per_ip_per_second


# -- One throttle story with docs/scale.md: POST /token within the KMS quota --------------------


def test_the_token_route_throttle_stays_within_the_kms_planning_quota() -> None:
    """docs/scale.md plans with 300 ECC / 500 RSA Sign requests per second: the most POST /token
    can pass in one second (rate + burst) stays within the lower figure."""
    template = rendered()
    token = method_settings(template)[("/token", "POST")]
    rate, burst = int(token["ThrottlingRateLimit"]), int(token["ThrottlingBurstLimit"])
    assert rate + burst <= 300
    scale = (ROOT / "docs" / "scale.md").read_text()
    assert f"| `POST /token` | {rate} | {burst} |" in scale


# -- Reserved concurrency --------------------------------------------------------------------


RESERVED = {
    "TokenExchangeFunction": "ExchangeReservedConcurrency",
    "ApiTokenAuthorizerFunction": "ApiTokenAuthorizerReservedConcurrency",
    "SupabaseAuthorizerFunction": "SupabaseAuthorizerReservedConcurrency",
}


def reserved(template: Template) -> dict[str, int | None]:
    found = {}
    for function in RESERVED:
        value = template.evaluate(
            template.functions()[function].get("ReservedConcurrentExecutions")
        )
        found[function] = None if value is None else int(value)
    return found


def test_reserved_concurrency_defaults_deploy_in_a_fresh_account() -> None:
    """Lambda refuses a reservation that leaves fewer than 100 unreserved executions. A fresh
    account may have a limit of 10, so the defaults reserve nothing (the property is absent; 0
    itself would stop the function)."""
    assert reserved(rendered()) == dict.fromkeys(RESERVED)


def test_reserved_concurrency_follows_the_parameters() -> None:
    values = {"ExchangeReservedConcurrency": "50", "ApiTokenAuthorizerReservedConcurrency": "100"}
    template = rendered(values | {"SupabaseAuthorizerReservedConcurrency": "25"})
    assert reserved(template) == {
        "TokenExchangeFunction": 50,
        "ApiTokenAuthorizerFunction": 100,
        "SupabaseAuthorizerFunction": 25,
    }
    # The documented production example fits an account of 1,000 with 100 left unreserved.
    assert sum(v for v in reserved(template).values() if v) <= 1000 - 100


# -- Per-stack alarms and dashboard --------------------------------------------------------------


def alarms(template: Template) -> dict[str, dict[str, Any]]:
    return {
        name: props(template, name)
        for name, resource in present(template).items()
        if resource["Type"] == "AWS::CloudWatch::Alarm"
    }


def metric_scopes(alarm: dict[str, Any]) -> list[tuple[str, dict[str, str] | str]]:
    """Each metric an alarm reads: (namespace, dimensions) or ("insights", query)."""
    found: list[tuple[str, dict[str, str] | str]] = []
    if "MetricName" in alarm:
        dims = {d["Name"]: d["Value"] for d in alarm.get("Dimensions", [])}
        found.append((alarm["Namespace"], dims))
    for metric in alarm.get("Metrics", []):
        if metric is None:
            continue
        if "MetricStat" in metric:
            spec = metric["MetricStat"]["Metric"]
            found.append((spec["Namespace"], {d["Name"]: d["Value"] for d in spec["Dimensions"]}))
        elif metric["Expression"].startswith("SELECT"):
            found.append(("insights", metric["Expression"]))
    return found


@pytest.mark.parametrize("parameters", [{}, {"SigningMode": "secretsmanager"}], ids=["kms", "sm"])
def test_every_alarm_reads_this_stack_only(parameters: dict[str, str]) -> None:
    template = rendered(parameters)
    ours = {f"tokengate-{name}-X" for name in FUNCTIONS}
    for name, alarm in alarms(template).items():
        scopes = metric_scopes(alarm)
        assert scopes, name
        for namespace, scope in scopes:
            if namespace == "insights":
                assert isinstance(scope, str)
                assert re.search(rf"\bStack = '{STACK}'", scope), (name, scope)
                assert "FROM TokenGate" in scope, (name, scope)
            elif namespace == "TokenGate":
                assert scope == {"Stack": STACK}, (name, scope)
            elif namespace == "AWS/ApiGateway":
                assert isinstance(scope, dict) and scope["ApiName"] == STACK, name
            elif namespace == "AWS/Lambda":
                assert isinstance(scope, dict) and scope["FunctionName"] in ours, name
            elif namespace == "AWS/Events":
                assert isinstance(scope, dict) and scope["RuleName"] in RULES, name
            else:
                raise AssertionError(f"{name}: namespace {namespace} not scoped")


def test_the_refusal_ratio_filters_carry_the_stack() -> None:
    """The metric filters this file's alarms read; the functions' lines carry ``stack``."""
    template = rendered()
    for name in (
        "ApiTokenAuthorizerInvalidTokenMetricFilter",
        "SupabaseAuthorizerInvalidTokenMetricFilter",
    ):
        (transformation,) = props(template, name)["MetricTransformations"]
        assert transformation["Dimensions"] == [{"Key": "Stack", "Value": "$.stack"}], name


def test_every_dashboard_query_reads_this_stack_only() -> None:
    template = rendered()
    template.attributes.update({f"{name}.Arn": name for name in alarms(template)})
    body = json.loads(
        template.evaluate(template.resources["Dashboard"]["Properties"]["DashboardBody"])
    )
    for widget in body["widgets"]:
        if widget["type"] != "metric":
            continue
        for metric in widget["properties"]["metrics"]:
            head = metric[0]
            if isinstance(head, dict):  # a Metrics Insights query
                assert f"Stack = '{STACK}'" in head["expression"], head
            elif head == "TokenGate":
                assert metric[2:4] == ["Stack", STACK], metric
            elif head == "AWS/ApiGateway":
                assert metric[2:4] == ["ApiName", STACK], metric
            else:
                assert head == "AWS/Lambda" and metric[3] in {f"tokengate-{n}-X" for n in FUNCTIONS}


def test_the_new_alarms_watch_refusals_issuance_and_staleness() -> None:
    found = alarms(rendered())
    refusal = found["ExchangeRefusalRatioAlarm"]
    expressions = [m["Expression"] for m in refusal["Metrics"] if "Expression" in m]
    assert expressions == ["IF(requests >= 20, refused / requests, 0)"]
    names = {
        m["MetricStat"]["Metric"]["MetricName"] for m in refusal["Metrics"] if "MetricStat" in m
    }
    assert names == {"Count", "4XXError"}
    authorizers = found["AuthorizerRefusalRatioAlarm"]
    names = {
        m["MetricStat"]["Metric"]["MetricName"] for m in authorizers["Metrics"] if "MetricStat" in m
    }
    assert names == {
        "ApiTokenAuthorizerInvalidToken",
        "SupabaseAuthorizerInvalidToken",
        "Invocations",
    }
    stopped = found["ExchangeIssuanceStoppedAlarm"]
    (expression,) = [m["Expression"] for m in stopped["Metrics"] if "Expression" in m]
    assert expression == "IF((requests >= 10) AND (requests - client - server <= 0), 1, 0)"
    (query,) = [m["Expression"] for m in found["StatusListStaleAlarm"]["Metrics"]]
    assert query.startswith("SELECT SUM(StatusListStale) FROM TokenGate")


@pytest.mark.parametrize("authorizer", ["ApiTokenAuthorizer", "SupabaseAuthorizer"])
def test_the_invalid_token_filters_read_the_authorizers_refusal_line(
    authorizer: str, caplog: pytest.LogCaptureFixture
) -> None:
    from tokengate.authorizer import log_decision

    spec = props(rendered(), f"{authorizer}InvalidTokenMetricFilter")
    assert spec["LogGroupName"] == f"{authorizer}LogGroup"
    (transformation,) = spec["MetricTransformations"]
    assert transformation["MetricName"] == f"{authorizer}InvalidToken"
    fields = dict(re.findall(r'\$\.(\w+) = "([^"]*)"', spec["FilterPattern"]))
    with caplog.at_level(logging.INFO, logger="tokengate.authorizer"):
        log_decision("unauthorized", "expired", None)
    (record,) = caplog.records
    assert fields == {"message": record.getMessage(), "decision": "unauthorized"}
    assert record.__dict__["decision"] == "unauthorized"


# -- CloudTrail changes through EventBridge -------------------------------------------------------


def pattern_matches(pattern: Any, event: Any) -> bool:
    """An EventBridge event pattern against an event: every key of the pattern must match; a list
    of values matches if any does (exact, {"prefix"}, {"suffix"}); an array in the event matches
    if any element does."""
    if isinstance(pattern, dict):
        if not isinstance(event, dict) and not isinstance(event, list):
            return False
        if isinstance(event, list):
            return any(pattern_matches(pattern, item) for item in event)
        return all(
            key in event and pattern_matches(sub, event[key]) for key, sub in pattern.items()
        )
    assert isinstance(pattern, list)
    values = event if isinstance(event, list) else [event]
    for value in values:
        for candidate in pattern:
            if isinstance(candidate, dict):
                (op, arg), *_ = candidate.items()
                if op == "prefix" and isinstance(value, str) and value.startswith(arg):
                    return True
                if op == "suffix" and isinstance(value, str) and value.endswith(arg):
                    return True
            elif candidate == value:
                return True
    return False


def cloudtrail(source: str, name: str, **detail: Any) -> dict[str, Any]:
    return {
        "source": source,
        "detail-type": "AWS API Call via CloudTrail",
        "detail": {"eventSource": source.removeprefix("aws.") + ".amazonaws.com", "eventName": name}
        | detail,
    }


def kms_event(name: str, key: str) -> dict[str, Any]:
    return cloudtrail(
        "aws.kms",
        name,
        requestParameters={"keyId": key.rsplit("/", 1)[-1]},
        resources=[{"accountId": ACCOUNT, "type": "AWS::KMS::Key", "ARN": key}],
    )


def lambda_event(name: str, function: str) -> dict[str, Any]:
    return cloudtrail("aws.lambda", name, requestParameters={"functionName": function})


def iam_event(name: str, role: str) -> dict[str, Any]:
    return cloudtrail("aws.iam", name, requestParameters={"roleName": role})


EXCHANGE = "tokengate-TokenExchangeFunction-X"
CHANGES = {
    "key disabled": (kms_event("DisableKey", KEY), "SigningKeyChangeRule"),
    "key deletion scheduled": (kms_event("ScheduleKeyDeletion", KEY), "SigningKeyChangeRule"),
    "key policy put": (kms_event("PutKeyPolicy", KEY), "SigningKeyChangeRule"),
    "grant created": (kms_event("CreateGrant", KEY), "SigningKeyChangeRule"),
    "another key disabled": (kms_event("DisableKey", NEXT_KEY), None),
    "our key described": (kms_event("DescribeKey", KEY), None),
    "code by name": (lambda_event("UpdateFunctionCode20150331v2", EXCHANGE), "FunctionChangeRule"),
    "configuration by ARN": (
        lambda_event(
            "UpdateFunctionConfiguration20150331v2",
            f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:tokengate-JwksFunction-X",
        ),
        "FunctionChangeRule",
    ),
    "authorizer code by partial ARN": (
        lambda_event(
            "UpdateFunctionCode20150331v2",
            f"{ACCOUNT}:function:tokengate-ApiTokenAuthorizerFunction-X",
        ),
        "FunctionChangeRule",
    ),
    "another function's code": (
        lambda_event("UpdateFunctionCode20150331v2", "someone-elses-function"),
        None,
    ),
    "a function named like ours plus more": (
        lambda_event("UpdateFunctionCode20150331v2", EXCHANGE + "-copy"),
        None,
    ),
    "our function read": (lambda_event("GetFunction20150331v2", EXCHANGE), None),
    "inline policy put on the exchange role": (
        iam_event("PutRolePolicy", "tokengate-TokenExchangeRole-X"),
        "RoleChangeRule",
    ),
    "managed policy attached to an authorizer's role": (
        iam_event("AttachRolePolicy", "tokengate-SupabaseAuthorizerFunctionRole-X"),
        "RoleChangeRule",
    ),
    "trust policy of the JWKS role": (
        iam_event("UpdateAssumeRolePolicy", "tokengate-JwksFunctionRole-X"),
        "RoleChangeRule",
    ),
    "policy detached / deleted": (
        iam_event("DetachRolePolicy", "tokengate-WhoamiFunctionRole-X"),
        "RoleChangeRule",
    ),
    "another role's policy": (iam_event("PutRolePolicy", "someone-elses-role"), None),
}


@pytest.mark.parametrize(("event", "rule"), CHANGES.values(), ids=CHANGES.keys())
def test_cloudtrail_changes_fire_exactly_their_rule(
    event: dict[str, Any], rule: str | None
) -> None:
    template = rendered()
    fired = {
        name
        for name in RULES
        if name in present(template)
        and pattern_matches(props(template, name)["EventPattern"], event)
    }
    assert fired == ({rule} if rule else set())


def test_the_rules_reach_the_topic_and_the_alarm() -> None:
    template = rendered()
    policy = props(template, "ChangeEventsTopicPolicy")
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "sns:Publish"
    sources = statement["Condition"]["ArnEquals"]["aws:SourceArn"]
    watched = {
        m["MetricStat"]["Metric"]["Dimensions"][0]["Value"]
        for m in alarms(template)["ChangeEventAlarm"]["Metrics"]
        if m is not None and "MetricStat" in m
    }
    for rule in RULES:
        (target,) = props(template, rule)["Targets"]
        assert target["Arn"] == "arn:aws:sns:us-east-1:123456789012:changes"
        assert f"arn:aws:events:us-east-1:{ACCOUNT}:rule/{rule}" in sources
        assert rule in watched


def test_the_key_rule_exists_only_with_a_kms_key() -> None:
    template = rendered({"SigningMode": "secretsmanager"})
    assert "SigningKeyChangeRule" not in present(template)
    (statement,) = props(template, "ChangeEventsTopicPolicy")["PolicyDocument"]["Statement"]
    sources = [s for s in statement["Condition"]["ArnEquals"]["aws:SourceArn"] if s is not None]
    assert len(sources) == 2  # CloudFormation drops the NoValue entry


def test_a_rotated_key_is_watched_too() -> None:
    template = rendered({"SigningKeyArn": NEXT_KEY})
    pattern = props(template, "SigningKeyChangeRule")["EventPattern"]
    assert pattern_matches(pattern, kms_event("DisableKey", NEXT_KEY))
    assert pattern_matches(pattern, kms_event("DisableKey", KEY))


# -- Outputs that warn -----------------------------------------------------------------------------


def output_present(template: Template, name: str) -> bool:
    spec = template.document["Outputs"][name]
    return "Condition" not in spec or template.condition(spec["Condition"])


@pytest.mark.parametrize("topic", ["", "arn:aws:sns:us-east-1:123456789012:ops"])
def test_no_alarm_topic_is_a_warning_in_the_outputs(topic: str) -> None:
    template = rendered({"AlarmTopicArn": topic})
    assert output_present(template, "AlarmsNotifyNoOne") == (not topic)
    assert "WARNING" in template.document["Outputs"]["AlarmsNotifyNoOne"]["Value"]


# -- Audit logs and tracing ---------------------------------------------------------------------


def test_the_audit_logs_are_retained_a_year_and_named_by_cloudformation() -> None:
    template = rendered()
    assert int(template.parameters["AuditLogRetentionDays"]) >= 365
    for name in ("TokenExchangeLogGroup", "ApiAccessLogGroup"):
        resource = template.resources[name]
        assert resource["DeletionPolicy"] == "Retain", name
        assert resource["UpdateReplacePolicy"] == "Retain", name
        spec = props(template, name)
        assert int(spec["RetentionInDays"]) >= 365, name
        # A fixed name would collide with the retained group when the stack is created again.
        assert "LogGroupName" not in spec, name
    assert (
        props(template, "JwksLogGroup")["RetentionInDays"]
        == template.parameters["LogRetentionDays"]
    )
    for name, resource in template.resources.items():
        if resource["Type"] == "AWS::Logs::LogGroup" and "LogGroupName" in resource["Properties"]:
            assert resource.get("DeletionPolicy") != "Retain", name


def test_the_audit_retention_follows_its_parameter() -> None:
    template = rendered({"AuditLogRetentionDays": "731"})
    assert props(template, "ApiAccessLogGroup")["RetentionInDays"] == "731"


@pytest.mark.parametrize("on", [False, True])
def test_tracing_is_a_parameter_off_by_default(on: bool) -> None:
    template = rendered({"Tracing": "true"} if on else {})
    glob = template.evaluate(template.document["Globals"]["Function"]["Tracing"])
    assert glob == ("Active" if on else "PassThrough")
    assert template.evaluate(template.api()["TracingEnabled"]) is on
    assert ("ExchangeTracing" in present(template)) is on
    assert Template.load().parameters["Tracing"] == "false"


# -- Static analysis runs in make lint, and make lint in CI --------------------------------------


def test_make_lint_runs_the_template_analysers_and_ci_runs_make_lint() -> None:
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\nlint-template:", 1)[1].split("\n\n", 1)[0]
    assert "cfn-lint --append-rules cfn_lint_serverless.rules" in recipe
    assert "checkov" in recipe and "--file template.yaml" in recipe
    assert "lint-template" in makefile.split("\nlint:", 1)[1].split("\n\n", 1)[0]
    lint_requirements = (ROOT / "requirements" / "lint.txt").read_text()
    for tool in ("cfn-lint==", "cfn-lint-serverless==", "checkov=="):
        assert tool in lint_requirements, tool
    development = (ROOT / "requirements" / "dev.txt").read_text()
    assert "checkov" not in development and "cfn-lint-serverless" not in development
    steps = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip().startswith("make ")
    ]
    assert steps == ["make test", "make lint"]


def test_every_suppression_gives_its_reason() -> None:
    for name, resource in Template.load().resources.items():
        metadata = resource.get("Metadata", {})
        for skip in metadata.get("checkov", {}).get("skip", []):
            assert len(skip.get("comment", "")) > 20, (name, skip)
    text = (ROOT / "template.yaml").read_text()
    for line in text.splitlines():
        if re.match(r"\s+- [EWI]S?\d{4}", line):
            assert re.search(r"#\s*\S.{15,}", line), line
