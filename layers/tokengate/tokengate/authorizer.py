"""API Gateway Lambda authorizer decisions, shared by both authorizers (docs/contract.md §7).

The event format is detected from the event: REST ``TOKEN``, REST ``REQUEST`` (and HTTP API
payload 1.0, which answers the same way) or HTTP API payload 2.0. An Allow policy lists every
route the caller's scopes allow, so API Gateway's authorizer cache — keyed on the token alone —
can replay it for any route without leaking an Allow or a spurious Deny.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from .apigw import header
from .errors import ConfigurationError, TokenGateError

_ROUTE_KEY = re.compile(r"(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS|ANY) (/\S*)")
_METHOD_ARN = re.compile(
    r"(arn:[a-z-]+:execute-api:[a-z0-9-]+:\d{12}:[A-Za-z0-9]+/[^/]+)/([A-Z]+)(/.*)?"
)
CONTEXT_VALUE = str | int | float | bool


logger = logging.getLogger("tokengate.authorizer")


def log_decision(decision: str, reason: str, principal: Principal | None) -> None:
    """Refusals at INFO with their reason code; allows at DEBUG (API Gateway's access log already
    records each allowed principal, and a log line costs more than the decision itself)."""
    if decision == "allow":
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "authorizer decision",
                extra={"decision": decision, "sub": principal and principal.sub},
            )
        return
    fields: dict[str, Any] = {"decision": decision, "reason": reason}
    if principal is not None:
        fields |= {"sub": principal.sub, "jti": principal.context.get("jti")}
    logger.info("authorizer decision", extra=fields)


class Unauthorized(Exception):
    """Raised for a missing or invalid token on REST APIs: API Gateway answers 401."""

    def __init__(self) -> None:
        super().__init__("Unauthorized")


class Principal(NamedTuple):
    """A verified caller, as every authorizer sees it."""

    sub: str
    scopes: frozenset[str]
    context: dict[str, CONTEXT_VALUE]


class AuthRequest(NamedTuple):
    kind: str  # "TOKEN", "REQUEST" or "HTTP_API_V2" (HTTP API payload format 2.0)
    token: str | None
    arn_base: str | None  # arn:aws:execute-api:region:account:api/stage
    route_key: str  # "GET /whoami"


_PATH_PARAMETER = re.compile(r"\{[^/{}]+\}")


def path_pattern(path: str) -> re.Pattern[str]:
    """A route path in API Gateway syntax (``{id}``, greedy ``{proxy+}``) as a regex over
    request paths."""
    parts, start = [], 0
    for match in _PATH_PARAMETER.finditer(path):
        parts += [
            re.escape(path[start : match.start()]),
            ".+" if match[0].endswith("+}") else "[^/]+",
        ]
        start = match.end()
    return re.compile("".join([*parts, re.escape(path[start:])]) + r"\Z")


class RouteScopes:
    """``"METHOD /path"`` → required scope (``""``: any valid token). Unlisted routes deny."""

    def __init__(self, table: Mapping[str, str]) -> None:
        for key in table:
            if not _ROUTE_KEY.fullmatch(key):
                raise ConfigurationError(f"route {key!r} must look like 'GET /path'")
        self._table = dict(table)
        self._routes = [
            (key.split(" ", 1)[0], path_pattern(key.split(" ", 1)[1]), scope)
            for key, scope in table.items()
        ]

    def allowed(self, scopes: frozenset[str]) -> list[str]:
        return [key for key, scope in self._table.items() if not scope or scope in scopes]

    def permits(self, route_key: str, scopes: frozenset[str]) -> bool:
        method, _, path = route_key.partition(" ")
        return any(
            (not scope or scope in scopes)
            and route_method in (method, "ANY")
            and pattern.match(path)
            for route_method, pattern, scope in self._routes
        )


def bearer_token(value: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` value (RFC 6750 §2.1), or None.

    Only the scheme and the single space are checked here; the token's alphabet is checked once,
    by the strict JWS parser."""
    if value is None or len(value) < 8 or value[:7].lower() != "bearer ":
        return None
    token = value[7:]
    return None if any(c.isspace() for c in token[:1] + token[-1:]) or " " in token else token


def parse_event(event: dict[str, Any]) -> AuthRequest:
    if event.get("version") == "2.0" and "routeArn" in event:
        match = _METHOD_ARN.fullmatch(str(event["routeArn"]))
        token = bearer_token(header(event, "authorization"))
        return AuthRequest(
            "HTTP_API_V2", token, match[1] if match else None, str(event.get("routeKey", ""))
        )
    match = _METHOD_ARN.fullmatch(str(event.get("methodArn", "")))
    route_key = f"{match[2]} {match[3] or '/'}" if match else ""
    if event.get("type") == "TOKEN":
        raw = event.get("authorizationToken")
        token = bearer_token(raw if isinstance(raw, str) else None)
        return AuthRequest("TOKEN", token, match[1] if match else None, route_key)
    token = bearer_token(header(event, "authorization"))
    if event.get("httpMethod") and event.get("resource"):
        route_key = f"{event['httpMethod']} {event['resource']}"
    return AuthRequest("REQUEST", token, match[1] if match else None, route_key)


def _route_arn(arn_base: str, route_key: str) -> str:
    method, path = route_key.split(" ", 1)
    path = _PATH_PARAMETER.sub("*", path)
    return f"{arn_base}/{'*' if method == 'ANY' else method}{path}"


class Authorizer:
    """Verify the bearer token, then answer in the event's own format."""

    def __init__(
        self,
        verify: Callable[[str, AuthRequest], Principal],
        routes: RouteScopes,
        on_decision: Callable[[str, str, Principal | None], None] | None = None,
    ) -> None:
        self._verify = verify
        self._routes = routes
        self._on_decision = on_decision or log_decision
        self._arn_memo: dict[tuple[str, frozenset[str]], tuple[str, ...]] = {}

    def _allowed_arns(self, arn_base: str, scopes: frozenset[str]) -> tuple[str, ...]:
        """The ARNs of every route these scopes allow; memoized (few distinct scope sets)."""
        key = (arn_base, scopes)
        arns = self._arn_memo.get(key)
        if arns is None:
            if len(self._arn_memo) >= 256:
                self._arn_memo.clear()
            allowed = self._routes.allowed(scopes)
            arns = self._arn_memo[key] = tuple(sorted(_route_arn(arn_base, k) for k in allowed))
        return arns

    def decide(self, event: dict[str, Any]) -> dict[str, Any]:
        request = parse_event(event)
        principal: Principal | None = None
        reason = "missing_token"
        if request.token is not None:
            try:
                principal = self._verify(request.token, request)
            except TokenGateError as exc:
                reason = exc.reason
        if principal is None or (request.arn_base is None and request.kind != "HTTP_API_V2"):
            self._on_decision("unauthorized", reason, None)
            if request.kind == "HTTP_API_V2":
                return {"isAuthorized": False}
            raise Unauthorized()
        permitted = self._routes.permits(request.route_key, principal.scopes)
        self._on_decision(
            "allow" if permitted else "deny", "ok" if permitted else "insufficient_scope", principal
        )
        if request.kind == "HTTP_API_V2":
            return {"isAuthorized": permitted, "context": principal.context}
        assert request.arn_base is not None
        allowed = self._allowed_arns(request.arn_base, principal.scopes)
        statements: list[dict[str, Any]] = []
        if allowed:
            statements.append(
                {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": list(allowed)}
            )
        if not permitted:
            statements.append(
                {
                    "Action": "execute-api:Invoke",
                    "Effect": "Deny",
                    "Resource": [_route_arn(request.arn_base, request.route_key)],
                }
            )
        return {
            "principalId": principal.sub,
            "policyDocument": {"Version": "2012-10-17", "Statement": statements},
            "context": principal.context,
        }
