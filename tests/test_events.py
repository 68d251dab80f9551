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
from devstack.sam_events import container_environment, render_events
from devstack.stack import LocalStack
from devstack.state import state_of
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
    assert set(env["Parameters"]) <= set(Template.load().global_variables())


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


# -- make events: the events rendered for sam local invoke, and the container's environment ------

CONTAINER = """
import json, sys
from pathlib import Path
from devstack.lambda_runtime import LambdaContext
from devstack.template import Template

template = Template.load()
results = {}
for path in sorted(Path(sys.argv[1]).glob("*.json")):
    if path.name == "env.json":
        continue
    function = path.stem.split("-", 1)[0]
    handler = template.load_handler(function)
    try:
        results[path.stem] = handler(json.loads(path.read_text()), LambdaContext(function))
    except Exception as exc:
        results[path.stem] = {"errorMessage": str(exc), "errorType": type(exc).__name__}
print(json.dumps(results))
"""


def test_make_events_renders_every_event_and_an_environment_a_container_can_run(
    stack: LocalStack, tmp_path: Path
) -> None:
    """Each handler loaded in a fresh process whose environment is env.json alone (plus
    credentials), as sam local invoke gives a container on the host's network, answers each
    rendered event as expected: the AWS endpoint, the secret, the keys and the URLs all resolve."""
    written = render_events(state_of(stack), tmp_path, "127.0.0.1")
    assert {p.stem for p in written} == {p.stem for p in FILES} | {"env"}
    for path in written:
        assert "{{" not in path.read_text(), path.name
    env = json.loads((tmp_path / "env.json").read_text())["Parameters"]
    template = Template.load()
    declared = set(template.global_variables())
    for props in template.functions().values():  # and each function's own variables
        declared |= set(props.get("Environment", {}).get("Variables", {}))
    assert set(env) <= declared  # sam sets only the variables the template declares
    assert stack.aws is not None
    assert env["AWS_ENDPOINT_URL"] == stack.aws.endpoint
    container = env | {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "PATH": os.environ["PATH"],
    }
    result = subprocess.run(
        [sys.executable, "-c", CONTAINER, str(tmp_path)],
        cwd=ROOT,
        env=container,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(result.stdout.splitlines()[-1])
    outcomes = {
        name: outcome(answer, json.loads((tmp_path / f"{name}.json").read_text()))
        for name, answer in results.items()
    }
    assert outcomes == EXPECTED


def test_events_for_docker_desktop_reach_this_machine_by_name(stack: LocalStack) -> None:
    env = container_environment(state_of(stack), "host.docker.internal")["Parameters"]
    assert stack.aws is not None
    port = stack.aws.endpoint.rsplit(":", 1)[1]
    assert env["AWS_ENDPOINT_URL"] == f"http://host.docker.internal:{port}"
    assert env["API_JWKS_URL"].startswith("http://host.docker.internal:")
    assert env["ISSUER"] == stack.base_url  # a name in the tokens, never fetched


def test_make_events_without_a_running_stack_says_so_in_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "devstack.sam_events", "--port", "9"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr == "make events: no local stack on port 9: start make run first\n"


def test_committed_events_are_api_gateway_shapes(stack: LocalStack) -> None:
    """The shapes sam local generate-event produces: REST proxy requests, REST TOKEN and
    REQUEST authorizer events, HTTP API 2.0 authorizer events."""
    for path in FILES:
        event = json.loads(path.read_text())
        if "type" not in event:
            assert {"resource", "path", "httpMethod", "headers", "requestContext", "body"} <= set(
                event
            ), path.name
            assert event["requestContext"]["stage"] and event["requestContext"]["requestId"]
        elif event.get("version") == "2.0":
            assert {"routeArn", "identitySource", "routeKey", "requestContext"} <= set(event)
        elif event["type"] == "TOKEN":
            assert set(event) == {"type", "authorizationToken", "methodArn"}
        else:
            assert {"methodArn", "headers", "requestContext", "httpMethod"} <= set(event)
