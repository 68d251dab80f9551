"""An API Gateway (REST, Lambda proxy) stand-in on loopback, driven by ``template.yaml``.

Requests become API Gateway-shaped events for the real handlers; routes with an authorizer are
first sent through it as API Gateway does: no or malformed identity → 401 without calling it;
``Unauthorized`` → 401; a policy that does not allow the method ARN → 403; results cached per
identity for the template's ``ReauthorizeEvery``. API Gateway's own answers (no such route, 401,
403, an authorizer failure) are the template's ``GatewayResponses`` (:func:`gateway_response`).
"""

from __future__ import annotations

import base64
import fnmatch
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tokengate.apigw import header

from .events import ACCOUNT, API_ID
from .template import Authorizer, Handler, Route, Template

MAX_BODY = 10 * 1024 * 1024  # API Gateway REST payload limit


class LambdaContext:
    """Enough of the Lambda context object for Powertools."""

    function_name = "local"
    function_version = "$LATEST"
    memory_limit_in_mb = 1024
    invoked_function_arn = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:local"

    def __init__(self, function_name: str = "local") -> None:
        self.function_name = function_name
        self.aws_request_id = str(uuid.uuid4())

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


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
    responses: dict[str, Any], response_type: str, message: str, context: dict[str, Any]
) -> Answer:
    """API Gateway's own answer of ``response_type``, as the template's ``GatewayResponses``
    define it: the type's entry, else ``DEFAULT_4XX``/``DEFAULT_5XX`` by status, else API
    Gateway's built-in ``{"message": ...}``. Header values are static ('quoted'); ``$context``
    variables in the body are filled from ``context`` (keys as after ``$context.``), an unknown
    one with nothing, as API Gateway does."""
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
        if not (value.startswith("'") and value.endswith("'")):
            raise ValueError(f"gateway response header {name}: only static values are served")
        headers[name] = value[1:-1]
    return Answer(status, headers, body.encode())


def policy_allows(policy: dict[str, Any], method_arn: str) -> bool:
    """IAM evaluation as API Gateway applies it: an explicit Deny wins, then any Allow."""
    allowed = False
    for statement in policy.get("policyDocument", {}).get("Statement", []):
        resources = statement.get("Resource", [])
        resources = [resources] if isinstance(resources, str) else resources
        if any(fnmatch.fnmatchcase(method_arn, pattern) for pattern in resources):
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
        self.handlers = handlers
        self._cache: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self.clock: Callable[[], float] = time.monotonic
        self.responses: dict[str, Any] = template.api().get("GatewayResponses") or {}

    def _answer(
        self,
        response_type: str,
        message: str,
        method: str,
        authorizer: dict[str, Any] | None = None,
    ) -> Answer:
        context = {"httpMethod": method} | {
            f"authorizer.{k}": v for k, v in (authorizer or {}).items()
        }
        return gateway_response(self.responses, response_type, message, context)

    def _route(self, method: str, path: str) -> Route | None:
        for route in self.routes:
            if route.method in (method, "ANY") and route.pattern.match(path):
                return route
        return None

    def handle(
        self, method: str, target: str, headers: dict[str, str], body: bytes, peer: str
    ) -> Answer:
        parts = urlsplit(target)
        path = parts.path
        route = self._route(method, path)
        if route is None:
            return self._answer(
                "MISSING_AUTHENTICATION_TOKEN", "Missing Authentication Token", method
            )
        event = self._proxy_event(route, method, path, parts.query, headers, body, peer)
        if route.authorizer:
            denied = self._authorize(self.authorizers[route.authorizer], event)
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

    def _authorize(self, auth: Authorizer, event: dict[str, Any]) -> Answer | None:
        unauthorized = self._answer("UNAUTHORIZED", "Unauthorized", event["httpMethod"])
        identity = header(event, auth.header)
        if not identity or (auth.validation and not re.fullmatch(auth.validation, identity)):
            return unauthorized
        method_arn = self.method_arn(event["httpMethod"], event["path"])
        key = (auth.name, identity)
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
                    "AUTHORIZER_CONFIGURATION_ERROR", "Internal server error", event["httpMethod"]
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
            )
        event["requestContext"]["authorizer"] = {
            "principalId": policy.get("principalId"),
            **(policy.get("context") or {}),
        }
        return None


def serve(gateway: Gateway, port: int) -> ThreadingHTTPServer:
    class RequestHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in separate writes: without this, Nagle's algorithm and
            # delayed ACKs hold every keep-alive response for ~40 ms.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def _dispatch(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                answer = _gateway_error(413, "Request Entity Too Large")
            else:
                body = self.rfile.read(length) if length else b""
                headers = {k: v for k, v in self.headers.items()}
                try:
                    answer = gateway.handle(
                        self.command, self.path, headers, body, self.client_address[0]
                    )
                except Exception:  # noqa: BLE001 - as API Gateway: a failed integration is a 502
                    answer = _gateway_error(502, "Internal server error")
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _dispatch

        def log_message(self, format: str, *args: Any) -> None:
            pass  # request lines carry no tokens, but the handlers already log each decision

    server = ThreadingHTTPServer(("127.0.0.1", port), RequestHandler)
    server.daemon_threads = True
    return server
