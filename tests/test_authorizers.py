"""Both Lambda authorizers, every event format (docs/contract.md §6, §7; §12 A, F)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest

from devstack.events import authorizer_event
from devstack.gateway import LambdaContext, authorizer_outcome, policy_allows
from devstack.invoke import expired_api_token
from tests.conftest import ISSUER, InProcessApi
from tests.factories import USER_ID, hs_token, supabase_claims
from tests.jwks_server import JwksServer
from tokengate.authorizer import RouteScopes, Unauthorized, parse_event
from tokengate.config import Settings
from tokengate.issuer import api_base_url, issuer_for

ROUTES = '{"GET /whoami": "read", "GET /supabase/whoami": "", "POST /orders/{id}": "write", "GET /admin": "admin"}'
ARN = "arn:aws:execute-api:eu-west-1:123456789012:abc123/v1"
MakeApi = Callable[..., InProcessApi]


@pytest.fixture
def own_jwks() -> Iterator[JwksServer]:
    """This service's JWKS on loopback, as the API-token authorizer fetches it in AWS."""
    with JwksServer({"keys": []}) as server:
        yield server


@pytest.fixture
def api(make_api: MakeApi, own_jwks: JwksServer) -> InProcessApi:
    built = make_api(
        {"RouteScopes": ROUTES, "ScopesSupported": "read write admin"},
        API_JWKS_URL=own_jwks.jwks_url,
        ISSUER=ISSUER,
    )
    own_jwks.document = built.call("GET", "/.well-known/jwks.json")[2]
    return built


def api_token(api: InProcessApi, scope: str = "read", **claims: Any) -> str:
    subject = supabase_claims(app_metadata={"api_scopes": ["read", "write", "admin"]}, **claims)
    status, _, body = api.exchange(hs_token(subject), scope=scope)
    assert status == 200, body
    return str(body["access_token"])


def expired(api: InProcessApi) -> str:
    kms = boto3.client("kms", region_name="us-east-1")
    return expired_api_token(kms, api.provisioned.signing_key_arn, ISSUER, USER_ID)


def event(
    kind: str, token: str | None, method: str = "GET", path: str = "/whoami"
) -> dict[str, Any]:
    return authorizer_event(
        {"TOKEN": "token", "REQUEST": "request", "HTTP_API_V2": "http"}[kind],
        token,
        method,
        path,
        ARN,
    )


def decide(api: InProcessApi, function: str, payload: dict[str, Any]) -> str:
    """The outcome as API Gateway would turn it into HTTP: allow, deny (403) or unauthorized (401)."""
    try:
        answer = api.gateway.handlers[function](payload, LambdaContext(function))
    except Unauthorized:
        return "unauthorized"
    except Exception as exc:
        return "unauthorized" if str(exc) == "Unauthorized" else f"error {exc!r}"
    return authorizer_outcome(answer, payload)


FORMATS = ["TOKEN", "REQUEST", "HTTP_API_V2"]


def scenarios(api: InProcessApi) -> dict[str, tuple[str, str | None, str, str, str]]:
    api_tok = api_token(api)
    write_only = api_token(api, scope="write")
    supa = hs_token(supabase_claims())
    expired_supa = hs_token(
        supabase_claims(iat=int(time.time()) - 7200, exp=int(time.time()) - 3600)
    )
    tampered = api_tok[:-4] + ("AAAA" if not api_tok.endswith("AAAA") else "BBBB")
    a, s = "ApiTokenAuthorizerFunction", "SupabaseAuthorizerFunction"
    return {
        "api valid": (a, api_tok, "GET", "/whoami", "allow"),
        "api missing": (a, None, "GET", "/whoami", "unauthorized"),
        "api expired": (a, expired(api), "GET", "/whoami", "unauthorized"),
        "api tampered": (a, tampered, "GET", "/whoami", "unauthorized"),
        "api wrong scope": (a, write_only, "GET", "/whoami", "deny"),
        "api scope for another route": (a, write_only, "POST", "/orders/42", "allow"),
        "api unlisted route": (a, api_tok, "DELETE", "/whoami", "deny"),
        "api given a supabase token": (a, supa, "GET", "/whoami", "unauthorized"),
        "api garbage": (a, "abc.def.ghi", "GET", "/whoami", "unauthorized"),
        "supabase valid": (s, supa, "GET", "/supabase/whoami", "allow"),
        "supabase missing": (s, None, "GET", "/supabase/whoami", "unauthorized"),
        "supabase expired": (s, expired_supa, "GET", "/supabase/whoami", "unauthorized"),
        "supabase given an api token": (s, api_tok, "GET", "/supabase/whoami", "unauthorized"),
        "supabase wrong scope": (s, supa, "GET", "/admin", "deny"),
    }


@pytest.mark.parametrize("kind", FORMATS)
def test_every_scenario_in_every_event_format(api: InProcessApi, kind: str) -> None:
    for name, (function, token, method, path, expected) in scenarios(api).items():
        outcome = decide(api, function, event(kind, token, method, path))
        assert outcome == expected, f"{kind} {name}: {outcome}"


def test_allow_policy_and_context(api: InProcessApi) -> None:
    token = api_token(api, scope="read write")
    answer = api.gateway.handlers["ApiTokenAuthorizerFunction"](
        event("TOKEN", token), LambdaContext()
    )
    assert answer["principalId"] == USER_ID
    context = answer["context"]
    assert context["sub"] == USER_ID
    assert context["scope"] == "read write"
    assert context["client_id"] == "cli"
    assert context["jti"] and context["sid"]
    assert all(isinstance(v, (str, int, float, bool)) for v in context.values())
    (statement,) = answer["policyDocument"]["Statement"]
    assert statement["Effect"] == "Allow"
    assert sorted(statement["Resource"]) == sorted(
        [f"{ARN}/GET/whoami", f"{ARN}/GET/supabase/whoami", f"{ARN}/POST/orders/*"]
    )


def test_http_api_simple_response(api: InProcessApi) -> None:
    answer = api.gateway.handlers["ApiTokenAuthorizerFunction"](
        event("HTTP_API_V2", api_token(api)), LambdaContext()
    )
    assert answer["isAuthorized"] is True
    assert answer["context"]["sub"] == USER_ID
    assert api.gateway.handlers["ApiTokenAuthorizerFunction"](
        event("HTTP_API_V2", None), LambdaContext()
    ) == {"isAuthorized": False}


@pytest.mark.parametrize("scope", ["read", "write", "read write", "admin", "read write admin"])
@pytest.mark.parametrize("function", ["ApiTokenAuthorizerFunction", "SupabaseAuthorizerFunction"])
def test_cached_policy_replayed_on_every_route_allows_exactly_the_scoped_routes(
    api: InProcessApi, scope: str, function: str
) -> None:
    """API Gateway caches one policy per token and replays it for every route (300 s by default)."""
    table = RouteScopes(
        {
            "GET /whoami": "read",
            "GET /supabase/whoami": "",
            "POST /orders/{id}": "write",
            "GET /admin": "admin",
        }
    )
    if function == "ApiTokenAuthorizerFunction":
        token, scopes = api_token(api, scope=scope), frozenset(scope.split())
    else:
        metadata = {"provider": "email", "api_scopes": scope.split()}
        token, scopes = (
            hs_token(supabase_claims(app_metadata=metadata)),
            frozenset({"read", *scope.split()}),
        )
    routes = [
        ("GET", "/whoami"),
        ("GET", "/supabase/whoami"),
        ("POST", "/orders/7"),
        ("GET", "/admin"),
        ("DELETE", "/orders/7"),
        ("GET", "/unlisted"),
    ]
    for first_method, first_path in routes:
        policy = api.gateway.handlers[function](
            event("TOKEN", token, first_method, first_path), LambdaContext()
        )
        for method, path in routes:
            expected = table.permits(f"{method} {path}", scopes)
            assert policy_allows(policy, f"{ARN}/{method}{path}") is expected, (
                first_path,
                method,
                path,
            )


def test_route_scope_table_rejects_bad_keys() -> None:
    from tokengate.errors import ConfigurationError

    with pytest.raises(ConfigurationError):
        RouteScopes({"/whoami": "read"})


@pytest.mark.parametrize(
    "value",
    [
        "Bearer",
        "Bearer ",
        "Basic abc",
        "Bearer a b",
        "Bearer  abc",
        "bearer",
        "Bearer abc\n",
        "abc",
    ],
)
def test_malformed_authorization_values_are_unauthorized(value: str) -> None:
    request = parse_event(
        {"type": "TOKEN", "authorizationToken": value, "methodArn": f"{ARN}/GET/whoami"}
    )
    assert request.token is None


def test_warm_api_token_decisions_make_no_network_call(
    api: InProcessApi, own_jwks: JwksServer
) -> None:
    token = api_token(api)
    api.aws_calls.clear()
    for _ in range(20):
        assert decide(api, "ApiTokenAuthorizerFunction", event("TOKEN", token)) == "allow"
    assert own_jwks.requests == 1
    assert api.aws_calls == []


def test_jwks_outage_never_allows(make_api: MakeApi) -> None:
    api = make_api(
        {"RouteScopes": ROUTES}, API_JWKS_URL="http://127.0.0.1:1/jwks.json", ISSUER=ISSUER
    )
    token = api_token(api)
    for kind in FORMATS:
        assert decide(api, "ApiTokenAuthorizerFunction", event(kind, token)) == "unauthorized"


@pytest.mark.parametrize("region", ["eu-west-1", "cn-north-1"])
def test_without_issuer_the_exchange_and_the_authorizer_derive_the_same_one(region: str) -> None:
    """A deployment without ISSUER: the exchange names the API's default URL from its event, the
    API-token authorizer from its method ARN; they must agree or no token would ever verify."""
    settings = Settings.from_env({"SUPABASE_URL": "https://x.supabase.co", "AWS_REGION": region})
    exchange_event = {"requestContext": {"apiId": "abc123", "stage": "v1"}}
    partition = "aws-cn" if region.startswith("cn-") else "aws"
    arn_base = f"arn:{partition}:execute-api:{region}:123456789012:abc123/v1"
    assert issuer_for(settings.issuer, settings.region, exchange_event) == api_base_url(arn_base)
    assert issuer_for(settings.issuer, settings.region, exchange_event).startswith(
        f"https://abc123.execute-api.{region}."
    )
    configured = Settings.from_env({"SUPABASE_URL": "https://x.supabase.co", "ISSUER": ISSUER})
    assert issuer_for(configured.issuer, configured.region, exchange_event) == ISSUER
