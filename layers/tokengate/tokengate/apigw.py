"""API Gateway REST (payload 1.0) event and response helpers shared by the HTTP handlers.

Plain HTTP plumbing: it knows nothing of OAuth; each handler maps :class:`BodyError` to its own
answer."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def header(event: dict[str, Any], name: str) -> str | None:
    """A request header, case-insensitively (API Gateway keeps the client's casing)."""
    headers = event.get("headers")
    if not isinstance(headers, dict):
        return None
    wanted = name.lower()
    for key, value in headers.items():
        if isinstance(key, str) and key.lower() == wanted:
            return value if isinstance(value, str) else None
    return None


class BodyError(ValueError):
    """The request body is too large or not the base64 its event says it is."""


def body_bytes(event: dict[str, Any], max_bytes: int) -> bytes:
    """The request body, refused before any decoding work when its text is far over
    ``max_bytes`` (base64 grows a body by a third; callers check the decoded size)."""
    body = event.get("body") or ""
    if not isinstance(body, str) or len(body) > 2 * max_bytes:
        raise BodyError("The request body is too large.")
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise BodyError("The request body is not valid base64.") from exc
    return body.encode("utf-8")


def json_response(
    status: int, document: dict[str, Any], headers: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json", **(headers or {})},
        "body": json.dumps(document, separators=(",", ":")),
    }


def request_fields(event: dict[str, Any]) -> dict[str, str | None]:
    """Who asked, for a log line: API Gateway's request id (the access log's ``requestId``) and
    the caller's source IP, as API Gateway saw them."""
    context = event.get("requestContext")
    context = context if isinstance(context, dict) else {}
    identity = context.get("identity")
    identity = identity if isinstance(identity, dict) else {}
    request_id, source_ip = context.get("requestId"), identity.get("sourceIp")
    return {
        "request_id": request_id if isinstance(request_id, str) else None,
        "source_ip": source_ip if isinstance(source_ip, str) else None,
    }
