"""The time budget of one invocation, shared by every outbound call it makes.

A Lambda function that outlives its timeout is answered by API Gateway with a 502/504, never with
the designed 503 or ``Unauthorized``. So each handler opens a :class:`Budget` at entry from the
context's remaining time minus a safety margin; every outbound call (KMS, Secrets Manager, a JWKS
fetch, the session check) takes its :class:`Deadline` and gets only what is left. When the budget
is spent the call is not started: it fails as :class:`DependencyUnavailableError` with time to
answer.

The current deadline is kept per thread, in a slot owned by the ``Budget`` object (built once per
container and injected into the collaborators): it is set on entry and restored on exit, so
nothing leaks from one invocation into the next, and concurrent threads each see their own. (Per
thread, not per context: coroutines sharing a thread would share it; nothing here runs any.)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol, TypeVar

from .errors import DependencyUnavailableError

Clock = Callable[[], float]
E = TypeVar("E")
R = TypeVar("R")

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


class _Slot:
    """One thread's current deadline, or the Lambda context of an invocation whose deadline
    nothing has needed yet; None outside any."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: Deadline | LambdaContext | None = None


class _PerThread(threading.local):
    """Each thread's own slot, made on the thread's first use: reading ``slot`` is the one
    thread-local lookup an invocation makes, the slot's own reads and writes are plain."""

    def __init__(self) -> None:
        self.slot = _Slot()


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
        self._threads = _PerThread()

    def deadline(self) -> Deadline:
        """The open invocation's deadline; outside one, a fresh one-call cap."""
        slot = self._threads.slot
        current = slot.value
        if current is None:
            return Deadline.after(self._unbounded, self._clock)
        if type(current) is Deadline:
            return current
        # A context: read once, then fixed for the rest of the invocation (on the monotonic
        # clock, whatever the wall clock Lambda counts by does meanwhile). The window's exit
        # still restores what was there before it.
        deadline = self.from_context(current)  # type: ignore[arg-type]
        slot.value = deadline
        return deadline

    def from_context(self, context: LambdaContext) -> Deadline:
        """An invocation's deadline: its remaining time minus the margin. Lambda counts that time
        down to a fixed point, so reading it later gives the same deadline."""
        seconds = context.get_remaining_time_in_millis() / 1000.0 - self.margin
        return Deadline.after(max(seconds, 0.0), self._clock)

    def run(self, context: LambdaContext, function: Callable[[E], R], argument: E) -> R:
        """``function(argument)`` as one invocation: the handlers' one line. The same budget as
        :meth:`invocation`, in one call and with no object made, for the authorizers, which
        run in front of every API call and usually need no deadline at all."""
        slot = self._threads.slot
        # :meth:`_opened`, inline: outside any window (as in Lambda) the context itself. What
        # is restored is read after it, as an outer context it read is then a fixed deadline.
        value = context if slot.value is None else self._opened(context)
        before = slot.value
        slot.value = value
        try:
            return function(argument)
        finally:
            slot.value = before

    def invocation(self, context: LambdaContext) -> _Window:
        """The budget of one Lambda invocation: its remaining time minus the safety margin (a
        context manager; :meth:`deadline` reads it).

        The context is asked for its remaining time when a call first needs the deadline, not on
        entry: Lambda counts that time down to a fixed point, so the deadline is the same, and a
        warm decision that makes no outbound call does not pay for reading it."""
        return _Window(self._threads, self._opened(context))

    def within(self, seconds: float) -> _Window:
        """A window of ``seconds`` from now, never past the window around it (a context manager
        that yields its :class:`Deadline`)."""
        return _Window(self._threads, self._bounded(Deadline.after(max(seconds, 0.0), self._clock)))

    def _opened(self, context: LambdaContext) -> Deadline | LambdaContext:
        """What an invocation sets: its context, read when first needed; inside an open window
        (never so in Lambda), its deadline read now and never past that window."""
        if self._threads.slot.value is None:
            return context
        return self._bounded(self.from_context(context))

    def _bounded(self, deadline: Deadline) -> Deadline:
        """``deadline``, or the open window's if that comes first: a nested budget never
        extends the one around it."""
        if self._threads.slot.value is None:
            return deadline
        outer = self.deadline()
        return outer if outer.at < deadline.at else deadline


class _Window:
    """Sets the current deadline (or context) of the thread that enters it, and restores the one
    before on exit. A plain class rather than a generator-based context manager: it is cheap to
    open."""

    __slots__ = ("_before", "_slot", "_threads", "_value")

    def __init__(self, threads: _PerThread, value: Deadline | LambdaContext) -> None:
        self._threads = threads
        self._value = value

    def __enter__(self) -> Deadline | None:
        """The window's deadline for ``within``; None for an invocation (ask the budget)."""
        slot = self._slot = self._threads.slot
        self._before = slot.value
        slot.value = self._value
        return self._value if type(self._value) is Deadline else None

    def __exit__(self, *exc_info: object) -> None:
        self._slot.value = self._before
