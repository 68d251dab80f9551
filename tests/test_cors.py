"""CORS: a browser app at an allowed origin may call POST /token (preflight, then every answer
readable), any other origin gets nothing it could use, and the local gateway serves what the
template configures, as API Gateway would."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devstack.client import http
from devstack.events import proxy_event
from devstack.gateway import Gateway, gateway_response, sam_cors_preflight, serve
from devstack.moto_aws import free_port
from devstack.template import Template
from tests.conftest import InProcessApi
from tests.factories import hs_token, supabase_claims
from tokengate.cors import ALLOW_HEADERS, CorsPolicy
from tokengate.errors import ConfigurationError

MakeApi = Callable[..., InProcessApi]
APP = "https://app.example.com"
OTHER = "https://evil.example.net"

hosts = st.from_regex(r"[a-z][a-z0-9-]{0,12}(\.[a-z]{2,6}){1,2}(:[1-9][0-9]{1,4})?", fullmatch=True)
origins = st.builds(
    lambda scheme, host: f"{scheme}://{host}", st.sampled_from(["https", "http"]), hosts
)


@settings(max_examples=200, deadline=None)
@given(allowed=st.lists(origins, max_size=4), origin=st.one_of(st.none(), origins))
def test_only_an_allowed_origin_is_ever_named(allowed: list[str], origin: str | None) -> None:
    """Oracle: set membership of the exact origin string (browsers send the serialized origin)."""
    policy = CorsPolicy.from_env({"CORS_ALLOW_ORIGINS": ",".join(allowed)})
    event = proxy_event("POST", "/token", headers={"Origin": origin} if origin else {})
    headers = policy.headers(event)
    preflight = policy.preflight(proxy_event("OPTIONS", "/token", headers=event["headers"]))
    is_allowed = origin is not None and origin in set(allowed)
    assert headers.get("Access-Control-Allow-Origin") == (origin if is_allowed else None)
    assert preflight["headers"].get("Access-Control-Allow-Origin") == (
        origin if is_allowed else None
    )
    assert ("Access-Control-Allow-Methods" in preflight["headers"]) == is_allowed
    # Answers differ by origin whenever CORS is on: shared caches must key on it.
    assert (headers.get("Vary") == "Origin") == bool(allowed)
    assert preflight["statusCode"] == (204 if allowed else 404)


@pytest.mark.parametrize(
    "value",
    [
        "app.example.com",
        "https://app.example.com/",
        "https://app.example.com/path",
        "ftp://x.y",
        "https://",
        "https://user@a.example",
    ],
)
def test_a_value_that_is_not_an_origin_is_refused(value: str) -> None:
    with pytest.raises(ConfigurationError, match="CORS_ALLOW_ORIGINS"):
        CorsPolicy.from_env({"CORS_ALLOW_ORIGINS": f"{APP},{value}"})


def test_star_allows_any_origin_and_empty_none() -> None:
    event = proxy_event("POST", "/token", headers={"origin": OTHER})
    assert (
        CorsPolicy.from_env({"CORS_ALLOW_ORIGINS": "*"}).headers(event)[
            "Access-Control-Allow-Origin"
        ]
        == "*"
    )
    assert CorsPolicy.from_env({}).headers(event) == {}
    assert CorsPolicy.from_env({"CORS_ALLOW_ORIGINS": " , "}).headers(event) == {}


# -- the exchange function, behind the template's routes ------------------------------------


def test_the_exchange_answers_preflight_and_every_answer_names_the_origin(
    make_api: MakeApi,
) -> None:
    api = make_api({"CorsAllowOrigins": f"{APP},http://localhost:5173"})
    status, headers, _ = api.call(
        "OPTIONS", "/token", Origin=APP, Access_Control_Request_Method="POST"
    )
    assert status == 204
    assert headers["Access-Control-Allow-Origin"] == APP
    assert headers["Access-Control-Allow-Methods"] == "POST, OPTIONS"
    assert headers["Access-Control-Allow-Headers"] == ALLOW_HEADERS
    assert int(headers["Access-Control-Max-Age"]) > 0
    assert headers["Vary"] == "Origin"
    ok = api.call(
        "POST",
        "/token",
        f"grant_type=urn:ietf:params:oauth:grant-type:token-exchange&subject_token="
        f"{hs_token(supabase_claims())}&subject_token_type="
        "urn:ietf:params:oauth:token-type:access_token".encode(),
        Content_Type="application/x-www-form-urlencoded",
        Origin="http://localhost:5173",
    )
    assert ok[0] == 200
    assert ok[1]["Access-Control-Allow-Origin"] == "http://localhost:5173"
    assert ok[1]["Cache-Control"] == "no-store"  # the exchange's own headers are kept
    refused = api.call("POST", "/token", b"grant_type=password", Origin=APP)
    assert refused[0] == 400
    assert refused[1]["Access-Control-Allow-Origin"] == APP
    assert "Retry-After" in refused[1]["Access-Control-Expose-Headers"]
    stranger = api.call("POST", "/token", b"grant_type=password", Origin=OTHER)
    assert "Access-Control-Allow-Origin" not in stranger[1]
    assert stranger[1]["Vary"] == "Origin"
    preflight = api.call("OPTIONS", "/token", Origin=OTHER, Access_Control_Request_Method="POST")
    assert preflight[0] == 204 and "Access-Control-Allow-Origin" not in preflight[1]


def test_without_origins_there_is_no_cors_at_all(make_api: MakeApi) -> None:
    api = make_api()
    status, headers, body = api.call("OPTIONS", "/token", Origin=APP)
    assert status == 404 and body["error"] == "not_found"
    assert not any(name.startswith("Access-Control-") for name in headers)
    refused = api.call("POST", "/token", b"grant_type=password", Origin=APP)
    assert refused[0] == 400
    assert not any(name.startswith("Access-Control-") or name == "Vary" for name in refused[1])


# -- the local gateway: API Gateway's own CORS, as the template configures it ---------------


def test_gateway_responses_map_a_request_header_as_api_gateway_does() -> None:
    responses = {
        "UNAUTHORIZED": {
            "StatusCode": "401",
            "ResponseParameters": {
                "Headers": {
                    "Access-Control-Allow-Origin": "method.request.header.Origin",
                    "Vary": "'Origin'",
                    "X-Off": None,  # AWS::NoValue
                }
            },
        }
    }
    answer = gateway_response(responses, "UNAUTHORIZED", "Unauthorized", {}, {"origin": APP})
    assert answer.headers["Access-Control-Allow-Origin"] == APP
    assert answer.headers["Vary"] == "Origin"
    assert "X-Off" not in answer.headers
    bare = gateway_response(responses, "UNAUTHORIZED", "Unauthorized", {}, {})
    assert "Access-Control-Allow-Origin" not in bare.headers  # no Origin, no header
    with pytest.raises(ValueError, match="static values and request headers"):
        gateway_response(
            {"UNAUTHORIZED": {"ResponseParameters": {"Headers": {"X": "context.path"}}}},
            "UNAUTHORIZED",
            "Unauthorized",
            {},
        )


def test_sams_cors_property_is_a_mock_options_method() -> None:
    answer = sam_cors_preflight(
        {"AllowOrigin": f"'{APP}'", "AllowHeaders": "'Content-Type'", "MaxAge": "'600'"}, ["GET"]
    )
    assert answer is not None and answer.status == 200
    assert answer.headers["Access-Control-Allow-Origin"] == APP
    assert answer.headers["Access-Control-Allow-Methods"] == "GET,OPTIONS"
    assert answer.headers["Access-Control-Max-Age"] == "600"
    assert sam_cors_preflight(None, ["GET"]) is None
    assert sam_cors_preflight("'*'", ["POST"]).headers["Access-Control-Allow-Origin"] == "*"  # type: ignore[union-attr]


@pytest.fixture
def cors_gateway() -> Iterator[str]:
    """The template's API with CORS wired at API Gateway (the ``Cors`` property and CORS headers
    on its own error answers), served over loopback HTTP. No function is invoked: every answer
    checked here is API Gateway's own."""
    template = Template.load({"CorsAllowOrigins": APP})
    api: dict[str, Any] = template.document["Resources"]["Api"]["Properties"]
    api["Cors"] = {"AllowOrigin": f"'{APP}'", "AllowHeaders": "'Content-Type,Authorization'"}
    for entry in api["GatewayResponses"].values():
        entry.setdefault("ResponseParameters", {}).setdefault("Headers", {}).update(
            {"Access-Control-Allow-Origin": f"'{APP}'", "Vary": "'Origin'"}
        )
    server = serve(Gateway(template, {}), free_port())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_local_gateway_serves_the_templates_cors_over_http(cors_gateway: str) -> None:
    status, headers, _ = http("OPTIONS", f"{cors_gateway}/whoami", headers={"Origin": APP})
    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == APP
    assert headers["Access-Control-Allow-Methods"] == "GET,OPTIONS"
    status, headers, body = http("GET", f"{cors_gateway}/whoami", headers={"Origin": APP})
    assert status == 401 and body["error"] == "invalid_token"
    assert headers["Access-Control-Allow-Origin"] == APP
    status, headers, _ = http("GET", f"{cors_gateway}/nowhere", headers={"Origin": APP})
    assert status == 404 and headers["Access-Control-Allow-Origin"] == APP


@pytest.mark.parametrize(
    ("allowed", "origin", "expected"),
    [
        (APP, APP, APP),  # one origin: named as configured
        (APP, "https://other.example", APP),  # ... whoever asks (the browser then refuses)
        (f"{APP},http://localhost:5173", "http://localhost:5173", "http://localhost:5173"),
        ("", APP, None),  # no CORS: no header at all
    ],
)
def test_the_templates_own_gateway_answers_carry_cors_headers(
    allowed: str, origin: str, expected: str | None
) -> None:
    """The template as it is (nothing patched): API Gateway's 401 and 404 name the origin when
    CorsAllowOrigins is set, over loopback HTTP through the local gateway, which reads the same
    GatewayResponses."""
    template = Template.load({"CorsAllowOrigins": allowed} if allowed else {})
    server = serve(Gateway(template, {}), free_port())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        for path, status in (("/whoami", 401), ("/nowhere", 404)):
            got, headers, _ = http("GET", f"{base}{path}", headers={"Origin": origin})
            assert got == status
            assert headers.get("Access-Control-Allow-Origin") == expected, path
            assert ("Vary" in headers) == (expected is not None)
    finally:
        server.shutdown()
        server.server_close()


def test_revoke_has_a_preflight_route_like_token() -> None:
    events = Template.load().document["Resources"]["TokenExchangeFunction"]["Properties"]["Events"]
    routes = {
        (e["Properties"]["Path"], e["Properties"]["Method"])
        for e in events.values()
        if e["Type"] == "Api"
    }
    assert {("/token", "options"), ("/revoke", "options")} <= routes
