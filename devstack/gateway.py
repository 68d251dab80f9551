"""An API Gateway (REST, Lambda proxy) stand-in on loopback, driven by ``template.yaml``.

Requests become API Gateway-shaped events for the real handlers; routes with an authorizer are
first sent through it as API Gateway does: no or malformed identity → 401 without calling it;
``Unauthorized`` → 401; a policy that does not allow the method ARN → 403; policies (Allow and
Deny alike, never a 401) cached per identity for the template's ``ReauthorizeEvery``, and
replayed until it ends whatever the token's ``exp``, as API Gateway does. API Gateway's own
answers (no such route, 401, 403, an authorizer failure) are the template's ``GatewayResponses``
(:func:`gateway_response`).
"""

from __future__ import annotations

import base64
import json
import logging
import re
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tokengate.apigw import header
from tokengate.routes import RouteTable

from .events import ACCOUNT, API_ID
from .lambda_runtime import LambdaContext as LambdaContext
from .template import Authorizer, Handler, Route, Template

logger = logging.getLogger("devstack.gateway")
MAX_BODY = 10 * 1024 * 1024  # API Gateway REST payload limit


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def _gateway_error(status: int, message: str, headers: dict[str, str] | None = None) -> Answer:
    return Answer(
        status,
        {"Content-Type": "application/json", **(headers or {})},
        json.dumps({"message": message}).encode(),
    )


# The status of each answer API Gateway gives itself, when the template's entry sets none.
GATEWAY_STATUS = {
    "MISSING_AUTHENTICATION_TOKEN": 403,
    "UNAUTHORIZED": 401,
    "ACCESS_DENIED": 403,
    "AUTHORIZER_CONFIGURATION_ERROR": 500,
    "REQUEST_TOO_LARGE": 413,
    "THROTTLED": 429,
    "INTEGRATION_FAILURE": 504,
    "INTEGRATION_TIMEOUT": 504,
}
_CONTEXT_VARIABLE = re.compile(r"\$context\.([A-Za-z0-9_.]+)")


def gateway_response(
    responses: dict[str, Any],
    response_type: str,
    message: str,
    context: dict[str, Any],
    request_headers: dict[str, str] | None = None,
) -> Answer:
    """API Gateway's own answer of ``response_type``, as the template's ``GatewayResponses``
    define it: the type's entry, else ``DEFAULT_4XX``/``DEFAULT_5XX`` by status, else API
    Gateway's built-in ``{"message": ...}``. Header values are static ('quoted') or a request
    header (``method.request.header.<name>``: the request's value, and no header when the request
    has none, as API Gateway maps it); ``$context`` variables in the body are filled from
    ``context`` (keys as after ``$context.``), an unknown one with nothing, as API Gateway
    does."""
    own = responses.get(response_type) or {}
    status = int(own.get("StatusCode", GATEWAY_STATUS[response_type]))
    default = responses.get("DEFAULT_5XX" if status >= 500 else "DEFAULT_4XX") or {}
    spec = own if "ResponseTemplates" in own else {**default, **own}
    values = {"error.message": message, "error.messageString": json.dumps(message)} | context
    template = (spec.get("ResponseTemplates") or {}).get(
        "application/json", '{"message":$context.error.messageString}'
    )
    body = _CONTEXT_VARIABLE.sub(lambda m: str(values.get(m[1], "")), template)
    headers = {"Content-Type": "application/json"}
    for name, value in (spec.get("ResponseParameters") or {}).get("Headers", {}).items():
        if value is None:  # AWS::NoValue: the header is not declared
            continue
        if value.startswith(REQUEST_HEADER):
            mapped = _request_header(request_headers or {}, value[len(REQUEST_HEADER) :])
            if mapped is not None:
                headers[name] = mapped
            continue
        if not (value.startswith("'") and value.endswith("'")):
            raise ValueError(
                f"gateway response header {name}: only static values and request headers"
            )
        headers[name] = value[1:-1]
    return Answer(status, headers, body.encode())


REQUEST_HEADER = "method.request.header."


def _request_header(headers: dict[str, str], name: str) -> str | None:
    wanted = name.lower()
    return next((v for k, v in headers.items() if k.lower() == wanted), None)


def sam_cors_preflight(cors: Any, methods: list[str]) -> Answer | None:
    """The answer of the ``OPTIONS`` method SAM adds, for the API's ``Cors`` property, to a path
    that declares none: a MOCK integration answering 200 with the property's static headers
    (``AllowMethods`` defaults to the path's methods and ``OPTIONS``). None without ``Cors``."""
    if cors is None:
        return None
    spec = {"AllowOrigin": cors} if isinstance(cors, str) else dict(cors)
    if spec.get("AllowOrigin") is None:
        return None
    allowed = spec.get("AllowMethods") or "'" + ",".join(sorted({*methods, "OPTIONS"})) + "'"
    headers = {"Content-Type": "application/json"}
    for name, value in (
        ("Access-Control-Allow-Origin", spec.get("AllowOrigin")),
        ("Access-Control-Allow-Methods", allowed),
        ("Access-Control-Allow-Headers", spec.get("AllowHeaders")),
        ("Access-Control-Max-Age", spec.get("MaxAge")),
        ("Access-Control-Allow-Credentials", "'true'" if spec.get("AllowCredentials") else None),
    ):
        if value is not None:
            text = str(value)
            headers[name] = text[1:-1] if text.startswith("'") and text.endswith("'") else text
    return Answer(200, headers, b"{}\n")


def iam_pattern_matches(pattern: str, arn: str) -> bool:
    """An IAM resource pattern: ``*`` any characters (``/`` included), ``?`` any one; nothing
    else is special (unlike fnmatch, ``[`` is a plain character)."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, arn, re.DOTALL) is not None


def policy_allows(policy: dict[str, Any], method_arn: str) -> bool:
    """IAM evaluation as API Gateway applies it: an explicit Deny wins, then any Allow."""
    allowed = False
    for statement in policy.get("policyDocument", {}).get("Statement", []):
        resources = statement.get("Resource", [])
        resources = [resources] if isinstance(resources, str) else resources
        if any(iam_pattern_matches(pattern, method_arn) for pattern in resources):
            if statement.get("Effect") == "Deny":
                return False
            allowed = allowed or statement.get("Effect") == "Allow"
    return allowed


def authorizer_outcome(answer: dict[str, Any], event: dict[str, Any]) -> str:
    """What API Gateway makes of an authorizer's answer for this event's route: ``allow``,
    ``deny`` (403) or ``unauthorized`` (401). HTTP API simple responses deny with a context and
    refuse without one; IAM policies are evaluated against the event's method ARN."""
    if "isAuthorized" in answer:
        if answer["isAuthorized"]:
            return "allow"
        return "deny" if "context" in answer else "unauthorized"
    return "allow" if policy_allows(answer, event.get("methodArn") or event["routeArn"]) else "deny"


class Gateway:
    def __init__(self, template: Template, handlers: dict[str, Handler]) -> None:
        self.template = template
        self.stage = template.stage()
        self.routes = template.routes()
        self.authorizers = template.authorizers()
        self._table = RouteTable(route.key for route in self.routes)
        self._by_key = {route.key: route for route in self.routes}
        for key in self.unlisted_routes():
            logger.warning(
                "route %s uses an authorizer but ROUTE_SCOPES does not list it: its requests are "
                "denied, and a TOKEN authorizer's cached policy is not guaranteed to leave it out",
                key,
            )
        self.handlers = handlers
        self._cache: dict[tuple[str, ...], tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self.clock: Callable[[], float] = time.monotonic
        self.responses: dict[str, Any] = template.evaluate(
            template.api().get("GatewayResponses") or {}
        )
        self.cors: Any = template.evaluate(template.api().get("Cors"))

    def _answer(
        self,
        response_type: str,
        message: str,
        method: str,
        authorizer: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        context = {"httpMethod": method} | {
            f"authorizer.{k}": v for k, v in (authorizer or {}).items()
        }
        return gateway_response(self.responses, response_type, message, context, headers)

    def unlisted_routes(self) -> list[str]:
        """Routes guarded by an authorizer whose ROUTE_SCOPES does not list them. An authorizer
        decides for the routes it knows: every guarded route must be in its table."""
        unlisted = []
        for route in self.routes:
            if route.authorizer is None:
                continue
            function = self.authorizers[route.authorizer].function
            table = json.loads(self.template.environment(function).get("ROUTE_SCOPES") or "{}")
            if RouteTable(table).find(route.key) is None:
                unlisted.append(route.key)
        return unlisted

    def _methods_at(self, path: str) -> list[str]:
        """The methods the template declares on the resource ``path`` selects."""
        methods = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")
        routes = [route for m in methods if (route := self._route(m, path)) is not None]
        return [route.method for route in routes if route.path == routes[0].path]

    def _route(self, method: str, path: str) -> Route | None:
        """The route API Gateway selects (tokengate.routes: the most specific match)."""
        selected = self._table.select(method, path)
        return None if selected is None else self._by_key[selected.key]

    def handle(
        self, method: str, target: str, headers: dict[str, str], body: bytes, peer: str
    ) -> Answer:
        parts = urlsplit(target)
        path = parts.path
        route = self._route(method, path)
        if route is None and method == "OPTIONS" and (methods := self._methods_at(path)):
            preflight = sam_cors_preflight(self.cors, methods)
            if preflight is not None:
                return preflight
        if route is None:
            return self._answer(
                "MISSING_AUTHENTICATION_TOKEN",
                "Missing Authentication Token",
                method,
                None,
                headers,
            )
        event = self._proxy_event(route, method, path, parts.query, headers, body, peer)
        if route.authorizer:
            denied = self._authorize(self.authorizers[route.authorizer], event, headers)
            if denied is not None:
                return denied
        result = self.handlers[route.function](event, LambdaContext(route.function))
        out_headers = {k: str(v) for k, v in (result.get("headers") or {}).items()}
        raw = result.get("body") or ""
        payload = base64.b64decode(raw) if result.get("isBase64Encoded") else str(raw).encode()
        return Answer(int(result.get("statusCode", 200)), out_headers, payload)

    def _proxy_event(
        self,
        route: Route,
        method: str,
        path: str,
        query: str,
        headers: dict[str, str],
        body: bytes,
        peer: str,
    ) -> dict[str, Any]:
        pairs = parse_qsl(query, keep_blank_values=True)
        multi: dict[str, list[str]] = {}
        for k, v in pairs:
            multi.setdefault(k, []).append(v)
        try:
            text, encoded = body.decode("utf-8"), False
        except UnicodeDecodeError:
            text, encoded = base64.b64encode(body).decode(), True
        return {
            "resource": route.path,
            "path": path,
            "httpMethod": method,
            "headers": headers or None,
            "multiValueHeaders": {k: [v] for k, v in headers.items()} or None,
            "queryStringParameters": {k: v[-1] for k, v in multi.items()} or None,
            "multiValueQueryStringParameters": multi or None,
            "pathParameters": None,
            "stageVariables": None,
            "requestContext": {
                "resourcePath": route.path,
                "httpMethod": method,
                "path": f"/{self.stage}{path}",
                "stage": self.stage,
                "apiId": API_ID,
                "accountId": ACCOUNT,
                "requestId": str(uuid.uuid4()),
                "requestTimeEpoch": int(time.time() * 1000),
                "protocol": "HTTP/1.1",
                "domainName": headers.get("Host", "127.0.0.1"),
                "identity": {"sourceIp": peer, "userAgent": headers.get("User-Agent")},
            },
            "body": text if body else None,
            "isBase64Encoded": encoded,
        }

    def method_arn(self, method: str, path: str) -> str:
        return f"arn:aws:execute-api:us-east-1:{ACCOUNT}:{API_ID}/{self.stage}/{method}{path}"

    def _authorize(
        self, auth: Authorizer, event: dict[str, Any], headers: dict[str, str]
    ) -> Answer | None:
        unauthorized = self._answer(
            "UNAUTHORIZED", "Unauthorized", event["httpMethod"], None, headers
        )
        identity = header(event, auth.header)
        if not identity or (auth.validation and not re.fullmatch(auth.validation, identity)):
            return unauthorized
        method_arn = self.method_arn(event["httpMethod"], event["path"])
        # The cache key is every identity source's value: the header, and for REQUEST
        # authorizers the context variables the template lists (e.g. httpMethod, path).
        context = event["requestContext"]
        key = (auth.name, identity, *(str(context.get(name, "")) for name in auth.context))
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None and cached[0] > self.clock():
            policy = cached[1]
        else:
            if auth.payload_type == "TOKEN":
                auth_event: dict[str, Any] = {
                    "type": "TOKEN",
                    "authorizationToken": identity,
                    "methodArn": method_arn,
                }
            else:
                auth_event = {"type": "REQUEST", "methodArn": method_arn} | {
                    k: event[k]
                    for k in (
                        "resource",
                        "path",
                        "httpMethod",
                        "headers",
                        "multiValueHeaders",
                        "queryStringParameters",
                        "multiValueQueryStringParameters",
                        "pathParameters",
                        "stageVariables",
                        "requestContext",
                    )
                }
            try:
                policy = self.handlers[auth.function](auth_event, LambdaContext(auth.function))
            except Exception as exc:  # noqa: BLE001 - API Gateway maps any other failure to 500
                if str(exc) == "Unauthorized":
                    return unauthorized
                return self._answer(
                    "AUTHORIZER_CONFIGURATION_ERROR",
                    "Internal server error",
                    event["httpMethod"],
                    None,
                    headers,
                )
            if auth.ttl > 0:
                with self._lock:
                    self._cache[key] = (self.clock() + auth.ttl, policy)
        if not policy_allows(policy, method_arn):
            return self._answer(
                "ACCESS_DENIED",
                "User is not authorized to access this resource",
                event["httpMethod"],
                {"principalId": policy.get("principalId"), **(policy.get("context") or {})},
                headers,
            )
        event["requestContext"]["authorizer"] = {
            "principalId": policy.get("principalId"),
            **(policy.get("context") or {}),
        }
        return None


IDLE_SECONDS = 60  # a connection that sends nothing this long is closed, never a stuck thread


class _BadRequest(Exception):
    def __init__(self, answer: Answer) -> None:
        self.answer = answer


def _body_length(values: list[str], too_large: Answer) -> int:
    """The one ``Content-Length`` a request may carry: digits only, every copy the same. Framing
    errors get the HTTP layer's built-in ``{"message": ...}``: such a request never reaches API
    Gateway's own responses; an oversized body gets its REQUEST_TOO_LARGE response."""
    if not values:
        return 0
    if len(set(values)) != 1 or not re.fullmatch(r"[0-9]+", values[0].strip()):
        raise _BadRequest(_gateway_error(400, "Bad Request: invalid Content-Length"))
    length = int(values[0])
    if length > MAX_BODY:
        raise _BadRequest(too_large)
    return length


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that goes away mid-request is not the stack's failure: one line, no traceback.
        error = sys.exc_info()[1]
        print(f"local API: connection from {client_address[0]} ended: {error!r}", file=sys.stderr)


def serve(gateway: Gateway, port: int) -> ThreadingHTTPServer:
    """The HTTP side: every request, whatever its method, path or framing, gets an answer shaped
    like API Gateway's (JSON ``{"message": ...}`` for the gateway's own errors)."""

    class RequestHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        default_request_version = "HTTP/1.1"  # answers carry a status line, even to garbage
        timeout = IDLE_SECONDS

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in separate writes: without this, Nagle's algorithm and
            # delayed ACKs hold every keep-alive response for ~40 ms.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def __getattr__(self, name: str) -> Any:
            # Any method (HEAD, OPTIONS, an unknown verb) goes to the gateway, which answers as
            # API Gateway does for a method no route declares.
            if name.startswith("do_"):
                return self._dispatch
            raise AttributeError(name)

        def _dispatch(self) -> None:
            try:
                if "Transfer-Encoding" in self.headers:
                    raise _BadRequest(_gateway_error(411, "Length Required"))
                too_large = gateway_response(
                    gateway.responses,
                    "REQUEST_TOO_LARGE",
                    "Request Entity Too Large",
                    {},
                    dict(self.headers.items()),
                )
                length = _body_length(self.headers.get_all("Content-Length") or [], too_large)
            except _BadRequest as bad:
                # The body's end is unknown: answer and close rather than read the next request
                # from the middle of this one.
                self.close_connection = True
                self._send(bad.answer, close=True)
                return
            body = self.rfile.read(length) if length else b""
            if len(body) < length:  # the client closed its side before sending the whole body
                self.close_connection = True
                return
            headers = dict(self.headers.items())
            try:
                answer = gateway.handle(
                    self.command, self.path, headers, body, self.client_address[0]
                )
            except Exception:  # noqa: BLE001 - as API Gateway: a failed integration is a 502
                answer = _gateway_error(502, "Internal server error")
            self._send(answer)

        def _send(self, answer: Answer, close: bool = False) -> None:
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            if close:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(answer.body)

        def send_error(
            self, code: int, message: str | None = None, explain: str | None = None
        ) -> None:
            # What the standard library would answer with an HTML page (a malformed request
            # line, oversized headers, an unsupported HTTP version): the gateway's JSON instead.
            self.close_connection = True
            phrase = self.responses.get(code, ("Error",))[0]
            self._send(_gateway_error(code, phrase), close=True)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # request lines carry no tokens, but the handlers already log each decision

    return _Server(("127.0.0.1", port), RequestHandler)
