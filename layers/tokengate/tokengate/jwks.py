"""Remote JWKS: a deadline-bounded fetcher and a cache with an unknown-``kid`` cooldown.

The cache answers from memory while fresh (warm path: no network). A failed fetch is retried once
at once (a network blip costs one more request, not a refusal). An unknown ``kid`` may trigger one
refetch per cooldown window, so a flood of random ``kid``s costs at most one request per window;
the cooldown applies to those refetches only, never after a failed fetch, so one blip at a cold
start does not refuse every caller for the window. A failed refresh keeps the last good key set
(up to ``max_stale``), so a JWKS outage does not take the service down with it.

Every failed refresh and every entry dropped from a fetched set (with its reason) is logged and
counted; key material never is.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

from .budget import Budget
from .emf import EmfCounter
from .errors import ConfigurationError, DependencyUnavailableError, InvalidTokenError, Reason
from .fetch import DocumentFetcher
from .jws import strict_json_object
from .keys import AsymmetricKey, usable_keys
from .log import get_logger
from .net import check_url

Clock = Callable[[], float]

MAX_JWKS_BYTES = 64 * 1024
MAX_CACHE_SECONDS = 600.0
MIN_COOLDOWN_SECONDS = 10.0
STALE_RETRY_SECONDS = 5.0  # how often an outage is re-probed while the last good keys serve
DEFAULT_PUBLISH_MAX_AGE = 300  # Cache-Control max-age of our own JWKS
MAX_PUBLISH_MAX_AGE = 86400

logger = get_logger("tokengate.jwks")


class JwksFetcher(Protocol):
    def fetch(self, url: str) -> bytes:
        """Return the body of a 200 answer, or raise :class:`DependencyUnavailableError`."""
        ...


def check_jwks_url(url: str) -> str:
    return check_url(url, "a JWKS URL")


class HttpJwksFetcher:
    """The JWKS over a :class:`DocumentFetcher`: within the budget (3 s at most), no redirects,
    64 KiB cap."""

    def __init__(self, documents: DocumentFetcher | None = None) -> None:
        self.documents = documents or DocumentFetcher(max_bytes=MAX_JWKS_BYTES)

    def fetch(self, url: str) -> bytes:
        check_jwks_url(url)
        return self.documents.fetch(url, "jwks_unavailable")


class JwksCache:
    """Keys of one JWKS URL, refreshed lazily, with a cooldown on unknown-``kid`` refetches.

    Callers wait for a refresh in progress only as long as their own budget allows; then they are
    answered from the keys at hand (or fail closed).
    """

    def __init__(
        self,
        url: str,
        fetcher: JwksFetcher,
        clock: Clock = time.time,
        max_age: float = MAX_CACHE_SECONDS,
        cooldown: float = MIN_COOLDOWN_SECONDS,
        max_stale: float = 3600.0,
        budget: Budget | None = None,
        metrics: EmfCounter | None = None,
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
        self._budget = budget or Budget()
        self._metrics = metrics  # the functions count as EMF lines; a CLI need not
        self._keys: dict[str, AsymmetricKey] | None = None
        self._fetched_at = float("-inf")
        self._unknown_kid_refetch_at = float("-inf")
        self._stale_retry_at = float("-inf")
        self._lock = threading.Lock()

    def get(self, kid: str) -> AsymmetricKey:
        """The key for ``kid``; InvalidTokenError if unknown, DependencyUnavailableError if
        no key set could be had at all."""
        keys = self._keys
        if keys is not None and self._clock() - self._fetched_at < self._max_age and kid in keys:
            return keys[kid]
        if not self._lock.acquire(timeout=max(self._budget.deadline().remaining(), 0.0)):
            # Another caller is refreshing and our budget ends first: answer from what we have.
            return self._answer(kid, self._clock())
        try:
            now = self._clock()
            refreshed = False
            if self._keys is None or (
                now - self._fetched_at >= self._max_age and now >= self._stale_retry_at
            ):
                refreshed = self._refresh(now, "expired" if self._keys is not None else "empty")
            if (
                not refreshed
                and self._keys is not None
                and kid not in self._keys
                and now - self._unknown_kid_refetch_at >= self._cooldown
            ):
                self._unknown_kid_refetch_at = now  # a rotated-in key, once per window
                self._refresh(now, "unknown_kid")
            return self._answer(kid, now)
        finally:
            self._lock.release()

    def prefetch(self) -> bool:
        """Load the key set now (a container's start); a failure is logged, not raised."""
        with self._lock:
            return self._refresh(self._clock(), "prefetch")

    def _answer(self, kid: str, now: float) -> AsymmetricKey:
        keys = self._keys
        if keys is None or now - self._fetched_at >= self._max_stale:
            raise DependencyUnavailableError("jwks_unavailable", "no key set available")
        key = keys.get(kid)
        if key is None:
            raise InvalidTokenError(Reason.UNKNOWN_KEY, "kid not in the JWKS")
        return key

    def _refresh(self, now: float, why: str) -> bool:
        failure = ""
        for _ in range(2):  # a failed fetch is retried once, at once
            try:
                keys, dropped = usable_keys(strict_json_object(self._fetcher.fetch(self.url)))
            except DependencyUnavailableError as exc:
                failure = exc.detail or exc.reason
                continue
            except ValueError:
                failure = "not a JWKS"
                continue
            for reason in dropped:
                logger.warning("JWKS entry dropped", extra={"url": self.url, "reason": reason})
                if self._metrics is not None:
                    self._metrics.count("JwksKeyDropped", reason=reason)
            self._keys = keys
            self._fetched_at = now
            return True
        self._stale_retry_at = now + STALE_RETRY_SECONDS
        logger.warning(
            "JWKS refresh failed",
            extra={"url": self.url, "trigger": why, "reason": failure, "stale": bool(self._keys)},
        )
        if self._metrics is not None:
            self._metrics.count("JwksRefreshFailed", trigger=why)
        return False
