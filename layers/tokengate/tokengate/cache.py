"""A loaded-once value (a secret, a key) refreshed after ``max_age``, last good kept on failure.

A caller waits for another's load only as long as its own time budget allows: then it is answered
with the last good value, or fails closed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from .budget import Budget
from .errors import DependencyUnavailableError

T = TypeVar("T")


class CachedValue(Generic[T]):
    """``get()`` loads on first use and after ``max_age``; if a reload fails, the last good value
    keeps serving; with none, the loader's DependencyUnavailableError propagates (fail closed)."""

    def __init__(
        self,
        load: Callable[[], T],
        max_age: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
        budget: Budget | None = None,
        reason: str = "dependency_unavailable",
    ) -> None:
        self._load = load
        self._budget = budget or Budget()
        self._reason = reason
        self._max_age = max_age
        self._clock = clock
        self._value: T | None = None
        self._loaded_at = float("-inf")
        self._lock = threading.Lock()

    def get(self) -> T:
        if self._value is not None and self._clock() - self._loaded_at < self._max_age:
            return self._value
        if not self._lock.acquire(timeout=max(self._budget.deadline().remaining(), 0.0)):
            if self._value is not None:
                return self._value  # another caller is reloading: the last good value serves
            raise DependencyUnavailableError(
                self._reason, "a load in progress outlasted the budget"
            )
        try:
            now = self._clock()
            if self._value is not None and now - self._loaded_at < self._max_age:
                return self._value
            try:
                self._value = self._load()
            except DependencyUnavailableError:
                if self._value is None:
                    raise
                self._loaded_at = now - self._max_age + 10.0  # retry in 10 s
                return self._value
            self._loaded_at = now
            return self._value
        finally:
            self._lock.release()
