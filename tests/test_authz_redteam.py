"""Attacks on the authorizers by a caller with a valid low-scope token and control of the path,
each a regression test.

The IAM evaluator is the hand-written glob of ``tests/test_route_policies.py`` (no product code);
API Gateway's authorizer cache is emulated as it behaves: a ``TOKEN`` authorizer's policy is
replayed, for the same token, on every later request to any route.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import given

from tests.factories import HS_SECRET, SUPABASE_ISSUER, hs_token, supabase_claims
from tests.test_route_policies import EXAMPLES, iam_allows, route_tables
from tokengate.authorizer import Authorizer
from tokengate.config import Settings
from tokengate.errors import ConfigurationError
from tokengate.keys import HmacKey
from tokengate.policies import PolicyPlanner, RouteScopes
from tokengate.principals import SupabasePrincipals
from tokengate.scopes import ScopePolicy
from tokengate.supabase import SupabasePolicy, SupabaseTokenVerifier

ARN = "arn:aws:execute-api:eu-west-1:123456789012:abc123/v1"
SCOPES = ("read", "write", "admin")


def authorizer(table: dict[str, str]) -> Authorizer:
    verifier = SupabaseTokenVerifier(
        SupabasePolicy(issuer=SUPABASE_ISSUER), hmac_key=lambda: HmacKey(HS_SECRET.encode())
    )
    return Authorizer(SupabasePrincipals(verifier, ScopePolicy(SCOPES, ()), ()), RouteScopes(table))


def token(*scopes: str) -> str:
    return hs_token(supabase_claims(app_metadata={"provider": "email", "api_scopes": scopes}))


def token_event(bearer: str, method: str, path: str) -> dict[str, Any]:
    return {
        "type": "TOKEN",
        "authorizationToken": f"Bearer {bearer}",
        "methodArn": f"{ARN}/{method}{path}",
    }


# -- an empty path segment: API Gateway routes "/a/b/" as "/a/b", the method ARN keeps the "/" --
@pytest.mark.parametrize(
    ("table", "scopes", "first", "attack"),
    [
        # The issue's own nested table: a write token, then the refund route with a final "/".
        (
            {"POST /orders/{id}": "write", "POST /orders/{id}/refund": "admin"},
            ("write",),
            ("POST", "/orders/8"),
            ("POST", "/orders/8/refund/"),
        ),
        # A collection route needing more than its items: "Allow .../orders/*" matches "/orders/".
        (
            {"GET /orders": "admin", "GET /orders/{id}": "read"},
            ("read",),
            ("GET", "/orders/1"),
            ("GET", "/orders/"),
        ),
        # "//" (should API Gateway collapse it): "Deny .../a/b" does not match "/a//b".
        ({"GET /a/b": "admin", "GET /a/{x}": ""}, (), ("GET", "/a/1"), ("GET", "/a//b")),
    ],
)
def test_a_cached_policy_never_allows_a_denied_route_through_an_empty_segment(
    table: dict[str, str],
    scopes: tuple[str, ...],
    first: tuple[str, str],
    attack: tuple[str, str],
) -> None:
    guard, bearer = authorizer(table), token(*scopes)
    cached = guard.decide(token_event(bearer, *first))
    assert iam_allows(cached, f"{ARN}/{first[0]}{first[1]}")
    fresh = guard.decide(token_event(bearer, *attack))
    arn = f"{ARN}/{attack[0]}{attack[1]}"
    assert not iam_allows(fresh, arn)
    assert not iam_allows(cached, arn), "the cached policy allows what a fresh call denies"


@pytest.mark.parametrize(
    "attack", ["/a/../admin", "/a/./../admin", "/a/1/..", "/./admin", "/admin/.", "/a/.."]
)
def test_dot_segments_are_refused_fresh_and_cached(attack: str) -> None:
    """Should API Gateway resolve "/a/../admin" to "/admin" before routing, the method ARN would
    still hold the dots, which "Allow .../GET/a/*" matches and "Deny .../GET/admin" does not."""
    guard, bearer = authorizer({"GET /a/{x}": "", "GET /admin": "admin"}), token()
    cached = guard.decide(token_event(bearer, "GET", "/a/1"))
    assert iam_allows(cached, f"{ARN}/GET/a/1")
    assert not iam_allows(cached, f"{ARN}/GET{attack}")
    assert not iam_allows(guard.decide(token_event(bearer, "GET", attack)), f"{ARN}/GET{attack}")
    for near_miss in ("/a/...", "/a/.b", "/a/b.", "/a/..b"):  # ordinary segments stay allowed
        assert iam_allows(cached, f"{ARN}/GET{near_miss}"), near_miss


@pytest.mark.parametrize("key", ["GET /a/.", "GET /a/../b", "GET /./a"])
def test_a_route_with_a_dot_segment_is_refused_at_start(key: str) -> None:
    with pytest.raises(ConfigurationError, match="must be a literal"):
        RouteScopes({key: ""})


def test_a_trailing_slash_is_routed_as_api_gateway_routes_it() -> None:
    """API Gateway (REST) sends "/orders/8/refund/" to "POST /orders/{id}/refund"; the request is
    refused whatever the caller holds (its method ARN cannot be told apart by IAM patterns)."""
    scopes = RouteScopes({"POST /orders/{id}": "write", "POST /orders/{id}/refund": "admin"})
    route = scopes.table.select("POST", "/orders/8/refund/")
    assert route is not None and route.key == "POST /orders/{id}/refund"
    assert scopes.table.select("POST", "/orders/8/") == scopes.table.select("POST", "/orders/8")
    everything = token(*SCOPES)
    guard = authorizer({"POST /orders/{id}": "write", "POST /orders/{id}/refund": "admin"})
    for path in ("/orders/8/refund/", "/orders/8/", "/orders//8", "/orders/8//refund"):
        answer = guard.decide(token_event(everything, "POST", path))
        assert not iam_allows(answer, f"{ARN}/POST{path}"), path
        if scopes.table.select("POST", path) is not None:
            # ... and that answer, cached, still allows the caller's real routes.
            assert iam_allows(answer, f"{ARN}/POST/orders/8/refund"), path


# -- a long path: API Gateway accepts resource ARNs of at most 512 characters in a policy --------
NESTED = {"GET /{proxy+}": "read", "GET /a/{id}": "admin", "GET /a/{id}/b": "read"}


@pytest.mark.parametrize(
    ("table", "scopes", "path"),
    [
        ({"GET /files/{p+}": "read"}, (), "/files/" + "a" * 600),  # nothing allowed: a Deny
        ({"GET /files/{p+}": "read"}, (), "/nowhere/" + "a" * 600),  # no route: a Deny
        (NESTED, ("read",), "/a/1/x/" + "y" * 600),  # the exact-ARN fallback
        (NESTED, ("read",), "/x/" + "y" * 1500),  # a method ARN of almost 1,600 characters
    ],
)
def test_no_policy_names_a_resource_longer_than_api_gateway_accepts(
    table: dict[str, str], scopes: tuple[str, ...], path: str
) -> None:
    """A longer resource is refused by API Gateway as a configuration error (500)."""
    answer = authorizer(table).decide(token_event(token(*scopes), "GET", path))
    resources = [r for s in answer["policyDocument"]["Statement"] for r in s["Resource"]]
    assert resources and all(len(r) <= 512 for r in resources)
    if path.startswith("/x/"):
        assert iam_allows(answer, f"{ARN}/GET{path}")  # the whole-table policy: no exact ARN
    else:
        assert not iam_allows(answer, f"{ARN}/GET{path}")


# -- a route scope no token can hold ------------------------------------------------------------
@pytest.mark.parametrize("scope", ["read write", " read", "read\n", 'a"b', "a\\b", 7])
def test_a_route_scope_that_no_token_can_hold_is_refused_at_start(scope: object) -> None:
    """Scopes are space-separated in every token: "read write" as one route's scope would make
    the route unreachable for everyone, silently (and name a scope no one can get in 403s)."""
    table = {"GET /a": "read", "GET /b": scope}
    with pytest.raises(ConfigurationError, match="GET /b"):
        RouteScopes(table)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"GET /b|ROUTE_SCOPES must be"):
        Settings.from_env(
            {"SUPABASE_URL": "https://x.supabase.co", "ROUTE_SCOPES": json.dumps(table)}
        )
    assert RouteScopes({"GET /a": "", "GET /b": "*", "GET /c": "orders:write"}).names() == {
        "*",
        "orders:write",
    }


# -- a large table: the start-time proof must not enumerate 2^n scope sets ----------------------
@EXAMPLES
@given(table=route_tables())
def test_the_start_time_conflicts_are_those_of_every_scope_set(table: dict[str, str]) -> None:
    """The conflicts found at start are exactly the union, over every scope set, of the
    conflicts of that set's plan (here, with at most three scope names, enumerated)."""
    planner = PolicyPlanner(RouteScopes(table))
    names = sorted(set(table.values()) - {""})
    union = {
        conflict
        for size in range(len(names) + 1)
        for held in itertools.combinations(names, size)
        for conflict in planner.plan(frozenset(held)).conflicts
    }
    assert set(planner.conflicts) == union


def test_a_table_with_many_scopes_is_proved_at_start(caplog: pytest.LogCaptureFixture) -> None:
    """Twenty scope names are a million scope sets: the conflicts are still named at start."""
    table = {f"POST /r{i}/{{id}}": f"scope{i}" for i in range(18)}
    table |= {"GET /{proxy+}": "read", "GET /a/{id}": "admin", "GET /a/{id}/b": "read"}
    with caplog.at_level("WARNING", logger="tokengate.policies"):
        planner = PolicyPlanner(RouteScopes(table))
    assert {(c.denied.key, c.permitted.key) for c in planner.conflicts} == {
        ("GET /a/{id}", "GET /a/{id}/b"),
        ("GET /a/{id}", "GET /{proxy+}"),
        ("GET /{proxy+}", "GET /a/{id}"),
    }
    (record,) = caplog.records
    assert "GET /a/{id} while allowing GET /a/{id}/b" in record.getMessage()
