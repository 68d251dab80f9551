"""Loggers for the authorizers' cold path: :mod:`logging` is imported by the first record that
would be emitted, not by importing a module that logs.

A healthy authorizer start logs nothing (refusals are INFO, allows DEBUG, failures WARNING), and
importing ``logging`` (with ``traceback``, ``string``, ``weakref`` and ``threading``) is ~5-8 ms
of a bare interpreter's start. Python's managed Lambda runtimes import ``logging`` before the
handler's module, to send records to CloudWatch: there :func:`get_logger` returns the standard
logger itself, and nothing changes. Elsewhere (a container image with another runtime client,
the benchmarks' bare interpreter) it returns a :class:`DeferredLogger`.

While ``logging`` is not imported, nothing can have configured it, so its defaults hold: the root
logger's level is WARNING, so DEBUG and INFO records are dropped and WARNING and above are
handled (by ``logging.lastResort``, to stderr, when no handler is configured). The deferred
logger answers from those defaults, and hands every other record to the standard logger of the
same name, importing ``logging`` then. Once ``logging`` is imported by anyone, it asks the
standard logger, so a level or handler configured later applies.
"""

import sys
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import logging

# logging's own values (logging.DEBUG, ...), which cannot change.
DEBUG, INFO, WARNING, ERROR = 10, 20, 30, 40
_DEFAULT_LEVEL = WARNING  # the root logger's level until something configures logging


class Logger(Protocol):
    """What the modules that log use of :class:`logging.Logger`."""

    def isEnabledFor(self, level: int) -> bool: ...
    def debug(self, msg: str, *args: Any, **kwargs: Any) -> None: ...
    def info(self, msg: str, *args: Any, **kwargs: Any) -> None: ...
    def warning(self, msg: str, *args: Any, **kwargs: Any) -> None: ...
    def error(self, msg: str, *args: Any, **kwargs: Any) -> None: ...
    def exception(self, msg: str, *args: Any, **kwargs: Any) -> None: ...


class DeferredLogger:
    """A :class:`logging.Logger` stand-in that imports ``logging`` when a record would be
    emitted (see the module's docstring)."""

    __slots__ = ("_logger", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._logger: logging.Logger | None = None

    def __repr__(self) -> str:
        return f"DeferredLogger({self.name!r})"

    def _standard(self) -> "logging.Logger":
        logger = self._logger
        if logger is None:
            import logging

            logger = self._logger = logging.getLogger(self.name)
        return logger

    def isEnabledFor(self, level: int) -> bool:
        if self._logger is None and "logging" not in sys.modules:
            return level >= _DEFAULT_LEVEL
        return self._standard().isEnabledFor(level)

    def _log(self, level: int, msg: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if self.isEnabledFor(level):
            kwargs.setdefault("stacklevel", 3)  # the record names our caller, not this class
            self._standard().log(level, msg, *args, **kwargs)

    def debug(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self._log(DEBUG, msg, args, kwargs)

    def info(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self._log(INFO, msg, args, kwargs)

    def warning(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self._log(WARNING, msg, args, kwargs)

    def error(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self._log(ERROR, msg, args, kwargs)

    def exception(self, msg: str, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("exc_info", True)
        self._log(ERROR, msg, args, kwargs)


def get_logger(name: str) -> Logger:
    """``logging.getLogger(name)`` where ``logging`` is imported already; otherwise a
    :class:`DeferredLogger` that imports it for the first record that would be emitted."""
    if "logging" in sys.modules:
        import logging

        return logging.getLogger(name)
    return DeferredLogger(name)
