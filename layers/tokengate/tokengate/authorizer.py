"""API Gateway Lambda authorizer decisions, shared by both authorizers.

The event format is detected from the event: REST ``TOKEN``, REST ``REQUEST`` (and HTTP API
payload 1.0, which answers the same way) or HTTP API payload 2.0. The scope a request needs is
that of the route API Gateway sends it to (:mod:`tokengate.routes`): ``REQUEST`` and HTTP API
events name it, a ``TOKEN`` event's method ARN is resolved to it. REST answers are IAM policies
that API Gateway may replay on other routes from its cache (:mod:`tokengate.policies`); HTTP API
simple responses are replayed per identity source values, so they are decided per route only when
``$context.routeKey`` is among them.
"""

import os
import re
from collections.abc import Callable
from types import FunctionType, MethodType
from typing import Any, NamedTuple

from .apigw import header
from .emf import stack_from_env
from .errors import TokenGateError
from .log import DEBUG, get_logger
from .policies import PolicyPlanner, RouteScopes, frozen_policy
from .routes import Route

_METHOD_ARN = re.compile(
    r"(arn:[a-z-]+:execute-api:[a-z0-9-]+:\d{12}:[A-Za-z0-9]+/[A-Za-z0-9_$-]+)/([A-Z]+)(/.*)?"
)
CONTEXT_VALUE = str | int | float | bool

logger = get_logger("tokengate.authorizer")


def log_decision(decision: str, reason: str, principal: "Principal | None") -> None:
    """Refusals at INFO with their reason code; allows at DEBUG (API Gateway's access log already
    records each allowed principal, and a log line costs more than the decision itself)."""
    if decision == "allow":
        if logger.isEnabledFor(DEBUG):
            logger.debug(
                "authorizer decision",
                extra={"decision": decision, "sub": principal and principal.sub},
            )
        return
    # ``stack``: the log metric filters' Stack dimension (the refusal metrics, per stack).
    fields: dict[str, Any] = {
        "decision": decision,
        "reason": reason,
        "stack": stack_from_env(os.environ),
    }
    if principal is not None:
        fields |= {"sub": principal.sub, "jti": principal.context.get("jti")}
    logger.info("authorizer decision", extra=fields)


class Unauthorized(Exception):
    """Raised for a missing or invalid token on REST APIs: API Gateway answers 401."""

    def __init__(self) -> None:
        super().__init__("Unauthorized")


def insufficient_scope(required: frozenset[str], held: frozenset[str]) -> str:
    """What a denied caller lacks, for API Gateway's 403 answer: every scope routes require that
    the token does not hold (space-separated). A function of the token alone, so an answer API
    Gateway's cache replays on another route stays true."""
    return " ".join(sorted(required - held))


class Principal(NamedTuple):
    """A verified caller, as every authorizer sees it."""

    sub: str
    scopes: frozenset[str]
    context: dict[str, CONTEXT_VALUE]


class AuthRequest(NamedTuple):
    kind: str  # "TOKEN", "REQUEST" or "HTTP_API_V2"
    token: str | None
    arn_base: str | None  # arn:aws:execute-api:region:account:api/stage
    route_key: str  # what the event names: "METHOD /resource" (REST), the route key (HTTP)
    method: str = ""  # the request, from the method ARN (REST)
    path: str = ""
    identity_sources: tuple[str, ...] = ()  # HTTP API: the identity source values


def bearer_token(value: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` value (RFC 6750 §2.1), or None.

    The scheme is case-insensitive (RFC 9110 §11.1). Only the scheme and the single space are
    checked here; the token's alphabet is checked once, by the strict JWS parser."""
    if type(value) is not str:
        return None
    # The scheme is what comes before the first space: one partition (a C pass), where a prefix
    # test and a slice take two calls and the prefix test's argument parsing.
    scheme, _, token = value.partition(" ")
    if len(scheme) != 6 or (scheme != "Bearer" and scheme.lower() != "bearer") or not token:
        return None
    # One space, then no whitespace at either end and no space inside (the rest of the alphabet
    # is the JWS parser's); strip() hands back the same text when there is nothing to strip.
    return None if " " in token or token.strip() != token else token


def parse_event(event: dict[str, Any]) -> AuthRequest:
    if event.get("version") == "2.0" and "routeArn" in event:
        match = _METHOD_ARN.fullmatch(str(event["routeArn"]))
        sources = event.get("identitySource")
        return AuthRequest(
            "HTTP_API_V2",
            bearer_token(header(event, "authorization")),
            match[1] if match else None,
            str(event.get("routeKey", "")),
            identity_sources=tuple(
                v for v in (sources if isinstance(sources, list) else []) if isinstance(v, str)
            ),
        )
    match = _METHOD_ARN.fullmatch(str(event.get("methodArn", "")))
    arn_base, method, path = (match[1], match[2], match[3] or "/") if match else (None, "", "")
    if event.get("type") == "TOKEN":
        raw = event.get("authorizationToken")
        token = bearer_token(raw if isinstance(raw, str) else None)
        return AuthRequest("TOKEN", token, arn_base, "", method, path)
    resource, http_method = event.get("resource"), event.get("httpMethod")
    route_key = (
        f"{http_method} {resource}"
        if isinstance(resource, str) and isinstance(http_method, str)
        else ""
    )
    token = bearer_token(header(event, "authorization"))
    return AuthRequest("REQUEST", token, arn_base, route_key, method, path)


def _memo_key(event: dict[str, Any]) -> str | tuple[str, ...]:
    """Every event field :func:`parse_event` reads except the token, when each is a plain
    string: requests with the same key go to the same place and get the same answer for the
    same scopes. A ``TOKEN`` event's key is its method ARN alone (a string, whose hash Python
    keeps: no tuple to build and hash on every call), the others' a tuple that starts with
    their kind. Empty (never remembered) for anything unusual."""
    if "routeArn" in event and event.get("version") == "2.0":
        # Of the identity sources only one fact matters (is the route key among them?): the
        # others hold the caller's token, which no memo keeps.
        sources = event.get("identitySource")
        route_key = event.get("routeKey", "")
        key: tuple[Any, ...] = (
            "HTTP_API_V2",
            event["routeArn"],
            route_key,
            "routeKey" if isinstance(sources, list) and route_key in sources else "",
        )
    else:
        arn = event.get("methodArn", "")
        if event.get("type") == "TOKEN":
            return arn if type(arn) is str else ()
        key = ("REQUEST", arn, event.get("httpMethod"), event.get("resource"))
    return key if all(type(part) is str for part in key) else ()


class _Answer:
    """A decision for one place and one scope set (attributes in slots: read on every call)."""

    __slots__ = ("missing", "permitted", "policy", "reason")

    def __init__(self, permitted: bool, reason: str, policy: dict[str, Any], missing: str) -> None:
        self.permitted = permitted
        self.reason = reason
        self.policy = policy  # the IAM policy document (REST), read-only
        self.missing = missing  # the route scopes the scope set lacks

    def __repr__(self) -> str:
        return f"_Answer({self.permitted!r}, {self.reason!r}, {self.policy!r}, {self.missing!r})"


class _Place:
    """A request without its token, the route API Gateway sent it to, and the answers decided
    for it so far by scope set (a frozenset keeps its hash: the lookup hashes nothing).
    Attributes in slots, read on every call."""

    __slots__ = ("answers", "http", "request", "route", "unanswerable")

    def __init__(self, request: AuthRequest, route: Route | None) -> None:
        self.request = request
        self.route = route
        self.answers: dict[frozenset[str], _Answer] = {}
        self.http = request.kind == "HTTP_API_V2"
        # A REST request without a method ARN: no policy could name what it asks for.
        self.unanswerable = request.arn_base is None and not self.http

    def __repr__(self) -> str:
        return f"_Place({self.request!r}, {self.route!r}, {self.answers!r})"


class Authorizer:
    """Verify the bearer token, then answer in the event's own format.

    Everything but the token check is a function of where the request goes and of the caller's
    scopes, so it is computed once per (place, scope set) and remembered in bounded memos: the
    warm path verifies the token and copies a remembered answer."""

    MEMO_SIZE = 1024

    def __init__(
        self,
        verify: Callable[[str, AuthRequest], Principal],
        routes: RouteScopes,
        on_decision: Callable[[str, str, Principal | None], None] | None = None,
    ) -> None:
        # A callable object (the principals) is kept as its type's ``__call__`` bound to it:
        # calling that enters the method directly, where calling the object goes through the
        # type's call slot first (a second interpreter entry on every decision).
        self._verify = (
            verify
            if isinstance(verify, FunctionType | MethodType)
            else MethodType(type(verify).__call__, verify)
        )
        self._routes = routes
        self._planner = PolicyPlanner(routes)
        self._on_decision = on_decision or log_decision
        # The default logs an allow only at DEBUG: skipped without a call unless DEBUG is on.
        self._log_allows = on_decision is not None
        self._warned_route_key = False
        self._places: dict[str | tuple[str, ...], _Place] = {}
        self._answer_count = 0  # answers held by the remembered places, at most MEMO_SIZE

    def _route(self, request: AuthRequest) -> Route | None:
        """The route API Gateway sent the request to, if the table lists it. A REST event's
        named resource must also be the one its method ARN selects, or the table and the API
        disagree (a route missing from the table) and nothing is allowed."""
        table = self._routes.table
        if request.kind == "HTTP_API_V2":
            return table.find(request.route_key)
        selected = table.select(request.method, request.path)
        if request.kind == "REQUEST":
            named = table.resource(request.method, request.route_key.partition(" ")[2])
            if named != selected:
                return None
        return selected

    def _new_place(
        self, event: dict[str, Any], key: str | tuple[str, ...]
    ) -> tuple[_Place, str | None]:
        request = parse_event(event)
        # Kept without the token, and without identity sources other than the route key
        # (they hold the token too): the decision reads only whether the route key is there.
        named = (request.route_key,) if request.route_key in request.identity_sources else ()
        place = _Place(request._replace(token=None, identity_sources=named), self._route(request))
        if key:
            if len(self._places) >= self.MEMO_SIZE:
                self._places.clear()  # and the answers they held
                self._answer_count = 0
            self._places[key] = place
        return place, request.token

    def decide(self, event: dict[str, Any]) -> dict[str, Any]:
        key = event.get("methodArn")
        if type(key) is not str or "routeArn" in event or event.get("type") != "TOKEN":
            # Anything but a REST TOKEN event (a TOKEN authorizer's every call, whose key is
            # its method ARN: _memo_key's answer, taken here without the call).
            key = _memo_key(event)
        place = self._places.get(key)
        if place is None:
            place, token = self._new_place(event, key)
        else:
            token = bearer_token(
                event.get("authorizationToken")
                if type(key) is str
                else header(event, "authorization")
            )
        request = place.request
        principal: Principal | None = None
        reason = "missing_token"
        if token is not None:
            try:
                principal = self._verify(token, request)
            except TokenGateError as exc:
                reason = exc.reason
        if principal is None or place.unanswerable:
            self._on_decision("unauthorized", reason, None)
            if place.http:
                return {"isAuthorized": False}
            raise Unauthorized()
        sub, scopes, context = principal
        answer = place.answers.get(scopes)
        if answer is None:
            answer = self._answer(place, scopes)
            if key:
                self._remember(place, scopes, answer)
        if not answer.permitted or self._log_allows or logger.isEnabledFor(DEBUG):
            self._on_decision("allow" if answer.permitted else "deny", answer.reason, principal)
        if place.http:
            return {"isAuthorized": answer.permitted, "context": context}
        if answer.missing:
            # For API Gateway's ACCESS_DENIED answer ($context.authorizer.insufficient_scope), in
            # every answer, Allow too: API Gateway may serve a 403 from a cached Allow policy.
            context = {**context, "insufficient_scope": answer.missing}
        # The policy document is shared by every answer for this place and scope set, and
        # read-only (a tuple-and-ReadOnlyDict structure): no caller can change the next answer.
        return {"principalId": sub, "policyDocument": answer.policy, "context": context}

    def _remember(self, place: _Place, scopes: frozenset[str], answer: _Answer) -> None:
        if self._answer_count >= self.MEMO_SIZE:
            for known in self._places.values():
                known.answers.clear()
            self._answer_count = 0
        place.answers[scopes] = answer
        self._answer_count += 1

    def _answer(self, place: _Place, scopes: frozenset[str]) -> _Answer:
        request, route = place.request, place.route
        if request.kind == "HTTP_API_V2":
            permitted, reason = self._simple_decision(request, route, scopes)
            return _Answer(permitted, reason, {}, "")
        assert request.arn_base is not None
        permitted, statements = self._planner.answer(
            request.arn_base, request.method, request.path, route, scopes
        )
        missing = insufficient_scope(self._routes.names(), scopes)
        policy = frozen_policy(statements)
        return _Answer(permitted, self._reason(route, scopes, permitted), policy, missing)

    def _reason(self, route: Route | None, scopes: frozenset[str], permitted: bool) -> str:
        if permitted:
            return "ok"
        if route is None:
            return "route_not_in_table"
        if self._routes.permits(route, scopes):
            return "unrepresentable_path"  # "*" or "?" where an exact ARN is needed; "//", "/a/"
        return "insufficient_scope"

    def _simple_decision(
        self, request: AuthRequest, route: Route | None, scopes: frozenset[str]
    ) -> tuple[bool, str]:
        """HTTP API answers carry no route: API Gateway replays them for any request with the
        same identity source values. Unless the route key is one of them, the answer must be the
        same on every route: allowed only where every route of the table is."""
        permitted = self._routes.permits(route, scopes)
        reason = self._reason(route, scopes, permitted)
        if (
            permitted
            and request.route_key not in request.identity_sources
            and not all(self._routes.permits(r, scopes) for r in self._routes.table)
        ):
            permitted, reason = False, "route_key_not_an_identity_source"
            if not self._warned_route_key:
                self._warned_route_key = True
                logger.warning(
                    "declare $context.routeKey among the authorizer's identity sources: "
                    "without it a cached answer would be replayed on other routes, so only "
                    "callers allowed on every route are allowed"
                )
        return permitted, reason
