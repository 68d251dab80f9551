"""The time budget of one invocation, shared by every outbound call it makes.

A Lambda function that outlives its timeout is answered by API Gateway with a 502/504, never with
the designed 503 or ``Unauthorized``. So each handler opens a :class:`Budget` at entry from the
context's remaining time minus a safety margin; every outbound call (KMS, Secrets Manager, a JWKS
fetch, the session check) takes its :class:`Deadline` and gets only what is left. When the budget
is spent the call is not started: it fails as :class:`DependencyUnavailableError` with time to
answer.

The current deadline is kept in a context variable owned by the ``Budget`` object (built once per
container and injected into the collaborators): it is set on entry and reset on exit, so nothing
leaks from one invocation into the next, and concurrent threads each see their own.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

from .errors import DependencyUnavailableError

Clock = Callable[[], float]

# Kept back from the function's remaining time: enough to render the answer, log it and flush the
# metric after the last outbound call gave up.
SAFETY_MARGIN_SECONDS = 0.5
# Outside any invocation (a container's init phase, a script), one call's own cap applies.
UNBOUNDED_CALL_SECONDS = 3.0
# A container's start may prefetch keys within this (the init phase has 10 s in all).
PREFETCH_SECONDS = 1.5


class LambdaContext(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


class Deadline:
    """A point on a monotonic clock by which an outbound call must have answered."""

    __slots__ = ("_clock", "at")

    def __init__(self, at: float, clock: Clock = time.monotonic) -> None:
        self.at = at
        self._clock = clock

    @classmethod
    def after(cls, seconds: float, clock: Clock = time.monotonic) -> Deadline:
        return cls(clock() + seconds, clock)

    def remaining(self) -> float:
        return self.at - self._clock()

    def timeout(self, cap: float, reason: str) -> float:
        """Seconds one operation may take: ``cap``, or less if the budget ends sooner;
        DependencyUnavailableError(reason) once the budget is spent."""
        left = self.remaining()
        if left <= 0:
            raise DependencyUnavailableError(reason, "time budget spent")
        return min(cap, left)

    def earlier(self, seconds: float) -> Deadline:
        """This deadline, or ``seconds`` from now if that comes first."""
        return Deadline(min(self.at, self._clock() + seconds), self._clock)


class Budget:
    """The current invocation's deadline, for the collaborators built once per container."""

    def __init__(
        self,
        margin: float = SAFETY_MARGIN_SECONDS,
        unbounded: float = UNBOUNDED_CALL_SECONDS,
        clock: Clock = time.monotonic,
    ) -> None:
        self.margin = margin
        self._unbounded = unbounded
        self._clock = clock
        self._current: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar(
            "tokengate_deadline", default=None
        )

    def deadline(self) -> Deadline:
        """The open invocation's deadline; outside one, a fresh one-call cap."""
        current = self._current.get()
        return current if current is not None else Deadline.after(self._unbounded, self._clock)

    @contextmanager
    def invocation(self, context: LambdaContext) -> Iterator[Deadline]:
        """The budget of one Lambda invocation: its remaining time minus the safety margin."""
        seconds = context.get_remaining_time_in_millis() / 1000.0 - self.margin
        with self.within(seconds) as deadline:
            yield deadline

    @contextmanager
    def within(self, seconds: float) -> Iterator[Deadline]:
        deadline = Deadline.after(max(seconds, 0.0), self._clock)
        outer = self._current.get()
        if outer is not None and outer.at < deadline.at:
            deadline = outer  # a nested budget never extends the one around it
        token = self._current.set(deadline)
        try:
            yield deadline
        finally:
            self._current.reset(token)
