"""An API Gateway (REST, Lambda proxy) stand-in on loopback, driven by ``template.yaml``.

Requests become API Gateway-shaped events for the real handlers; routes with an authorizer are
first sent through it as API Gateway does: no or malformed identity → 401 without calling it;
``Unauthorized`` → 401; a policy that does not allow the method ARN → 403; results cached per
identity for the template's ``ReauthorizeEvery``.
"""

from __future__ import annotations

import base64
import fnmatch
import json
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

from .events import ACCOUNT, API_ID
from .lambda_runtime import LambdaContext as LambdaContext
from .template import Authorizer, Handler, Route, Template

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
            return _gateway_error(403, "Missing Authentication Token")
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
        unauthorized = _gateway_error(
            401, "Unauthorized", {"WWW-Authenticate": 'Bearer error="invalid_token"'}
        )
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
                return _gateway_error(500, "Internal server error")
            if auth.ttl > 0:
                with self._lock:
                    self._cache[key] = (self.clock() + auth.ttl, policy)
        if not policy_allows(policy, method_arn):
            return _gateway_error(403, "User is not authorized to access this resource")
        event["requestContext"]["authorizer"] = {
            "principalId": policy.get("principalId"),
            **(policy.get("context") or {}),
        }
        return None


IDLE_SECONDS = 60  # a connection that sends nothing this long is closed, never a stuck thread


class _BadRequest(Exception):
    def __init__(self, answer: Answer) -> None:
        self.answer = answer


def _body_length(values: list[str]) -> int:
    """The one ``Content-Length`` a request may carry: digits only, every copy the same."""
    if not values:
        return 0
    if len(set(values)) != 1 or not re.fullmatch(r"[0-9]+", values[0].strip()):
        raise _BadRequest(_gateway_error(400, "Bad Request: invalid Content-Length"))
    length = int(values[0])
    if length > MAX_BODY:
        raise _BadRequest(_gateway_error(413, "Request Entity Too Large"))
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
                length = _body_length(self.headers.get_all("Content-Length") or [])
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
