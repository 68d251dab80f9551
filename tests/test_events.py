"""Every events/*.json runs through its handler with the expected outcome (what `make invoke`
does), and the events stay valid API Gateway shapes for `sam local invoke`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.gateway import authorizer_outcome
from devstack.invoke import EventError, invoke, main, placeholders, render
from devstack.moto_aws import free_port
from devstack.stack import LocalStack
from devstack.template import Template

EVENTS = Path(__file__).resolve().parent.parent / "events"
FILES = sorted(p for p in EVENTS.glob("*.json") if p.name != "env.json")


def outcome(result: dict[str, Any], event: dict[str, Any]) -> str:
    if result.get("errorMessage") == "Unauthorized":
        return "unauthorized"
    if "statusCode" in result:
        body = json.loads(result["body"])
        return f"{result['statusCode']} {body.get('error', '')}".strip()
    return authorizer_outcome(result, event)


EXPECTED = {
    "TokenExchangeFunction-valid": "200",
    "TokenExchangeFunction-expired": "400 invalid_request",
    "TokenExchangeFunction-anon-key": "400 invalid_request",
    "TokenExchangeFunction-wrong-grant-type": "400 unsupported_grant_type",
    "TokenExchangeFunction-invalid-scope": "400 invalid_scope",
    "JwksFunction-jwks": "200",
    "JwksFunction-openid-configuration": "200",
    "JwksFunction-oauth-authorization-server": "200",
    "WhoamiFunction-valid": "200",
} | {
    f"{function}-{kind}-{scenario}": result
    for function in ("ApiTokenAuthorizerFunction", "SupabaseAuthorizerFunction")
    for kind in ("token", "request", "http")
    for scenario, result in (
        ("valid", "allow"),
        ("expired", "unauthorized"),
        ("missing", "unauthorized"),
        ("wrong-scope", "deny"),
    )
}


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    saved = dict(os.environ)
    running = LocalStack(free_port()).start()
    yield running
    running.stop()
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="module")
def values(stack: LocalStack) -> dict[str, str]:
    return placeholders(stack)


def test_every_event_file_has_an_expected_outcome() -> None:
    assert {p.stem for p in FILES} == set(EXPECTED)


def test_every_function_in_the_template_has_events() -> None:
    functions = {p.stem.split("-", 1)[0] for p in FILES}
    assert functions == set(Template.load().functions())


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_event_runs_with_the_expected_outcome(
    stack: LocalStack, values: dict[str, str], path: Path
) -> None:
    function = path.stem.split("-", 1)[0]
    event = render(path.read_text(), values)
    assert "{{" not in json.dumps(event)
    assert outcome(invoke(stack, function, event), event) == EXPECTED[path.stem]


def test_sam_environment_file_names_only_known_variables() -> None:
    env = json.loads((EVENTS / "env.json").read_text())
    template = Template.load()
    known = set(template.document["Globals"]["Function"]["Environment"]["Variables"]) | {
        "API_JWKS_URL"
    }
    assert set(env["Parameters"]) <= known


def test_make_invoke_entry_point(capsys: pytest.CaptureFixture[str]) -> None:
    saved = dict(os.environ)
    try:
        assert main(["JwksFunction", str(EVENTS / "JwksFunction-jwks.json")]) == 0
    finally:
        os.environ.clear()
        os.environ.update(saved)
    printed = capsys.readouterr().out
    result = json.loads(printed[printed.index('{\n  "statusCode"') :])
    assert result["statusCode"] == 200
    assert json.loads(result["body"])["keys"]


ROOT = EVENTS.parent


@pytest.mark.parametrize(
    ("function", "event", "message"),
    [
        ("JwksFunction", "events/missing.json", "events/missing.json: no such event file"),
        ("JwksFunction", "Makefile", "Makefile is not JSON"),
        ("Nope", "events/JwksFunction-jwks.json", "no function 'Nope' in template.yaml"),
        ("JwksFunction", "events", "events: cannot be read"),
    ],
)
def test_make_invoke_explains_a_bad_function_or_event_in_one_line(
    function: str, event: str, message: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "devstack.invoke", function, event],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("make invoke: ") and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stdout == ""


def test_make_invoke_target_exits_2_on_a_missing_event() -> None:
    result = subprocess.run(
        ["make", "-s", "--no-print-directory", "invoke", "FN=JwksFunction", "EVENT=events/x.json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("make invoke: events/x.json: no such event file")


def test_an_unknown_placeholder_is_named(values: dict[str, str]) -> None:
    with pytest.raises(EventError, match=r"unknown placeholder \{\{api_tokn\}\}; known: "):
        render('{"authorizationToken": "Bearer {{api_tokn}}"}', values)
