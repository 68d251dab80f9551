"""Route selection and cache-safe policies, held for generated route tables (hypothesis).

Both real authorizers answer TOKEN, REQUEST and HTTP API 2.0 events for real signed tokens; each
answer is replayed the way API Gateway's authorizer cache replays it, through an IAM evaluator.
The oracles here share no code with the product: the route oracle keeps, segment by segment, the
candidates of the most specific kind; the IAM matcher is a hand-written glob over characters.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import itertools
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.depth import examples
from tests.factories import (
    HS_SECRET,
    SUPABASE_ISSUER,
    KeyPair,
    hs_token,
    rsa_pair,
    supabase_claims,
)
from tests.jwks_server import JwksServer
from tokengate.apitoken import ApiTokenIssuer
from tokengate.authorizer import Authorizer, Unauthorized
from tokengate.keys import HmacKey
from tokengate.policies import PolicyPlanner, RouteScopes
from tokengate.principals import ApiTokenPrincipals, SupabasePrincipals
from tokengate.routes import RouteTable
from tokengate.scopes import ScopePolicy
from tokengate.signing import LocalKeySigner
from tokengate.supabase import SupabasePolicy, SupabaseTokenVerifier

ARN = "arn:aws:execute-api:eu-west-1:123456789012:abc123/v1"
ISSUER = "https://api.example.com"
SCOPES = ("read", "write", "admin")
ALL_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")
WORDS = ("a", "b")  # the tables' literal segments; requests also use a fresh "x" and ""
EXAMPLES = settings(
    max_examples=examples(2000, 400),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# -- the oracles --------------------------------------------------------------------------------
def oracle_segments(path: str) -> list[str]:
    """A REST API routes ``/a/`` as ``/a``: one trailing slash does not count."""
    parts = path.split("/")[1:]
    return parts[:-1] if parts[-1:] == [""] else parts


def oracle_refused(path: str) -> bool:
    """Paths with an empty segment are refused whatever their route (the method ARN keeps the
    slash that routing ignores, and IAM patterns cannot tell such paths apart)."""
    return len(path) > 1 and ("//" in path or path[-1] == "/")


def oracle_kind(part: str) -> int:
    """0 literal, 1 {name}, 2 {name+}"""
    if part.startswith("{") and part.endswith("+}"):
        return 2
    return 1 if part.startswith("{") else 0


def oracle_fits(parts: list[str], request: list[str]) -> bool:
    if not parts:
        return not request
    kind = oracle_kind(parts[0])
    if kind == 2:
        return "/".join(request) != ""
    if not request or request[0] == "":
        return False
    if kind == 0 and parts[0] != request[0]:
        return False
    return oracle_fits(parts[1:], request[1:])


def oracle_route(keys: list[str], method: str, path: str) -> str | None:
    """Brute force: the routes that fit, then, one segment at a time, only those whose segment
    is of the most specific kind any of them has there; an explicit method last."""
    return _oracle_route(tuple(keys), method, path)


@functools.lru_cache(maxsize=1 << 16)
def _oracle_route(keys: tuple[str, ...], method: str, path: str) -> str | None:
    request = oracle_segments(path)
    alive = []
    for key in keys:
        route_method, route_path = key.split(" ")
        if route_method not in (method, "ANY"):
            continue
        if oracle_fits(oracle_segments(route_path), request):
            alive.append(key)
    depth = 0
    while len(alive) > 1 and depth <= len(request):
        kinds = {}
        for k in alive:
            parts = oracle_segments(k.split(" ")[1])
            kinds[k] = oracle_kind(parts[depth]) if depth < len(parts) else 3
        best = min(kinds.values())
        alive = [k for k in alive if kinds[k] == best]
        depth += 1
    explicit = [k for k in alive if not k.startswith("ANY ")]
    chosen = explicit or alive
    assert len(chosen) <= 1, chosen
    return chosen[0] if chosen else None


def iam_glob(pattern: str, text: str) -> bool:
    """``*`` any run of characters ("/" too), ``?`` exactly one; by hand, over characters."""
    p = t = 0
    star_p, star_t = -1, 0
    while t < len(text):
        if p < len(pattern) and (pattern[p] == "?" or pattern[p] == text[t]):
            p, t = p + 1, t + 1
        elif p < len(pattern) and pattern[p] == "*":
            star_p, star_t = p, t
            p += 1
        elif star_p >= 0:
            star_t += 1
            p, t = star_p + 1, star_t
        else:
            return False
    while p < len(pattern) and pattern[p] == "*":
        p += 1
    return p == len(pattern)


def iam_allows(answer: dict[str, Any], arn: str) -> bool:
    allowed = False
    for statement in answer["policyDocument"]["Statement"]:
        assert statement["Action"] == "execute-api:Invoke"
        if any(iam_glob(pattern, arn) for pattern in statement["Resource"]):
            if statement["Effect"] == "Deny":
                return False
            allowed = True
    return allowed


def test_the_oracles_themselves() -> None:
    assert iam_glob("a/*/c", "a/b/x/c") and not iam_glob("a/*/c", "a/c")
    assert iam_glob("a/?", "a/b") and not iam_glob("a/?", "a/bc") and iam_glob("*", "")
    keys = ["GET /{p+}", "GET /a", "ANY /a", "GET /{x}/b", "GET /a/{y}"]
    assert oracle_route(keys, "GET", "/a") == "GET /a"
    assert oracle_route(keys, "POST", "/a") == "ANY /a"
    assert oracle_route(keys, "GET", "/a/b") == "GET /a/{y}"
    assert oracle_route(keys, "GET", "/x/b") == "GET /{x}/b"
    assert oracle_route(keys, "GET", "/x/b/c") == "GET /{p+}"
    assert oracle_route(keys, "POST", "/x") is None


# -- generated tables and requests --------------------------------------------------------------
@st.composite
def route_tables(draw: st.DrawFn) -> dict[str, str]:
    count = draw(st.integers(1, 6))
    table: dict[str, str] = {}
    shapes: set[tuple[str, str]] = set()
    for _ in range(count):
        method = draw(st.sampled_from(("GET", "GET", "POST", "ANY", "ANY", "DELETE")))
        length = draw(st.integers(0, 3))
        parts = []
        for index in range(length):
            kind = draw(st.sampled_from(("lit", "lit", "var", "greedy")))
            if kind == "greedy" and index == length - 1:
                parts.append("{rest+}")
            elif kind == "var":
                parts.append(f"{{v{index}}}")
            else:
                parts.append(draw(st.sampled_from(WORDS)))
        path = "/" + "/".join(parts)
        shape = (method, "/".join("{}" if p.startswith("{") else p for p in parts))
        if shape in shapes:
            continue
        shapes.add(shape)
        table[f"{method} {path}"] = draw(st.sampled_from(("", *SCOPES)))
    return table


PATHS = [
    "/" + "/".join(parts)
    for n in range(5)
    for parts in itertools.product(("a", "b", "x", ""), repeat=n)
    if n == 0 or parts != ("",)
]
CLEAN_PATHS = [p for p in PATHS if ("//" not in p and not p.endswith("/")) or p == "/"]
requests = st.tuples(
    st.sampled_from(("GET", "GET", "POST", "DELETE", "PUT")),
    st.one_of(st.sampled_from(CLEAN_PATHS), st.sampled_from(PATHS)),
)


def permitted(
    table: dict[str, str], key: str | None, held: frozenset[str], path: str = "/"
) -> bool:
    return key is not None and (table[key] == "" or table[key] in held) and not oracle_refused(path)


def test_route_selection_matches_the_oracle_on_hand_picked_tables() -> None:
    table = RouteTable(["GET /{p+}", "GET /a", "ANY /a", "GET /{x}/b", "GET /a/{y}"])
    for method in ALL_METHODS:
        for path in PATHS:
            chosen = table.select(method, path)
            expected = oracle_route([r.key for r in table.routes], method, path)
            assert (chosen.key if chosen else None) == expected, (method, path)


@EXAMPLES
@given(table=route_tables(), method=st.sampled_from(ALL_METHODS), path=st.sampled_from(PATHS))
def test_route_selection_is_the_most_specific_match(
    table: dict[str, str], method: str, path: str
) -> None:
    chosen = RouteTable(table).select(method, path)
    assert (chosen.key if chosen else None) == oracle_route(list(table), method, path)


# -- the authorizers, with real tokens ----------------------------------------------------------
class Tokens:
    """Real signed tokens, one per scope set (signing is the slow part)."""

    def __init__(self, api_key: KeyPair) -> None:
        self._issuer = ApiTokenIssuer(LocalKeySigner(api_key.private), ttl=3600)
        self._cache: dict[tuple[str, frozenset[str]], str] = {}

    def api(self, held: frozenset[str]) -> str:
        key = ("api", held)
        if key not in self._cache:
            self._cache[key] = self._issuer.issue(
                issuer=ISSUER,
                subject="8b3b1c7e-2f1a-4c3d-9e8f-0a1b2c3d4e5f",
                audiences=["api"],
                scopes=sorted(held),
                client_id="cli",
                session_id="s-1",
                not_after=time.time() + 3600,
            ).token
        return self._cache[key]

    def supabase(self, held: frozenset[str]) -> str:
        key = ("supabase", held)
        if key not in self._cache:
            metadata = {"provider": "email", "api_scopes": sorted(held)}
            self._cache[key] = hs_token(supabase_claims(app_metadata=metadata))
        return self._cache[key]


@pytest.fixture(scope="module")
def principals() -> Iterator[tuple[Tokens, ApiTokenPrincipals, SupabasePrincipals]]:
    """The principals both handlers are built with; keys served over loopback as in AWS."""
    api_key = rsa_pair()
    with JwksServer({"keys": [LocalKeySigner(api_key.private).public_jwk()]}) as jwks:
        api = ApiTokenPrincipals(
            issuer=ISSUER, audience="api", leeway=30, context_claims=(), jwks_url=jwks.jwks_url
        )
        verifier = SupabaseTokenVerifier(
            SupabasePolicy(issuer=SUPABASE_ISSUER), hmac_key=lambda: HmacKey(HS_SECRET.encode())
        )
        supabase = SupabasePrincipals(verifier, ScopePolicy(SCOPES, ()), ())
        yield Tokens(api_key), api, supabase


def rest_event(kind: str, token: str, method: str, path: str, resource: str) -> dict[str, Any]:
    if kind == "TOKEN":
        return {
            "type": "TOKEN",
            "authorizationToken": f"Bearer {token}",
            "methodArn": f"{ARN}/{method}{path}",
        }
    return {
        "type": "REQUEST",
        "methodArn": f"{ARN}/{method}{path}",
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": {"Authorization": f"bearer {token}"},
        "requestContext": {"resourcePath": resource, "httpMethod": method, "path": f"/v1{path}"},
    }


def http_event(token: str, route_key: str, with_route_key: bool) -> dict[str, Any]:
    value = f"Bearer {token}"
    method, path = route_key.split(" ")
    return {
        "version": "2.0",
        "type": "REQUEST",
        "routeArn": f"{ARN}/{method}{path}",
        "routeKey": route_key,
        "identitySource": [value, route_key] if with_route_key else [value],
        "headers": {"authorization": value},
    }


# How API Gateway keys its cache: the template's TOKEN authorizer on the token, its REQUEST
# authorizer on the token, method and path; a REQUEST authorizer keyed on the token alone
# (a deployment that left out the context identity sources); HTTP APIs on their sources.
FORMATS = ("TOKEN", "REQUEST", "REQUEST keyed on the token", "HTTP", "HTTP without routeKey")


def call(authorizer: Authorizer, payload: dict[str, Any]) -> dict[str, Any] | None:
    try:
        return authorizer.decide(payload)
    except Unauthorized:
        return None


@EXAMPLES
@given(
    table=route_tables(),
    held=st.frozensets(st.sampled_from(SCOPES)),
    sequence=st.lists(requests, min_size=1, max_size=8),
    kind=st.sampled_from(("api", "supabase")),
)
def test_cached_answers_never_grant_more_and_deny_more_only_where_inexpressible(
    principals: tuple[Tokens, ApiTokenPrincipals, SupabasePrincipals],
    table: dict[str, str],
    held: frozenset[str],
    sequence: list[tuple[str, str]],
    kind: str,
) -> None:
    tokens, api, supabase = principals
    token = tokens.api(held) if kind == "api" else tokens.supabase(held)
    authorizer = Authorizer(api if kind == "api" else supabase, RouteScopes(table))
    exact = PolicyPlanner(RouteScopes(table)).plan(held).exact
    keys = list(table)
    for fmt in FORMATS:
        cache: dict[tuple[str, ...], dict[str, Any] | None] = {}
        for method, path in sequence:
            key = oracle_route(keys, method, path)
            expected = permitted(table, key, held, path)
            arn = f"{ARN}/{method}{path}"
            if key is None:
                # The table routes it nowhere (a route of the API the table does not list, or a
                # path with an empty segment): refused, and the refusal is cached like any
                # answer where the cache is keyed on the token alone.
                answer = call(authorizer, rest_event("TOKEN", token, method, path, path))
                assert answer is not None and not iam_allows(answer, arn)
                if fmt in ("TOKEN", "REQUEST keyed on the token"):
                    cache.setdefault((), answer)
                continue
            route_method, resource = key.split(" ")
            if fmt.startswith("HTTP"):
                with_route_key = fmt == "HTTP"
                cache_key = (route_method, resource) if with_route_key else ()
                if cache_key not in cache:
                    cache[cache_key] = call(authorizer, http_event(token, key, with_route_key))
                answer = cache[cache_key]
                assert answer is not None
                outcome = bool(answer["isAuthorized"])
                if with_route_key:  # the event names the route, not the path
                    assert outcome == permitted(table, key, held), (fmt, key)
                else:
                    assert not outcome or all(permitted(table, k, held) for k in keys), (fmt, key)
                continue
            rest_kind = "TOKEN" if fmt == "TOKEN" else "REQUEST"
            cache_key = (method, path) if fmt == "REQUEST" else ()
            payload = rest_event(rest_kind, token, method, path, resource)
            fresh = call(authorizer, payload)
            assert fresh is not None
            assert iam_allows(fresh, arn) == expected, (fmt, method, path, "fresh")
            if cache_key not in cache:
                cache[cache_key] = fresh
            replayed = cache[cache_key]
            assert replayed is not None
            outcome = iam_allows(replayed, arn)
            assert not (outcome and not expected), ("over-grant", fmt, method, path)
            if exact or fmt == "REQUEST":
                assert outcome == expected, ("over-deny", fmt, method, path)


@EXAMPLES
@given(table=route_tables(), held=st.frozensets(st.sampled_from(SCOPES)))
def test_every_inexpressible_table_has_a_witness(
    table: dict[str, str], held: frozenset[str]
) -> None:
    """A fallback is only taken for a real conflict: a path API Gateway sends to the permitted
    route that the denied route's pattern (variables as ``*``) also matches."""
    plan = PolicyPlanner(RouteScopes(table)).plan(held)
    keys = list(table)
    for conflict in plan.conflicts:
        pattern = (
            "/"
            + "/".join(
                "*" if part.startswith("{") else part
                for part in oracle_segments(conflict.denied.path)
            )
            if conflict.denied.path != "/"
            else "/"
        )
        methods = [
            m
            for m in ALL_METHODS
            if conflict.denied.method in (m, "ANY") and conflict.permitted.method in (m, "ANY")
        ]
        assert any(
            oracle_route(keys, m, path) == conflict.permitted.key
            and iam_glob(f"{m}{pattern}", f"{m}{path}")
            for m in methods
            for path in PATHS
        ), conflict


NESTED = {"GET /{proxy+}": "read", "GET /a/{id}": "admin", "GET /a/{id}/b": "read"}


def test_an_inexpressible_table_is_named_once_at_start(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="tokengate.policies"):
        planner = PolicyPlanner(RouteScopes(NESTED))
    (record,) = caplog.records
    assert "GET /a/{id} while allowing GET /a/{id}/b" in record.getMessage()
    assert "GET /a/{id} while allowing GET /{proxy+}" in record.getMessage()
    assert not planner.plan(frozenset({"read"})).exact
    assert planner.plan(frozenset({"read", "admin"})).exact
    with caplog.at_level("WARNING", logger="tokengate.policies"):
        PolicyPlanner(RouteScopes({"POST /orders/{id}": "write", "POST /orders/{id}/refund": "x"}))
    assert len(caplog.records) == 1  # an expressible table logs nothing


def test_an_inexpressible_table_gets_per_route_policies(
    principals: tuple[Tokens, ApiTokenPrincipals, SupabasePrincipals],
) -> None:
    tokens, api, _ = principals
    authorizer = Authorizer(api, RouteScopes(NESTED))
    token = tokens.api(frozenset({"read"}))

    def policy(path: str) -> list[tuple[str, list[str]]]:
        answer = authorizer.decide(rest_event("TOKEN", token, "GET", path, path))
        return [(s["Effect"], list(s["Resource"])) for s in answer["policyDocument"]["Statement"]]

    # Every policy that allows anything also denies every path with an empty, "." or ".." segment.
    empty = sorted(f"{ARN}{p}" for p in ("/*//*", "/*/?*/", "/*/./*", "/*/.", "/*/../*", "/*/.."))
    read_only_plan = [
        ("Allow", sorted(f"{ARN}/GET{p}" for p in ("/*", "/a/*/b"))),
        ("Deny", sorted([f"{ARN}/GET/a/*", *empty])),
    ]
    # The whole-table policy where no needed Deny catches the request ...
    assert policy("/x/y") == read_only_plan
    assert policy("/a/1") == read_only_plan  # (a denied request: denied by it)
    assert policy("/x/y/") == read_only_plan  # (an empty segment: denied by it)
    # ... else its own pattern, where no Deny it needs reaches it ...
    assert policy("/a/1/b") == [("Allow", [f"{ARN}/GET/a/*/b"]), ("Deny", empty)]
    # ... else the exact ARN (the Deny of GET /a/{id} would also reach GET /{proxy+}).
    assert policy("/a/1/x/y") == [("Allow", [f"{ARN}/GET/a/1/x/y"]), ("Deny", empty)]


SHORT_PATHS = [p for p in PATHS if p.count("/") <= 3]
SOME_METHODS = ("GET", "POST", "DELETE")


@EXAMPLES
@given(table=route_tables(), held=st.frozensets(st.sampled_from(SCOPES)), data=st.data())
def test_policies_decide_every_request_of_a_small_universe_as_a_fresh_call(
    table: dict[str, str], held: frozenset[str], data: st.DataObject
) -> None:
    """Exhaustive over every request of up to three segments: an exact policy decides each one
    as a fresh call would; a per-route policy never allows one a fresh call would deny."""
    scopes = RouteScopes(table)
    planner = PolicyPlanner(scopes)
    keys = list(table)
    routed = [
        (m, p, k)
        for m in SOME_METHODS
        for p in SHORT_PATHS
        if (k := oracle_route(keys, m, p)) is not None
    ]
    if not routed:
        return

    def answer(method: str, path: str) -> dict[str, Any]:
        allowed, statements = planner.answer(
            ARN, method, path, scopes.table.select(method, path), held
        )
        policy = {"policyDocument": {"Statement": statements}}
        assert iam_allows(policy, f"{ARN}/{method}{path}") == allowed
        return policy

    if planner.plan(held).exact:
        first = data.draw(st.sampled_from(routed))
        policy = answer(first[0], first[1])
        for method, path, key in routed:
            expected = permitted(table, key, held, path)
            assert iam_allows(policy, f"{ARN}/{method}{path}") == expected, (method, path)
        return
    for method, path, key in data.draw(st.lists(st.sampled_from(routed), max_size=4)):
        policy = answer(method, path)
        assert iam_allows(policy, f"{ARN}/{method}{path}") == permitted(table, key, held, path)
        for other_method, other_path, other_key in routed:
            if iam_allows(policy, f"{ARN}/{other_method}{other_path}"):
                assert permitted(table, other_key, held, other_path), (
                    method,
                    path,
                    other_method,
                    other_path,
                )


@EXAMPLES
@given(
    table=route_tables(),
    sequence=st.lists(
        st.tuples(
            st.frozensets(st.sampled_from(SCOPES)),
            requests,
            st.sampled_from(("TOKEN", "REQUEST", "HTTP", "HTTP without routeKey")),
        ),
        min_size=2,
        max_size=12,
    ),
)
def test_a_remembered_answer_is_the_answer_a_fresh_authorizer_gives(
    principals: tuple[Tokens, ApiTokenPrincipals, SupabasePrincipals],
    table: dict[str, str],
    sequence: list[tuple[frozenset[str], tuple[str, str], str]],
) -> None:
    """The authorizer remembers each (place, scope set) decision: callers with other scopes,
    other routes and other event formats in between never change what one request gets."""
    tokens, api, _ = principals
    warm = Authorizer(api, RouteScopes(table))
    keys = list(table)
    for held, (method, path), fmt in sequence:
        token = tokens.api(held)
        key = oracle_route(keys, method, path)
        if fmt.startswith("HTTP"):
            if key is None:
                continue
            payload = http_event(token, key, fmt == "HTTP")
        else:
            resource = key.split(" ")[1] if key else path
            payload = rest_event(fmt, token, method, path, resource)
        for _ in range(2):  # the second answer comes from the memo
            assert call(warm, payload) == call(Authorizer(api, RouteScopes(table)), payload)


def test_a_path_with_an_empty_segment_gets_the_whole_table_policy_whatever_route_it_reaches() -> (
    None
):
    """ "/x//" selects "ANY /{rest+}", a route the GET group counts as shadowed by
    "GET /{v0}/{rest+}": refused, with a policy that, replayed from API Gateway's cache, still
    allows every other request a fresh call allows (it was a bare Deny of that one ARN)."""
    table = {"GET /": "", "GET /{v0}": "", "ANY /{rest+}": "", "GET /{v0}/{rest+}": ""}
    scopes = RouteScopes(table)
    planner = PolicyPlanner(scopes)
    allowed, statements = planner.answer(
        ARN, "GET", "/x//", scopes.table.select("GET", "/x//"), frozenset()
    )
    policy = {"policyDocument": {"Statement": statements}}
    assert not allowed
    assert not iam_allows(policy, f"{ARN}/GET/x//")
    assert iam_allows(policy, f"{ARN}/GET/")
    assert iam_allows(policy, f"{ARN}/POST/x/y")


@EXAMPLES
@given(
    table=route_tables(),
    held=st.frozensets(st.sampled_from(SCOPES)),
    first=st.tuples(st.sampled_from(SOME_METHODS), st.sampled_from(PATHS)),
)
def test_a_refusal_replayed_anywhere_decides_as_a_fresh_call(
    table: dict[str, str], held: frozenset[str], first: tuple[str, str]
) -> None:
    """Whatever the first request (routed nowhere, with an empty segment, of a denied route),
    its answer replayed on every routed request of a small universe allows exactly what a fresh
    call allows when the table is expressible for these scopes, and never more when it is not;
    on the first request itself it refuses."""
    scopes = RouteScopes(table)
    planner = PolicyPlanner(scopes)
    method, path = first
    route = scopes.table.select(method, path)
    allowed, statements = planner.answer(ARN, method, path, route, held)
    cached = {"policyDocument": {"Statement": statements}}
    keys = list(table)
    assert iam_allows(cached, f"{ARN}/{method}{path}") == allowed
    assert allowed == permitted(table, oracle_route(keys, method, path), held, path)
    exact = planner.plan(held).exact
    for other_method in SOME_METHODS:
        for other_path in SHORT_PATHS:
            key = oracle_route(keys, other_method, other_path)
            if key is None:
                continue  # replayed only on requests API Gateway sends to a route it has
            replayed = iam_allows(cached, f"{ARN}/{other_method}{other_path}")
            fresh = permitted(table, key, held, other_path)
            assert not (replayed and not fresh), ("over-grant", first, other_method, other_path)
            if exact:
                assert replayed == fresh, ("over-deny", first, other_method, other_path)


def test_a_request_the_table_routes_nowhere_does_not_deny_the_caller_everywhere(
    principals: tuple[Tokens, ApiTokenPrincipals, SupabasePrincipals],
) -> None:
    tokens, api, _ = principals
    table = {"GET /orders/{id}": "read", "GET /catalog/{proxy+}": ""}
    token = tokens.api(frozenset({"read"}))
    for kind in ("TOKEN", "REQUEST"):
        authorizer = Authorizer(api, RouteScopes(table))
        for path, resource in (("//orders/1", "//orders/1"), ("/orders/1/x", "/orders/{id}/x")):
            # The first request goes nowhere in the table; cached on the token alone, its
            # answer is what API Gateway replays on the next.
            answer = authorizer.decide(rest_event(kind, token, "GET", path, resource))
            assert not iam_allows(answer, f"{ARN}/GET{path}")
            assert iam_allows(answer, f"{ARN}/GET/orders/2")
            assert iam_allows(answer, f"{ARN}/GET/catalog/a/b")
            assert not iam_allows(answer, f"{ARN}/POST/orders/2")


def change_every_part(document: dict[str, Any]) -> None:
    """Try every change a caller could make to a policy document; keep going when refused."""
    statement = document["Statement"][0]
    changes: list[Callable[[], object]] = [
        lambda: document.__setitem__("Version", "2008-10-17"),
        lambda: document.update(Statement=[]),
        lambda: document.pop("Statement"),
        lambda: document.setdefault("Id", "x"),
        lambda: document.__delitem__("Version"),
        lambda: document["Statement"].append(statement),
        lambda: statement.__setitem__("Effect", "Allow"),
        lambda: statement["Resource"].append(f"{ARN}/*"),
        lambda: statement["Resource"].__setitem__(0, f"{ARN}/*"),
        lambda: statement.clear(),
    ]
    for change in changes:
        with contextlib.suppress(TypeError, AttributeError):
            change()


def test_changing_an_answer_never_changes_the_next_answer_for_the_same_place(
    principals: tuple[Tokens, ApiTokenPrincipals, SupabasePrincipals],
) -> None:
    tokens, api, _ = principals
    table = {"GET /orders/{id}": "read", "POST /orders/{id}": "write"}
    authorizer = Authorizer(api, RouteScopes(table))
    token = tokens.api(frozenset({"read"}))
    for path in ("/orders/1", "/orders/1/x", "//orders/1"):  # allowed; routed nowhere; refused
        event = rest_event("TOKEN", token, "GET", path, path)
        expected = Authorizer(api, RouteScopes(table)).decide(event)
        answer = authorizer.decide(event)
        change_every_part(answer["policyDocument"])
        assert authorizer.decide(event) == expected
        assert json.loads(json.dumps(authorizer.decide(event))) == json.loads(json.dumps(expected))
        # A copy is the caller's own, to change at will.
        copied = copy.deepcopy(answer["policyDocument"])
        copied["Statement"] = []
        assert authorizer.decide(event)["policyDocument"] == expected["policyDocument"]
