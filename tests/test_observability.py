"""What the functions tell the operator: every metric carries the stack's name, and each issued
token is one audit line with who asked for it, never the token."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import jwt
import pytest

from devstack.events import proxy_event
from devstack.lambda_runtime import LambdaContext
from devstack.template import Template
from tests.conftest import ISSUER, InProcessApi
from tests.factories import hs_token, supabase_claims
from tests.jwks_server import JwksServer
from tests.test_budget import check_emf
from tokengate.exchange import ACCESS_TOKEN, GRANT_TYPE

MakeApi = Callable[..., InProcessApi]
STACK = "tokengate-staging"


def emf_documents(output: str) -> list[dict[str, Any]]:
    """Every EMF document in ``output`` (one JSON line each), checked against the EMF spec."""
    documents = []
    for line in output.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            documents.append(check_emf(line))
    return documents


def drive_every_handler(api: InProcessApi) -> None:
    """Requests that make each function emit what it counts: exchanges issued, refused and
    unavailable-free; both authorizers (one of them with its JWKS unreachable); the JWKS and
    discovery."""
    token = hs_token(supabase_claims())
    status, _, body = api.exchange(token)
    assert status == 200, body
    assert api.exchange("not.a.token")[0] == 400
    api_token = body["access_token"]
    api.call("GET", "/whoami", Authorization=f"Bearer {api_token}")
    api.call("GET", "/whoami", Authorization="Bearer x.y.z")
    api.call("GET", "/supabase/whoami", Authorization=f"Bearer {token}")
    api.call("GET", "/.well-known/jwks.json")
    api.call("GET", "/.well-known/openid-configuration")


@pytest.mark.parametrize("environment", [{}, {"STACK_NAME": STACK}], ids=["template", "named"])
def test_every_metric_of_every_handler_carries_the_stack(
    make_api: MakeApi, capsys: pytest.CaptureFixture[str], environment: dict[str, str]
) -> None:
    """Run the handlers (cold starts included), parse every EMF line they print: each dimension
    set of each metric names the stack, so two stacks' alarms never see each other's counts."""
    expected = environment.get("STACK_NAME", "tokengate-local")  # the template's AWS::StackName
    capsys.readouterr()
    api = make_api(**environment)
    drive_every_handler(api)
    documents = emf_documents(capsys.readouterr().out)
    metrics = {m["Name"] for d in documents for m in d["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    # Not vacuous: cold starts, exchanges and a failed JWKS refresh (the loopback-only test
    # network cannot reach the default Supabase project) were all counted.
    assert {"ColdStart", "TokenExchange", "JwksRefreshFailed"} <= metrics
    for document in documents:
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for dimension_set in directive["Dimensions"]:
                assert "Stack" in dimension_set, directive
        assert document["Stack"] == expected


def test_authorizer_refusal_lines_carry_the_stack_for_the_metric_filters(
    make_api: MakeApi, caplog: pytest.LogCaptureFixture
) -> None:
    """The refusal metric filters take their Stack dimension from the line's ``stack`` field."""
    api = make_api(STACK_NAME=STACK)
    caplog.set_level(logging.INFO)
    assert api.call("GET", "/whoami", Authorization="Bearer x.y.z")[0] == 401
    refusals = [r for r in caplog.records if r.getMessage() == "authorizer decision"]
    assert refusals and all(r.__dict__["stack"] == STACK for r in refusals)


def exchange_event(subject_token: str, request_id: str, source_ip: str) -> dict[str, Any]:
    body = urlencode(
        {
            "grant_type": GRANT_TYPE,
            "subject_token": subject_token,
            "subject_token_type": ACCESS_TOKEN,
        }
    )
    event = proxy_event(
        "POST", "/token", body, {"Content-Type": "application/x-www-form-urlencoded"}
    )
    event["requestContext"]["requestId"] = request_id
    event["requestContext"]["identity"]["sourceIp"] = source_ip
    return event


def logged_text(caplog: pytest.LogCaptureFixture, stdout: str) -> str:
    """Everything written to the logs: each record's message and fields, and the printed lines."""
    records = " ".join(f"{r.getMessage()} {r.__dict__!r}" for r in caplog.records)
    return f"{records}\n{stdout}"


@pytest.mark.parametrize(
    "parameters",
    [
        {"AllowedClientIds": "web-app"},
        {
            "AllowedClientIds": "web-app",
            "SigningMode": "secretsmanager",
            "SigningAlgorithm": "ES256",
        },
    ],
    ids=["kms", "secretsmanager"],
)
def test_each_issued_token_is_one_audit_line_without_the_token(
    make_api: MakeApi,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    parameters: dict[str, str],
) -> None:
    api = make_api(parameters)
    caplog.set_level(logging.DEBUG)
    capsys.readouterr()
    subject = hs_token(supabase_claims(client_id="web-app"))
    handler = api.gateway.handlers["TokenExchangeFunction"]
    issued = []
    for n in range(3):
        event = exchange_event(subject, f"request-{n}", f"203.0.113.{n}")
        answer = handler(event, LambdaContext("TokenExchangeFunction"))
        assert answer["statusCode"] == 200, answer
        issued.append(json.loads(answer["body"])["access_token"])
    lines = [r for r in caplog.records if r.getMessage() == "token issued"]
    assert len(lines) == 3  # one line per token
    for n, (record, token) in enumerate(zip(lines, issued, strict=True)):
        claims = jwt.decode(token, options={"verify_signature": False})
        header = jwt.get_unverified_header(token)
        fields = record.__dict__
        assert fields["client_id"] == "web-app" == claims["client_id"]
        assert fields["sid"] == claims["sid"]
        assert fields["jti"] == claims["jti"]
        assert fields["exp"] == claims["exp"]
        assert fields["kid"] == header["kid"]
        assert fields["request_id"] == f"request-{n}"
        assert fields["source_ip"] == f"203.0.113.{n}"
    # Never a token or a signature, in any line any function wrote.
    written = logged_text(caplog, capsys.readouterr().out)
    for secret in [subject, *issued]:
        assert secret not in written
        assert secret.rsplit(".", 1)[1] not in written


def test_no_line_of_a_whole_session_holds_a_token_or_signature(
    make_api: MakeApi, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exchanges, refusals and authorized calls through both authorizers: the subject token,
    the issued token and their signatures appear in no captured line."""
    with JwksServer({"keys": []}) as own_jwks:
        api = make_api(API_JWKS_URL=own_jwks.jwks_url, ISSUER=ISSUER)
        own_jwks.document = api.call("GET", "/.well-known/jwks.json")[2]
        caplog.set_level(logging.DEBUG)
        capsys.readouterr()
        written = session_logs(api, caplog, capsys)
    assert "token issued" in written  # the lines were captured
    for secret in written.secrets:
        assert secret not in written
        assert secret.rsplit(".", 1)[1] not in written


class Written(str):
    secrets: tuple[str, ...] = ()


def session_logs(
    api: InProcessApi, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> Written:
    subject = hs_token(supabase_claims())
    status, _, body = api.exchange(subject)
    assert status == 200
    issued = body["access_token"]
    assert api.call("GET", "/whoami", Authorization=f"Bearer {issued}")[0] == 200
    assert api.call("GET", "/supabase/whoami", Authorization=f"Bearer {subject}")[0] == 200
    tampered = issued[:-4] + ("AAAA" if not issued.endswith("AAAA") else "BBBB")
    assert api.call("GET", "/whoami", Authorization=f"Bearer {tampered}")[0] == 401
    assert api.exchange(subject + "x")[0] == 400
    written = Written(logged_text(caplog, capsys.readouterr().out))
    written.secrets = (subject, issued, tampered)
    return written


# -- the template: the Stack dimension reaches every metric ------------------------------------


def test_every_function_knows_its_stack_and_every_metric_filter_has_the_dimension() -> None:
    template = Template.load()
    for function in template.functions():
        assert template.environment(function)["STACK_NAME"] == "tokengate-local"
    filters = {
        name: resource["Properties"]
        for name, resource in template.resources.items()
        if resource["Type"] == "AWS::Logs::MetricFilter"
    }
    assert filters  # not vacuous
    for name, properties in filters.items():
        for transformation in properties["MetricTransformations"]:
            dimensions = {d["Key"]: d["Value"] for d in transformation.get("Dimensions", [])}
            assert dimensions.get("Stack") == "$.stack", name
            assert len(dimensions) <= 3, name  # CloudWatch Logs' limit per metric filter
    # The access log's lines carry the field its filter reads: the stack's name.
    access = template.evaluate(template.api()["AccessLogSetting"]["Format"])
    line = json.loads(re.sub(r"\$context\.[A-Za-z.]+", "x", access))
    assert line["stack"] == "tokengate-local"
