"""API Gateway's own answers (GatewayResponses in template.yaml), as the local gateway serves them:
RFC 6750-style 401 and 403, a 404 that says a route does not exist, JSON everywhere."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devstack.gateway import Gateway, gateway_response
from devstack.template import TEMPLATE, Template
from tests.conftest import InProcessApi
from tests.factories import hs_token, supabase_claims
from tests.jwks_server import JwksServer
from tokengate.authorizer import insufficient_scope
from tokengate.policies import RouteScopes

MakeApi = Callable[..., InProcessApi]


@pytest.fixture
def own_jwks() -> Iterator[JwksServer]:
    """This service's JWKS on loopback, as the API-token authorizer fetches it in AWS."""
    with JwksServer({"keys": []}) as server:
        yield server


def write_only_token(api: InProcessApi) -> str:
    metadata = {"provider": "email", "api_scopes": ["write"]}
    status, _, body = api.exchange(hs_token(supabase_claims(app_metadata=metadata)), scope="write")
    assert status == 200
    return str(body["access_token"])


def test_a_route_that_does_not_exist_says_so(make_api: MakeApi) -> None:
    api = make_api()
    for method, path in [("GET", "/nowhere"), ("GET", "/token"), ("DELETE", "/whoami")]:
        status, headers, body = api.call(method, path)
        assert status == 404, (method, path)
        assert headers["Content-Type"] == "application/json"
        assert body["error"] == "not_found"
        assert f"no {method} route" in body["error_description"]


def test_no_token_and_a_bad_token_are_one_401_with_a_bearer_challenge(make_api: MakeApi) -> None:
    api = make_api()
    answers = [
        api.call("GET", "/whoami"),  # no Authorization header: the authorizer is not called
        api.call("GET", "/whoami", Authorization="Basic dXNlcjpwYXNz"),  # fails the validation
        api.call("GET", "/whoami", Authorization="Bearer abc.def.ghi"),  # the authorizer refuses
        api.call("GET", "/supabase/whoami"),
    ]
    for status, headers, body in answers:
        assert status == 401
        assert headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
        assert headers["Cache-Control"] == "no-store"
        assert body == {
            "error": "invalid_token",
            "error_description": "A valid bearer token is required.",
        }


def test_a_token_without_the_routes_scope_is_insufficient_scope(
    make_api: MakeApi, own_jwks: JwksServer
) -> None:
    api = make_api(API_JWKS_URL=own_jwks.jwks_url)
    own_jwks.document = api.call("GET", "/.well-known/jwks.json")[2]
    token = write_only_token(api)
    status, headers, body = api.call("GET", "/whoami", Authorization=f"Bearer {token}")
    assert status == 403
    assert headers["WWW-Authenticate"].startswith('Bearer error="insufficient_scope"')
    assert body["error"] == "insufficient_scope"
    # Every scope the route table requires that the token lacks (GET /whoami needs read; the
    # demo table's refund route needs admin): a function of the token alone, so the answer the
    # authorizer cache replays on another route stays true.
    assert body["scope"] == "admin read"
    # A second call is served from the authorizer cache and says the same.
    assert api.call("GET", "/whoami", Authorization=f"Bearer {token}")[2] == body


def test_the_local_answers_are_read_from_the_template(tmp_path: Path) -> None:
    changed = tmp_path / "template.yaml"
    changed.write_text(
        TEMPLATE.read_text().replace('"error":"not_found"', '"error":"no_such_route"')
    )
    gateway = Gateway(Template.load({"SupabaseUrl": "https://x.supabase.co"}, changed), {})
    answer = gateway.handle("GET", "/nowhere", {}, b"", "127.0.0.1")
    assert json.loads(answer.body)["error"] == "no_such_route"


def test_types_without_an_entry_fall_back_as_api_gateway_does() -> None:
    responses = {
        "DEFAULT_4XX": {"ResponseTemplates": {"application/json": '{"e":"4xx"}'}},
        "UNAUTHORIZED": {
            "StatusCode": 401,
            "ResponseParameters": {"Headers": {"X-Own": "'yes'"}},
        },
    }
    # An entry with headers only keeps the class default's body.
    own = gateway_response(responses, "UNAUTHORIZED", "Unauthorized", {})
    assert (own.status, own.headers["X-Own"], json.loads(own.body)) == (401, "yes", {"e": "4xx"})
    # No entry: DEFAULT_4XX.
    denied = gateway_response(responses, "ACCESS_DENIED", "denied", {})
    assert (denied.status, json.loads(denied.body)) == (403, {"e": "4xx"})
    # No entry and no class default: API Gateway's built-in {"message": ...}.
    failed = gateway_response(responses, "AUTHORIZER_CONFIGURATION_ERROR", "Internal", {})
    assert (failed.status, json.loads(failed.body)) == (500, {"message": "Internal"})


def gateway_responses(**parameters: str) -> dict[str, Any]:
    """The template's GatewayResponses as CloudFormation resolves them for these parameters."""
    template = Template.load({"SupabaseUrl": "https://x.supabase.co", **parameters})
    responses: dict[str, Any] = template.evaluate(template.api()["GatewayResponses"])
    return responses


@pytest.mark.parametrize(
    "parameters",
    [{}, {"CorsAllowOrigins": "https://app.example.com"}, {"CorsAllowOrigins": "*"}],
)
def test_every_answer_the_template_defines_is_json_with_static_headers(
    parameters: dict[str, str],
) -> None:
    responses = gateway_responses(**parameters)
    assert {"UNAUTHORIZED", "ACCESS_DENIED", "MISSING_AUTHENTICATION_TOKEN"} <= responses.keys()
    assert {"DEFAULT_4XX", "DEFAULT_5XX"} <= responses.keys()
    for name, spec in responses.items():
        body = spec["ResponseTemplates"]["application/json"]
        filled = body.replace("$context.error.messageString", '"m"').replace("$context.", "")
        assert "error" in json.loads(filled), name
        for value in (spec.get("ResponseParameters") or {}).get("Headers", {}).values():
            if value is None:  # AWS::NoValue: not declared (CORS off)
                continue
            assert value.startswith("'") and value.endswith("'"), name


def test_with_several_origins_gateway_answers_echo_the_request_origin_only() -> None:
    """API Gateway cannot pick one of several allowed origins: the one mapped value is the
    request's Origin header; no other header is taken from the request."""
    responses = gateway_responses(CorsAllowOrigins="https://a.example,https://b.example")
    for name, spec in responses.items():
        headers = (spec.get("ResponseParameters") or {}).get("Headers", {})
        assert headers["Access-Control-Allow-Origin"] == "method.request.header.Origin", name
        others = {k: v for k, v in headers.items() if k != "Access-Control-Allow-Origin"}
        assert all(v.startswith("'") for v in others.values()), name


SCOPES = st.frozensets(st.sampled_from(["read", "write", "admin", "audit"]))


@given(
    table=st.dictionaries(
        st.sampled_from(["GET /a", "GET /b", "POST /a", "GET /c/{id}"]),
        st.sampled_from(["", "read", "write", "admin"]),
    ),
    scopes=SCOPES,
)
def test_the_scope_a_denied_caller_lacks_depends_on_the_token_alone(
    table: dict[str, str], scopes: frozenset[str]
) -> None:
    """API Gateway replays one answer per token for every route, so what the 403 names must be
    the same whichever route was asked first: every scope the routes use that the token lacks."""
    missing = insufficient_scope(RouteScopes(table).names(), scopes)
    expected = sorted({scope for scope in table.values() if scope} - scopes)  # the oracle
    assert missing.split() == expected


def test_a_throttled_request_answers_429_with_retry_after() -> None:
    responses = gateway_responses()
    answer = gateway_response(responses, "THROTTLED", "Too Many Requests", {})
    assert (answer.status, answer.headers["Retry-After"]) == (429, "1")
    assert json.loads(answer.body)["error"] == "temporarily_unavailable"
    too_large = gateway_response(responses, "REQUEST_TOO_LARGE", "Request Too Long", {})
    assert too_large.status == 413
    assert json.loads(too_large.body) == {
        "error": "invalid_request",
        "error_description": "Request Too Long",
    }


def test_a_403_served_from_a_cached_allow_names_the_lacking_scope(
    make_api: MakeApi, own_jwks: JwksServer
) -> None:
    """API Gateway replays the first answer for a token on its other routes: the Allow of
    POST /orders/{id} also answers POST /orders/{id}/refund, whose Deny it carries. The 403 it
    then gives must still say what the token lacks."""
    api = make_api(API_JWKS_URL=own_jwks.jwks_url)
    own_jwks.document = api.call("GET", "/.well-known/jwks.json")[2]
    token = write_only_token(api)
    assert api.call("POST", "/orders/8", Authorization=f"Bearer {token}")[0] == 200
    status, _, body = api.call("POST", "/orders/8/refund", Authorization=f"Bearer {token}")
    assert status == 403
    assert body["error"] == "insufficient_scope"
    assert body["scope"] == "admin read"
