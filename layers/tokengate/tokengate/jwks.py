"""Remote JWKS: a bounded fetcher and a cache with an unknown-``kid`` cooldown.

The cache answers from memory while fresh (warm path: no network). An unknown ``kid`` may trigger
one refetch per cooldown window, so a flood of random ``kid``s costs at most one request per
window. A failed refresh keeps the last good key set (up to ``max_stale``), so a JWKS outage does
not take the service down with it.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable
from typing import Protocol
from urllib.parse import urlsplit

from .errors import ConfigurationError, DependencyUnavailableError, InvalidTokenError, Reason
from .jws import strict_json_object
from .keys import AsymmetricKey, keys_from_jwks

Clock = Callable[[], float]

MAX_JWKS_BYTES = 64 * 1024
MAX_CACHE_SECONDS = 600.0
MIN_COOLDOWN_SECONDS = 10.0
MAX_TIMEOUT_SECONDS = 3.0


class JwksFetcher(Protocol):
    def fetch(self, url: str) -> bytes:
        """Return the body of a 200 answer, or raise :class:`DependencyUnavailableError`."""
        ...


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_jwks_url(url: str) -> str:
    """https only; plain http only to a loopback host (local development)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and is_loopback_host(parts.hostname):
        return url
    raise ConfigurationError(f"a JWKS URL must be https (or http on loopback): {url!r}")


class UrllibJwksFetcher:
    """GET with a total deadline, no redirects, no proxies for loopback, and a size cap."""

    def __init__(
        self, timeout: float = MAX_TIMEOUT_SECONDS, max_bytes: int = MAX_JWKS_BYTES
    ) -> None:
        if not 0 < timeout <= MAX_TIMEOUT_SECONDS:
            raise ConfigurationError("the JWKS timeout must be within (0, 3] seconds")
        self.timeout = timeout
        self.max_bytes = max_bytes
        self._opener: object | None = None

    def _open(self, url: str):  # type: ignore[no-untyped-def]
        # urllib is imported here: it costs tens of milliseconds and warm calls never need it.
        import urllib.request

        class _NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
                return None  # a 3xx then surfaces as an HTTPError

        if self._opener is None:
            self._opener = urllib.request.build_opener(_NoRedirect)
        # The scheme was checked by check_jwks_url: https, or http on loopback only.
        request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
        return self._opener.open(request, timeout=self.timeout)  # type: ignore[attr-defined]

    def fetch(self, url: str) -> bytes:
        check_jwks_url(url)
        deadline = time.monotonic() + self.timeout
        try:
            with self._open(url) as response:
                if response.status != 200:
                    raise DependencyUnavailableError(
                        "jwks_unavailable", f"status {response.status}"
                    )
                body = bytearray()
                while len(body) <= self.max_bytes:
                    if time.monotonic() > deadline:
                        raise DependencyUnavailableError("jwks_unavailable", "deadline passed")
                    chunk = response.read1(16384)
                    if not chunk:
                        return bytes(body)
                    body += chunk
                raise DependencyUnavailableError("jwks_unavailable", "response too large")
        except DependencyUnavailableError:
            raise
        except Exception as exc:
            raise DependencyUnavailableError("jwks_unavailable", type(exc).__name__) from exc


class JwksCache:
    """Keys of one JWKS URL, refreshed lazily, with a cooldown on unknown-``kid`` refetches."""

    def __init__(
        self,
        url: str,
        fetcher: JwksFetcher,
        clock: Clock = time.time,
        max_age: float = MAX_CACHE_SECONDS,
        cooldown: float = MIN_COOLDOWN_SECONDS,
        max_stale: float = 3600.0,
    ) -> None:
        if not 0 < max_age <= MAX_CACHE_SECONDS:
            raise ConfigurationError("the JWKS cache time must be within (0, 600] seconds")
        if cooldown < MIN_COOLDOWN_SECONDS:
            raise ConfigurationError("the JWKS refetch cooldown must be at least 10 seconds")
        self.url = check_jwks_url(url)
        self._fetcher = fetcher
        self._clock = clock
        self._max_age = max_age
        self._cooldown = cooldown
        self._max_stale = max_stale
        self._keys: dict[str, AsymmetricKey] | None = None
        self._fetched_at = float("-inf")
        self._attempted_at = float("-inf")
        self._lock = threading.Lock()
        self.fetch_count = 0

    def get(self, kid: str) -> AsymmetricKey:
        """The key for ``kid``; InvalidTokenError if unknown, DependencyUnavailableError if
        no key set could be had at all."""
        now = self._clock()
        keys = self._keys
        if keys is not None and now - self._fetched_at < self._max_age and kid in keys:
            return keys[kid]
        with self._lock:
            if self._keys is None or now - self._fetched_at >= self._max_age:
                self._refresh(now)
            if self._keys is None or now - self._fetched_at >= self._max_stale:
                raise DependencyUnavailableError("jwks_unavailable", "no key set available")
            if kid not in self._keys:
                self._refresh(now)  # a rotated-in key, at most once per cooldown window
            key = self._keys.get(kid)
        if key is None:
            raise InvalidTokenError(Reason.UNKNOWN_KEY, "kid not in the JWKS")
        return key

    def _refresh(self, now: float) -> None:
        if now - self._attempted_at < self._cooldown:
            return  # at most one request per cooldown window, failed or not
        self._attempted_at = now
        self.fetch_count += 1
        try:
            document = strict_json_object(self._fetcher.fetch(self.url))
            keys = keys_from_jwks(document)
        except (DependencyUnavailableError, ValueError):
            return  # keep the last good key set; get() decides whether it may still serve
        self._keys = keys
        self._fetched_at = now
