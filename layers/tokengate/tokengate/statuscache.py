"""The authorizers' copy of the published status list: fetched over HTTP like the JWKS (the same
injected fetcher, so the same transport, deadline and size cap), verified with our JWKS, cached.

The warm path compares one clock reading with the last fetch: while the list is younger than
``refresh`` (15 s) it answers from memory. Past that, one caller refreshes it within a short
deadline (``fetch_seconds``) and everyone keeps the last good list meanwhile; a failed refresh is
retried every ``STALE_RETRY_SECONDS``. A list older than ``max_age`` (300 s) is no longer trusted:
decisions fail closed (``status_list_stale``) and each such refusal counts ``StatusListStale``.
A list older than the one held (by ``iat``) never replaces it: a replayed or cached older answer
cannot un-revoke a session.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from .budget import Budget
from .emf import EmfCounter
from .errors import DependencyUnavailableError, InvalidTokenError
from .jwks import JwksFetcher
from .log import get_logger
from .statuslist import KeySource, StatusListView, verify_status_list

Clock = Callable[[], float]

DEFAULT_REFRESH_SECONDS = 15
DEFAULT_MAX_AGE_SECONDS = 300
FETCH_SECONDS = 1.0
STALE_RETRY_SECONDS = 5.0

logger = get_logger("tokengate.statuslist")


class StatusListCache:
    def __init__(
        self,
        url: str,
        uri: str,
        fetcher: JwksFetcher,
        keys: KeySource,
        clock: Clock = time.time,
        refresh: float = DEFAULT_REFRESH_SECONDS,
        max_age: float = DEFAULT_MAX_AGE_SECONDS,
        budget: Budget | None = None,
        metrics: EmfCounter | None = None,
        fetch_seconds: float = FETCH_SECONDS,
        read_bits: bool = True,
    ) -> None:
        """``read_bits=False``: the product claim only (see :func:`verify_status_list`)."""
        self.url = url  # where it is fetched
        self.uri = uri  # what the tokens name (the list's sub)
        self._fetcher = fetcher
        self._keys = keys
        self._clock = clock
        self._refresh = refresh
        self._max_age = max_age
        self._budget = budget or Budget()
        self._metrics = metrics
        self._fetch_seconds = fetch_seconds
        self._read_bits = read_bits
        # The verified copy at hand, and until when it answers without a refresh (read by the
        # authorizers' warm path directly).
        self.held: StatusListView | None = None
        self.fresh_until = float("-inf")
        self._body = b""  # the document behind the view: an unchanged one is not verified again
        self._fetched_at = float("-inf")
        self._retry_at = float("-inf")
        self._lock = threading.Lock()

    def view(self) -> StatusListView:
        """The current list; DependencyUnavailableError once none younger than max_age."""
        view = self.held
        if view is not None and self._clock() - self._fetched_at < self._refresh:
            return view
        return self._refreshed()

    def prefetch(self) -> bool:
        with self._lock:
            return self._fetch(self._clock())

    def _refreshed(self) -> StatusListView:
        now = self._clock()
        # Without a list every caller may try (a failed fetch at a cold start must not refuse
        # everyone for the retry window); with one, a failed refresh is retried after a pause.
        if self.held is None or now >= self._retry_at:
            # Without a list, wait (within the budget) for a refresh in progress; with one,
            # never wait: the last good list answers while another caller refreshes.
            wait = max(self._budget.deadline().remaining(), 0.0) if self.held is None else 0.0
            if self._lock.acquire(timeout=wait) if wait else self._lock.acquire(blocking=False):
                try:
                    if self._clock() - self._fetched_at >= self._refresh:
                        self._fetch(now)
                finally:
                    self._lock.release()
        view = self.held
        if view is None or self._clock() - self._fetched_at >= self._max_age:
            if self._metrics is not None:
                self._metrics.count("StatusListStale")
            raise DependencyUnavailableError("status_list_stale", "no status list young enough")
        return view

    def _fetch(self, now: float) -> bool:
        try:
            with self._budget.within(self._fetch_seconds):
                body = self._fetcher.fetch(self.url)
            if body == self._body and self.held is not None and self.held.exp > now:
                view = self.held  # the same signed document: verified already
            else:
                view = verify_status_list(
                    body.decode("ascii"), self._keys, self.uri, now, read_bits=self._read_bits
                )
            if self.held is not None and view.iat < self.held.iat:
                raise InvalidTokenError("rollback", "older than the list held")
        except (DependencyUnavailableError, InvalidTokenError, UnicodeDecodeError) as exc:
            self._retry_at = now + STALE_RETRY_SECONDS
            reason = getattr(exc, "reason", "not_ascii")
            logger.warning(
                "status list refresh failed",
                extra={"url": self.url, "reason": reason, "stale": self.held is not None},
            )
            if self._metrics is not None:
                self._metrics.count("StatusListRefreshFailed", reason=reason)
            return False
        self.held = view
        self._body = body
        self._fetched_at = now
        self.fresh_until = now + self._refresh
        self._retry_at = float("-inf")
        return True
