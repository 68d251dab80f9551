"""Both Lambda authorizers, every event format (docs/contract.md §6, §7; §12 A, F)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from hypothesis import given
from hypothesis import strategies as st

from devstack.events import authorizer_event
from devstack.gateway import LambdaContext, authorizer_outcome, policy_allows
from devstack.invoke import expired_api_token
from tests.conftest import ISSUER, InProcessApi
from tests.factories import USER_ID, hs_token, supabase_claims
from tests.jwks_server import JwksServer
from tokengate.authorizer import Unauthorized, bearer_token, parse_event
from tokengate.config import Settings
from tokengate.issuer import api_base_url, issuer_for
from tokengate.policies import RouteScopes

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
    kind: str,
    token: str | None,
    method: str = "GET",
    path: str = "/whoami",
    resource: str | None = None,
) -> dict[str, Any]:
    return authorizer_event(
        {"TOKEN": "token", "REQUEST": "request", "HTTP_API_V2": "http"}[kind],
        token,
        method,
        path,
        ARN,
        resource,
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
    """name → (authorizer, token, method, path or "path route" when they differ, outcome)"""
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
        "api scope for another route": (a, write_only, "POST", "/orders/42 /orders/{id}", "allow"),
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
    for name, (function, token, method, paths, expected) in scenarios(api).items():
        path, _, resource = paths.partition(" ")
        outcome = decide(api, function, event(kind, token, method, path, resource or None))
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
    statement, empty_segments = answer["policyDocument"]["Statement"]
    assert statement["Effect"] == "Allow"
    assert sorted(statement["Resource"]) == sorted(
        [f"{ARN}/GET/whoami", f"{ARN}/GET/supabase/whoami", f"{ARN}/POST/orders/*"]
    )
    # Paths with an empty, "." or ".." segment ("/whoami/", "//", "/a/../b"): refused
    # (docs/authorization.md).
    assert empty_segments == {
        "Action": "execute-api:Invoke",
        "Effect": "Deny",
        "Resource": sorted(
            f"{ARN}{p}" for p in ("/*//*", "/*/?*/", "/*/./*", "/*/.", "/*/../*", "/*/..")
        ),
    }


def test_http_api_simple_response(api: InProcessApi) -> None:
    answer = api.gateway.handlers["ApiTokenAuthorizerFunction"](
        event("HTTP_API_V2", api_token(api)), LambdaContext()
    )
    assert answer["isAuthorized"] is True
    assert answer["context"]["sub"] == USER_ID
    assert api.gateway.handlers["ApiTokenAuthorizerFunction"](
        event("HTTP_API_V2", None), LambdaContext()
    ) == {"isAuthorized": False}


# -- the attacks of a real route table: nested routes, greedy routes, ANY beside a method --------
ATTACK_ROUTES = {
    "GET /whoami": "read",
    "GET /supabase/whoami": "",
    "POST /orders/{id}": "write",
    "POST /orders/{id}/refund": "admin",
    "GET /{proxy+}": "read",
    "GET /admin": "admin",
    "ANY /items": "read",
    "DELETE /items": "admin",
}
# (method, path, the route API Gateway selects, allowed for a "read write" caller)
ATTACK_REQUESTS = [
    ("POST", "/orders/8", "/orders/{id}", True),
    ("POST", "/orders/8/refund", "/orders/{id}/refund", False),
    # API Gateway routes a trailing slash as none; the method ARN keeps it: always refused.
    ("POST", "/orders/8/refund/", "/orders/{id}/refund", False),
    ("GET", "/admin/", "/admin", False),
    ("GET", "/items/", "/items", False),
    ("GET", "/admin", "/admin", False),
    ("GET", "/reports/2026/q1", "/{proxy+}", True),
    ("GET", "/items", "/items", True),
    ("DELETE", "/items", "/items", False),
    ("POST", "/items", "/items", True),
]


@pytest.fixture
def attack_api(make_api: MakeApi, own_jwks: JwksServer) -> InProcessApi:
    built = make_api(
        {"RouteScopes": json.dumps(ATTACK_ROUTES), "ScopesSupported": "read write admin"},
        API_JWKS_URL=own_jwks.jwks_url,
        ISSUER=ISSUER,
    )
    own_jwks.document = built.call("GET", "/.well-known/jwks.json")[2]
    return built


def read_write_token(api: InProcessApi, function: str) -> str:
    if function == "ApiTokenAuthorizerFunction":
        return api_token(api, scope="read write")
    metadata = {"provider": "email", "api_scopes": ["read", "write"]}
    return hs_token(supabase_claims(app_metadata=metadata))


@pytest.mark.parametrize("kind", ["TOKEN", "REQUEST"])
@pytest.mark.parametrize("function", ["ApiTokenAuthorizerFunction", "SupabaseAuthorizerFunction"])
def test_a_cached_policy_replayed_on_any_route_decides_as_a_fresh_call(
    attack_api: InProcessApi, function: str, kind: str
) -> None:
    """API Gateway caches one policy per token and replays it on every route: ``.../orders/*``
    written for ``POST /orders/{id}`` must not let ``POST /orders/8/refund`` through, a greedy
    ``GET /{proxy+}`` must not lend its scope to ``GET /admin``, nor ``ANY /items`` to
    ``DELETE /items``."""
    token = read_write_token(attack_api, function)
    handler = attack_api.gateway.handlers[function]
    for first_method, first_path, first_route, first_allowed in ATTACK_REQUESTS:
        payload = event(kind, token, first_method, first_path, first_route)
        outcome = decide(attack_api, function, payload)
        assert outcome == ("allow" if first_allowed else "deny"), (first_method, first_path)
        policy = handler(payload, LambdaContext(function))
        for method, path, _, allowed in ATTACK_REQUESTS:
            assert policy_allows(policy, f"{ARN}/{method}{path}") is allowed, (
                f"policy of {first_method} {first_path} replayed on {method} {path}"
            )


def test_the_local_gateway_caches_and_selects_routes_as_api_gateway_does(
    make_api: MakeApi, own_jwks: JwksServer
) -> None:
    """The template's own routes and default RouteScopes, through the gateway and its cache."""
    api = make_api(API_JWKS_URL=own_jwks.jwks_url, ISSUER=ISSUER)
    own_jwks.document = api.call("GET", "/.well-known/jwks.json")[2]
    calls: list[str] = []
    for function in ("ApiTokenAuthorizerFunction", "SupabaseAuthorizerFunction"):
        inner = api.gateway.handlers[function]

        def counted(payload: dict[str, Any], context: Any, inner: Any = inner) -> Any:
            calls.append(payload.get("methodArn", ""))
            return inner(payload, context)

        api.gateway.handlers[function] = counted
    writer = f"Bearer {api_token(api, scope='read write')}"
    assert api.call("POST", "/orders/8", Authorization=writer)[0] == 200
    assert api.call("POST", "/orders/8/refund", Authorization=writer)[0] == 403
    assert api.call("GET", "/orders/8", Authorization=writer)[0] == 200
    assert api.call("PUT", "/files/a/b", Authorization=writer)[0] == 200
    assert len(calls) == 1  # one policy, replayed on every route above
    reader = f"bearer {api_token(api, scope='read')}"  # the scheme in lower case (RFC 6750)
    assert api.call("GET", "/files/a/b.txt", Authorization=reader)[0] == 200
    assert api.call("PUT", "/files/a/b.txt", Authorization=reader)[0] == 403
    assert api.call("POST", "/orders/8", Authorization=reader)[0] == 403
    supabase = f"Bearer {hs_token(supabase_claims())}"  # default scopes: read
    assert api.call("GET", "/supabase/orders/8", Authorization=supabase)[0] == 200
    assert api.call("POST", "/supabase/orders/8/refund", Authorization=supabase)[0] == 403
    assert api.call("GET", "/supabase/orders/9", Authorization=supabase)[0] == 200


def test_route_tables_are_validated_at_start() -> None:
    from tokengate.errors import ConfigurationError

    for table in [
        {"/whoami": "read"},
        {"GET whoami": "read"},
        {"FETCH /a": "read"},
        {"get /a": "read"},
        {"GET /a/{rest+}/b": "read"},
        {"GET /a//b": "read"},
        {"GET /a/": "read"},
        {"GET /a/*": "read"},
        {"GET /a?b": "read"},
        {"GET /{id}/{id}": "read"},
        {"GET /a/{x}": "read", "GET /a/{y}": "write"},
        {"GET /a b": "read"},
    ]:
        with pytest.raises(ConfigurationError):
            RouteScopes(table)
    RouteScopes({"GET /": "", "ANY /{proxy+}": "read", "GET /a/{x}/b/{rest+}": "write"})


@pytest.mark.parametrize(
    "value",
    [
        "Bearer",
        "Bearer ",
        "Basic abc",
        "Bearer a b",
        "Bearer  abc",
        "bearer",
        "Bearerabc",
        "Bearer abc\n",
        "abc",
    ],
)
def test_malformed_authorization_values_are_unauthorized(value: str) -> None:
    request = parse_event(
        {"type": "TOKEN", "authorizationToken": value, "methodArn": f"{ARN}/GET/whoami"}
    )
    assert request.token is None


@given(
    st.text(st.sampled_from("BbEeAaRr x\t\n\u0130\u212a"), max_size=10)
    | st.from_regex(r"[Bb][Ee][Aa][Rr][Ee][Rr] [ -~\t\n]{0,4}", fullmatch=True)
)
def test_the_bearer_token_is_rfc_6750s(value: str) -> None:
    """The token after a case-insensitive "Bearer" and one space, written out from RFC 6750
    §2.1: at least one character, no space, no whitespace at either end."""
    token = value[7:]
    wellformed = (
        value[:7].lower() == "bearer " and token and " " not in token and token.strip() == token
    )
    assert bearer_token(value) == (token if wellformed else None)


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_the_bearer_scheme_is_case_insensitive(api: InProcessApi, scheme: str) -> None:
    """RFC 6750 §2.1 with RFC 9110 §11.1: the parser, the template's validation expression (as
    the local gateway applies it) and both authorizers accept any casing."""
    assert (
        parse_event(
            {"type": "TOKEN", "authorizationToken": f"{scheme} abc", "methodArn": f"{ARN}/GET/a"}
        ).token
        == "abc"
    )
    assert api.call("GET", "/whoami", Authorization=f"{scheme} {api_token(api)}")[0] == 200
    supabase = hs_token(supabase_claims())
    assert api.call("GET", "/supabase/whoami", Authorization=f"{scheme} {supabase}")[0] == 200


def test_warm_api_token_decisions_make_no_network_call(
    api: InProcessApi, own_jwks: JwksServer
) -> None:
    token = api_token(api)
    assert decide(api, "ApiTokenAuthorizerFunction", event("TOKEN", token)) == "allow"
    api.aws_calls.clear()
    fetched = own_jwks.requests
    for _ in range(20):
        assert decide(api, "ApiTokenAuthorizerFunction", event("TOKEN", token)) == "allow"
    assert own_jwks.requests == fetched
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
