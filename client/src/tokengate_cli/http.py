"""Plain HTTP to the API (discovery, the token endpoint, ``call``) over the standard library.

No redirects are followed (a token must never be replayed to another host), every request has a
timeout, and every transport failure becomes one :class:`Unreachable` naming the host, never the
request (which may carry a token).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from . import trace
from .errors import Unreachable
from .urls import check_url

__all__ = ["Answer", "check_url", "request"]

TIMEOUT_SECONDS = 10.0
MAX_BODY_BYTES = 16 * 1024 * 1024


class Answer(NamedTuple):
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes

    def json(self) -> dict[str, Any] | None:
        try:
            value = json.loads(self.body)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def request(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    what: str = "the API",
    timeout: float = TIMEOUT_SECONDS,
) -> Answer:
    started = time.perf_counter()
    answer = _send(method, url, headers, body, what, timeout, started)
    trace.request_line(method, url, answer.status, time.perf_counter() - started)
    return answer


def _send(
    method: str,
    url: str,
    headers: Mapping[str, str] | None,
    body: bytes | None,
    what: str,
    timeout: float,
    started: float,
) -> Answer:
    prepared = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))  # noqa: S310 - URLs pass check_url
    try:
        with _OPENER.open(prepared, timeout=timeout) as response:
            return Answer(
                response.status,
                response.reason,
                list(response.headers.items()),
                response.read(MAX_BODY_BYTES),
            )
    except urllib.error.HTTPError as error:
        with error:
            return Answer(
                error.code,
                str(error.reason),
                list(error.headers.items()),
                error.read(MAX_BODY_BYTES),
            )
    except (OSError, ValueError) as exc:
        host = urlsplit(url).netloc
        reason = getattr(exc, "reason", None) or exc.__class__.__name__
        trace.request_line(method, url, "unreachable", time.perf_counter() - started)
        raise Unreachable(f"{what} at {host} could not be reached ({reason})") from exc
