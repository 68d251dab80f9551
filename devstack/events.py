"""API Gateway events (REST proxy requests and authorizer events): one builder for the sample
events, the tests and the tools."""

from __future__ import annotations

from typing import Any

from tokengate.exchange import ACCESS_TOKEN, GRANT_TYPE

ACCOUNT = "123456789012"
API_ID = "local"
ARN_BASE = f"arn:aws:execute-api:us-east-1:{ACCOUNT}:{API_ID}/v1"


def request_context(path: str, method: str) -> dict[str, Any]:
    return {
        "resourcePath": path,
        "httpMethod": method,
        "path": f"/v1{path}",
        "stage": "v1",
        "apiId": API_ID,
        "accountId": ACCOUNT,
        "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
        "protocol": "HTTP/1.1",
        "domainName": "127.0.0.1",
        "identity": {"sourceIp": "127.0.0.1"},
    }


def proxy_event(
    method: str,
    path: str,
    body: str | None = None,
    headers: dict[str, str] | None = None,
    authorizer: dict[str, Any] | None = None,
) -> dict[str, Any]:
    ctx = request_context(path, method) | ({"authorizer": authorizer} if authorizer else {})
    return {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": headers or {},
        "multiValueHeaders": {k: [v] for k, v in (headers or {}).items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": ctx,
        "body": body,
        "isBase64Encoded": False,
    }


def exchange_body(token: str, **extra: str) -> str:
    """A form-encoded RFC 8693 request body (values as given: the samples hold placeholders)."""
    params = {
        "grant_type": GRANT_TYPE,
        "subject_token": token,
        "subject_token_type": ACCESS_TOKEN,
    } | extra
    return "&".join(f"{k}={v}" for k, v in params.items())


def authorizer_event(
    kind: str,
    token: str | None,
    method: str = "GET",
    path: str = "/whoami",
    arn_base: str = ARN_BASE,
    resource: str | None = None,
) -> dict[str, Any]:
    """``kind``: ``token`` (REST TOKEN), ``request`` (REST REQUEST) or ``http`` (HTTP API 2.0).

    ``resource``: the route API Gateway selected (``/orders/{id}``), ``path`` when omitted. HTTP
    API events list the route key among their identity sources, as the README asks."""
    value = f"Bearer {token}" if token is not None else None
    arn = f"{arn_base}/{method}{path}"
    resource = resource or path
    if kind == "token":
        return {"type": "TOKEN", "authorizationToken": value or "", "methodArn": arn}
    headers = {"Authorization": value} if value else {}
    if kind == "request":
        return {
            "type": "REQUEST",
            "methodArn": arn,
            "resource": resource,
            "path": path,
            "httpMethod": method,
            "headers": headers,
            "multiValueHeaders": {k: [v] for k, v in headers.items()},
            "queryStringParameters": {},
            "pathParameters": {},
            "stageVariables": {},
            "requestContext": request_context(path, method) | {"resourcePath": resource},
        }
    if kind != "http":
        raise ValueError(f"unknown authorizer event kind {kind!r}")
    return {
        "version": "2.0",
        "type": "REQUEST",
        "routeArn": arn,
        "identitySource": [value, f"{method} {resource}"] if value else [],
        "routeKey": f"{method} {resource}",
        "rawPath": f"/v1{path}",
        "rawQueryString": "",
        "headers": {k.lower(): v for k, v in headers.items()},
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": API_ID,
            "stage": "v1",
            "routeKey": f"{method} {resource}",
            "http": {"method": method, "path": f"/v1{path}", "sourceIp": "127.0.0.1"},
        },
    }
