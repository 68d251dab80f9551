"""Bounded outbound HTTPS GETs (the Supabase JWKS and the optional session check).

https only (plain http only to a loopback host, for local development), no redirects, a total
deadline rather than a per-read timeout, and a size cap. Every transport failure is one
:class:`DependencyUnavailableError`; urllib is imported on first use, off the warm path.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Mapping
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from .errors import ConfigurationError, DependencyUnavailableError

MAX_TIMEOUT_SECONDS = 3.0


class HttpAnswer(NamedTuple):
    status: int
    body: bytes


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str, what: str) -> str:
    """https only; plain http only to a loopback host (local development)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and is_loopback_host(parts.hostname):
        return url
    raise ConfigurationError(f"{what} must be https (or http on loopback): {url!r}")


class BoundedGet:
    """GET with a total deadline, no redirects and a size cap."""

    def __init__(self, timeout: float = MAX_TIMEOUT_SECONDS, max_bytes: int = 64 * 1024) -> None:
        if not 0 < timeout <= MAX_TIMEOUT_SECONDS:
            raise ConfigurationError("outbound timeouts must be within (0, 3] seconds")
        self.timeout = timeout
        self.max_bytes = max_bytes
        self._opener: Any = None

    def _opener_once(self) -> Any:
        if self._opener is None:
            import urllib.request

            class NoRedirect(urllib.request.HTTPRedirectHandler):
                def redirect_request(self, *args: Any, **kwargs: Any) -> None:
                    return None  # a 3xx then surfaces as an HTTPError with its status

            self._opener = urllib.request.build_opener(NoRedirect)
        return self._opener

    def get(self, url: str, headers: Mapping[str, str], reason: str) -> HttpAnswer:
        """The status and body (bodies are read for 2xx only); DependencyUnavailableError(reason)
        when the transport fails, the deadline passes or the body is too large."""
        import urllib.error
        import urllib.request

        deadline = time.monotonic() + self.timeout
        request = urllib.request.Request(url, headers=dict(headers))  # noqa: S310 - checked by check_url
        try:
            with self._opener_once().open(request, timeout=self.timeout) as response:
                body = bytearray()
                while len(body) <= self.max_bytes:
                    if time.monotonic() > deadline:
                        raise DependencyUnavailableError(reason, "deadline passed")
                    chunk = response.read1(16384)
                    if not chunk:
                        return HttpAnswer(response.status, bytes(body))
                    body += chunk
                raise DependencyUnavailableError(reason, "response too large")
        except urllib.error.HTTPError as error:
            error.close()
            return HttpAnswer(error.code, b"")
        except DependencyUnavailableError:
            raise
        except Exception as exc:  # any transport failure is the same outage
            raise DependencyUnavailableError(reason, type(exc).__name__) from exc
