"""What Lambda gives each invocation that one local process running every function must emulate.

In AWS each function runs in its own process, so its log records can only be its own. Locally the
five functions share one process and one ``logging`` tree: the standard-library records of the
token exchange and the authorizers propagate to the ``tokengate`` logger that Powertools configured
for the JWKS function, whose handler writes them as JSON lines and stamps them with the keys of the
last JWKS request it served. Here each invocation runs with its context in a context variable, and
every record created during it names the function and request that wrote it, as the Lambda
runtime's log filter does in AWS.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from .events import ACCOUNT

Handler = Callable[[dict[str, Any], Any], Any]


class LambdaContext:
    """Enough of the Lambda context object for the handlers and Powertools."""

    function_version = "$LATEST"
    memory_limit_in_mb = 1024

    def __init__(
        self,
        function_name: str = "local",
        timeout_ms: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.function_name = function_name
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{function_name}"
        self.aws_request_id = str(uuid.uuid4())
        self._clock = clock
        self._deadline = clock() + timeout_ms / 1000.0

    def get_remaining_time_in_millis(self) -> int:
        """Time left, counting down to the invocation's deadline as Lambda's context does: the
        handlers read it when a call first needs it, and expect the same deadline every time."""
        return max(0, int((self._deadline - self._clock()) * 1000))


_current: ContextVar[tuple[Any, bool] | None] = ContextVar("lambda_invocation", default=None)
_warm: set[str] = set()
_warm_lock = threading.Lock()
_installed = threading.Lock()
_plain_factory: Callable[..., logging.LogRecord] | None = None


def _stamped_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
    assert _plain_factory is not None
    record = _plain_factory(*args, **kwargs)
    invocation = _current.get()
    if invocation is not None:
        context, cold = invocation
        # Record attributes win over the keys a Powertools formatter appended for another
        # invocation; the standard library's formatters ignore them.
        record.function_name = context.function_name
        record.function_request_id = context.aws_request_id
        record.function_arn = context.invoked_function_arn
        record.function_memory_size = context.memory_limit_in_mb
        record.cold_start = cold
    return record


def _install() -> None:
    global _plain_factory
    with _installed:
        if _plain_factory is None:
            _plain_factory = logging.getLogRecordFactory()
            logging.setLogRecordFactory(_stamped_record)


def as_lambda(function: str, handler: Handler) -> Handler:
    """``handler`` run as Lambda runs it: its log records carry its own invocation."""
    _install()

    def invoke(event: dict[str, Any], context: Any) -> Any:
        with _warm_lock:
            cold = function not in _warm
            _warm.add(function)
        token = _current.set((context, cold))
        try:
            return handler(event, context)
        finally:
            _current.reset(token)

    return invoke
