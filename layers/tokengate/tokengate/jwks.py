"""Remote JWKS: a bounded fetcher and a cache with an unknown-``kid`` cooldown.

The cache answers from memory while fresh (warm path: no network). An unknown ``kid`` may trigger
one refetch per cooldown window, so a flood of random ``kid``s costs at most one request per
window. A failed refresh keeps the last good key set (up to ``max_stale``), so a JWKS outage does
not take the service down with it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

from .errors import ConfigurationError, DependencyUnavailableError, InvalidTokenError, Reason
from .http import MAX_TIMEOUT_SECONDS, BoundedGet, check_url
from .jws import strict_json_object
from .keys import AsymmetricKey, keys_from_jwks

Clock = Callable[[], float]

MAX_JWKS_BYTES = 64 * 1024
MAX_CACHE_SECONDS = 600.0
MIN_COOLDOWN_SECONDS = 10.0
DEFAULT_PUBLISH_MAX_AGE = 300  # Cache-Control max-age of our own JWKS
MAX_PUBLISH_MAX_AGE = 86400


class JwksFetcher(Protocol):
    def fetch(self, url: str) -> bytes:
        """Return the body of a 200 answer, or raise :class:`DependencyUnavailableError`."""
        ...


def check_jwks_url(url: str) -> str:
    return check_url(url, "a JWKS URL")


class UrllibJwksFetcher:
    """The JWKS over a :class:`BoundedGet`: 3 s deadline, no redirects, 64 KiB cap."""

    def __init__(
        self, timeout: float = MAX_TIMEOUT_SECONDS, max_bytes: int = MAX_JWKS_BYTES
    ) -> None:
        self._get = BoundedGet(timeout, max_bytes)

    def fetch(self, url: str) -> bytes:
        check_jwks_url(url)
        answer = self._get.get(url, {"Accept": "application/json"}, "jwks_unavailable")
        if answer.status != 200:
            raise DependencyUnavailableError("jwks_unavailable", f"status {answer.status}")
        return answer.body


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
        try:
            document = strict_json_object(self._fetcher.fetch(self.url))
            keys = keys_from_jwks(document)
        except (DependencyUnavailableError, ValueError):
            return  # keep the last good key set; get() decides whether it may still serve
        self._keys = keys
        self._fetched_at = now
