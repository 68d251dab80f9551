"""template.yaml's production edges, rendered per variant: the custom domain (a path-less issuer),
the alarms with and without an SNS topic, the dashboard; and cfn-lint over each variant."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jwt
import pytest

from devstack.template import TEMPLATE, Template
from tests.factories import hs_token, supabase_claims
from tokengate.authorizer import log_decision
from tokengate.emf import stack_from_env

ROOT = Path(__file__).resolve().parent.parent
BASE = {"SupabaseUrl": "https://x.supabase.co"}
CERT = "arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789"
TOPIC = "arn:aws:sns:us-east-1:123456789012:tokengate-ops"
DOMAIN = {"DomainName": "auth.example.com", "DomainCertificateArn": CERT}
ZONE = {"HostedZoneId": "Z0123456789ABCDEFGHIJ"}
API_URL = "https://abc123.execute-api.us-east-1.amazonaws.com/v1"


def rendered(parameters: dict[str, str]) -> Template:
    template = Template.load(BASE | parameters)
    template.attributes.update({"Api": "abc123", "SigningKey.Arn": "arn:aws:kms:key"})
    return template


def present(template: Template) -> set[str]:
    """Logical ids of the resources this parameter set creates."""
    return {
        name
        for name, resource in template.resources.items()
        if "Condition" not in resource or template.condition(resource["Condition"])
    }


def output(template: Template, name: str) -> Any:
    spec = template.document["Outputs"][name]
    if "Condition" in spec and not template.condition(spec["Condition"]):
        return None
    return template.evaluate(spec["Value"]).replace("AWS::URLSuffix", "amazonaws.com")


DOMAIN_RESOURCES = {"ApiDomain", "ApiBasePathMapping", "ApiDomainRecord"}

VARIANTS = {
    "no custom domain": ({}, set(), "", API_URL),
    "custom domain, DNS by hand": (
        DOMAIN,
        {"ApiDomain", "ApiBasePathMapping"},
        "https://auth.example.com",
        "https://auth.example.com",
    ),
    "custom domain and hosted zone": (
        DOMAIN | ZONE,
        DOMAIN_RESOURCES,
        "https://auth.example.com",
        "https://auth.example.com",
    ),
    "explicit issuer wins": (
        DOMAIN | {"Issuer": "https://id.example.com"},
        {"ApiDomain", "ApiBasePathMapping"},
        "https://id.example.com",
        "https://id.example.com",
    ),
}


@pytest.mark.parametrize(
    ("parameters", "resources", "issuer_env", "issuer_output"),
    VARIANTS.values(),
    ids=VARIANTS.keys(),
)
def test_custom_domain_variants(
    parameters: dict[str, str], resources: set[str], issuer_env: str, issuer_output: str
) -> None:
    template = rendered(parameters)
    assert present(template) & DOMAIN_RESOURCES == resources
    # Every function derives the same issuer: the exchange mints it, discovery publishes it and
    # the API-token authorizer expects it. Empty means "the API's own URL", derived at run time.
    for function in template.functions():
        assert template.environment(function)["ISSUER"] == issuer_env, function
    assert output(template, "IssuerUrl") == issuer_output
    assert (output(template, "DomainTarget") is not None) == bool(parameters.get("DomainName"))


def test_the_domain_maps_the_whole_stage_at_its_root() -> None:
    template = rendered(DOMAIN | ZONE)
    domain = template.evaluate(template.resources["ApiDomain"]["Properties"])
    assert domain["EndpointConfiguration"] == {"Types": ["REGIONAL"]}
    assert domain["RegionalCertificateArn"] == CERT
    mapping = template.resources["ApiBasePathMapping"]["Properties"]
    assert "BasePath" not in mapping  # the issuer has no path, so RFC 8414 path insertion works
    record = template.evaluate(template.resources["ApiDomainRecord"]["Properties"])
    assert (record["Name"], record["Type"], record["HostedZoneId"]) == (
        "auth.example.com",
        "A",
        ZONE["HostedZoneId"],
    )


RULE_CASES = {
    "domain without certificate": ({"DomainName": "auth.example.com"}, False),
    "hosted zone without domain": (ZONE, False),
    "domain with certificate": (DOMAIN, True),
    "everything": (DOMAIN | ZONE, True),
    "nothing": ({}, True),
}


@pytest.mark.parametrize(("parameters", "valid"), RULE_CASES.values(), ids=RULE_CASES.keys())
def test_rules_refuse_incomplete_domain_settings(parameters: dict[str, str], valid: bool) -> None:
    """CloudFormation evaluates Rules before it creates anything; so does this test."""
    template = rendered(parameters)
    verdicts = [
        template.evaluate(assertion["Assert"])
        for rule in template.document["Rules"].values()
        if template.evaluate(rule["RuleCondition"])
        for assertion in rule["Assertions"]
    ]
    assert all(verdicts) == valid


def alarms(template: Template) -> dict[str, dict[str, Any]]:
    return {
        name: template.evaluate(resource["Properties"])
        for name, resource in template.resources.items()
        if resource["Type"] == "AWS::CloudWatch::Alarm"
    }


@pytest.mark.parametrize("topic", ["", TOPIC])
def test_alarms_notify_the_topic_only_when_one_is_given(topic: str) -> None:
    found = alarms(rendered({"AlarmTopicArn": topic}))
    assert len(found) >= 10
    for name, alarm in found.items():
        expected = [topic] if topic else None
        assert alarm["AlarmActions"] == expected, name
        assert alarm["OKActions"] == expected, name
        assert alarm["TreatMissingData"] == "notBreaching", name
        assert alarm["AlarmDescription"], name


def test_the_alarms_cover_what_an_operator_must_hear_about() -> None:
    text = json.dumps(alarms(rendered({})))
    for needle in [
        "5XXError",  # API Gateway 5xx, the exchange's and the whole API's
        "outcome = 'unavailable'",  # the exchange's 503s
        "reason = 'kms_throttled'",
        "JwksRefreshFailed",
        '"Errors"',  # Lambda errors, authorizers and the rest
        '"Throttles"',
        "ApiThrottled",
        '"Duration"',
    ]:
        assert needle in text, needle


def test_duration_alarm_is_80_percent_of_the_functions_timeout() -> None:
    template = rendered({})
    timeout_ms = template.document["Globals"]["Function"]["Timeout"] * 1000
    assert alarms(template)["DurationNearTimeoutAlarm"]["Threshold"] == 0.8 * timeout_ms
    for name, props in template.functions().items():
        assert "Timeout" not in props, f"{name}: its own timeout needs its own duration alarm"


def test_every_metric_alarmed_on_is_documented() -> None:
    operations = (ROOT / "docs" / "operations.md").read_text()
    names = set(re.findall(r"FROM TokenGate WHERE \w+ = '(\w+)'", TEMPLATE.read_text()))
    names |= set(re.findall(r"SUM\((\w+)\) FROM TokenGate", TEMPLATE.read_text()))
    names |= {"ApiThrottled"}
    for name in names:
        assert f"`{name}`" in operations, name


def test_the_dashboard_is_json_and_shows_every_alarm() -> None:
    template = rendered({})
    attributes = {f"{name}.Arn": f"arn:alarm:{name}" for name in alarms(template)}
    template.attributes.update(attributes)
    template.attributes.update({name: name for name in template.functions()})
    body = json.loads(
        template.evaluate(template.resources["Dashboard"]["Properties"]["DashboardBody"])
    )
    shown = {
        arn for w in body["widgets"] if w["type"] == "alarm" for arn in w["properties"]["alarms"]
    }
    assert shown == set(attributes.values())
    text = json.dumps(body)
    for query in ["GROUP BY outcome, reason", "SUM(ColdStart)", '"p50"', '"p99"']:
        assert query in text, query
    for function in template.functions():
        assert f'"FunctionName", "{function}"' in text, function


def variant(parameters: dict[str, str]) -> str:
    """The template with these parameter values as its defaults (cfn-lint checks defaults
    against AllowedPattern and resolves every condition branch)."""
    document = TEMPLATE.read_text()
    for name, value in parameters.items():
        document, count = re.subn(
            rf"(\n  {name}:\n    Type: \w+\n    Default: )[^\n]*", rf'\g<1>"{value}"', document
        )
        assert count == 1, name
    return document


LINT_VARIANTS = {
    "defaults": {},
    "domain, DNS by hand": DOMAIN,
    "domain, hosted zone and SNS": DOMAIN | ZONE | {"AlarmTopicArn": TOPIC},
    # The lint test's own check: a default the parameter's pattern refuses.
    "a domain its pattern refuses": {"DomainName": "Not A Domain"},
}


@pytest.fixture(scope="session")
def lint_findings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """cfn-lint's findings for each variant: one run over all of them (its rules and schemas
    load once), read per file from its JSON output."""
    folder = tmp_path_factory.mktemp("cfn-lint")
    paths = {}
    for number, (name, parameters) in enumerate(LINT_VARIANTS.items()):
        path = folder / f"variant-{number}.yaml"
        path.write_text(variant(parameters))
        paths[name] = path
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    result = subprocess.run(
        [str(cfn_lint), "--format", "json", *map(str, paths.values())],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    findings = json.loads(result.stdout or "[]")
    assert isinstance(findings, list), result.stderr
    if not findings:  # no finding and yet a failure: cfn-lint itself failed
        assert result.returncode == 0, result.stderr
    return {
        name: [f for f in findings if Path(f["Filename"]).name == path.name]
        for name, path in paths.items()
    }


# The variants' tests share one cfn-lint run: on one worker under make test.
@pytest.mark.xdist_group("cfn-lint")
@pytest.mark.parametrize("name", [n for n in LINT_VARIANTS if n != "a domain its pattern refuses"])
def test_cfn_lint_passes(name: str, lint_findings: dict[str, list[dict[str, Any]]]) -> None:
    assert lint_findings[name] == [], json.dumps(lint_findings[name], indent=1)


@pytest.mark.xdist_group("cfn-lint")
def test_cfn_lint_can_fail(lint_findings: dict[str, list[dict[str, Any]]]) -> None:
    """The lint test's own check: a default the parameter's pattern refuses is reported."""
    rules = {f["Rule"]["Id"] for f in lint_findings["a domain its pattern refuses"]}
    assert "E2015" in rules, rules


def test_api_gateway_alarms_name_this_api_and_stage() -> None:
    """API Gateway's metrics are keyed by the API's name: it is set to the stack's, and the
    per-route alarm needs the stage's detailed metrics."""
    template = rendered({"StageName": "prod"})
    api = template.evaluate(template.api())
    assert api["Name"] == "tokengate-local"  # the local evaluator's AWS::StackName
    assert any(setting.get("MetricsEnabled") for setting in api["MethodSettings"])
    for name in ("ExchangeServerErrorAlarm", "ApiServerErrorAlarm"):
        dimensions = {d["Name"]: d["Value"] for d in alarms(template)[name]["Dimensions"]}
        assert dimensions["ApiName"] == api["Name"]
        assert dimensions["Stage"] == "prod"
    route = {
        d["Name"]: d["Value"] for d in alarms(template)["ExchangeServerErrorAlarm"]["Dimensions"]
    }
    assert (route["Resource"], route["Method"]) == ("/token", "POST")


def test_a_custom_domain_is_the_issuer_the_functions_use(make_api: Any) -> None:
    """Deployed with a custom domain and no explicit issuer, the exchange mints tokens whose iss
    is the domain, and both discovery documents say the same."""
    api = make_api(DOMAIN | {"Issuer": ""})
    status, _, body = api.exchange(hs_token(supabase_claims()))
    assert status == 200
    assert jwt.decode(body["access_token"], options={"verify_signature": False})["iss"] == (
        "https://auth.example.com"
    )
    for path in ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"):
        assert api.call("GET", path)[2]["issuer"] == "https://auth.example.com"


def filter_fields(pattern: str) -> dict[str, str]:
    """``$.field = "value"`` terms of a CloudWatch Logs JSON filter pattern."""
    return dict(re.findall(r'\$\.(\w+) = "([^"]*)"', pattern))


@pytest.mark.parametrize("authorizer", ["ApiTokenAuthorizer", "SupabaseAuthorizer"])
def test_authorizer_refusal_metrics_read_the_line_the_authorizers_write(
    authorizer: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Lambda's JSON log format puts a record's message under ``message`` and its ``extra``
    fields at the top level; the filter must name exactly what ``log_decision`` writes."""
    template = rendered({})
    spec = template.evaluate(template.resources[f"{authorizer}RefusalMetricFilter"]["Properties"])
    assert (
        spec["LogGroupName"]
        == template.evaluate(
            template.resources[f"{authorizer}LogGroup"]["Properties"]["LogGroupName"]
        )
        or spec["LogGroupName"] == f"{authorizer}LogGroup"
    )
    (transformation,) = spec["MetricTransformations"]
    assert transformation["MetricName"] == f"{authorizer}Refusal"
    with caplog.at_level(logging.INFO, logger="tokengate.authorizer"):
        log_decision("unauthorized", "expired", None)
    (record,) = caplog.records
    assert filter_fields(spec["FilterPattern"]) == {"message": record.getMessage()}
    stack = stack_from_env(os.environ)
    expected = {"decision": "unauthorized", "reason": "expired", "stack": stack}
    for dimension in transformation["Dimensions"]:
        field = dimension["Value"].removeprefix("$.")
        assert getattr(record, field) == expected[field]
    assert '$.decision != "allow"' in spec["FilterPattern"]  # allows (DEBUG) are not refusals
