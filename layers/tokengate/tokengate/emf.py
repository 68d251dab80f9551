"""CloudWatch metrics as Embedded Metric Format lines, with the standard library only.

The authorizers and the token exchange avoid Powertools for their cold start; a count is one JSON
line on stdout, which CloudWatch Logs turns into a metric (the EMF specification:
``_aws.Timestamp``, ``_aws.CloudWatchMetrics[].{Namespace, Dimensions, Metrics}``, and each
dimension and metric value as a top-level member).

Every metric carries the ``Stack`` dimension (``STACK_NAME``, the CloudFormation stack's name as
the template sets it), so two stacks in one account never add to each other's metrics or alarms.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Mapping

DEFAULT_NAMESPACE = "TokenGate"
DEFAULT_SERVICE = "tokengate"
DEFAULT_STACK = "local"
STACK_DIMENSION = "Stack"


def namespace_from_env(environ: Mapping[str, str]) -> str:
    """The metrics namespace: ``POWERTOOLS_METRICS_NAMESPACE``, as the template sets it."""
    return environ.get("POWERTOOLS_METRICS_NAMESPACE") or DEFAULT_NAMESPACE


def service_from_env(environ: Mapping[str, str]) -> str:
    """The ``service`` dimension: ``POWERTOOLS_SERVICE_NAME``, as the template sets it."""
    return environ.get("POWERTOOLS_SERVICE_NAME") or DEFAULT_SERVICE


def stack_from_env(environ: Mapping[str, str]) -> str:
    """The ``Stack`` dimension: ``STACK_NAME`` (``!Ref AWS::StackName`` in the template)."""
    return environ.get("STACK_NAME") or DEFAULT_STACK


def emf_line(
    namespace: str,
    metric: str,
    dimensions: Mapping[str, str],
    value: float = 1,
    unit: str = "Count",
    timestamp_ms: int | None = None,
) -> str:
    """One EMF document: ``metric`` = ``value`` under ``dimensions`` (one dimension set)."""
    document: dict[str, object] = {
        "_aws": {
            "Timestamp": timestamp_ms if timestamp_ms is not None else int(time.time() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": namespace,
                    "Dimensions": [list(dimensions)],
                    "Metrics": [{"Name": metric, "Unit": unit}],
                }
            ],
        },
        **dimensions,
        metric: value,
    }
    return json.dumps(document, separators=(",", ":"))


def _stdout(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class EmfCounter:
    """Counts events as EMF lines: ``count("JwksRefreshFailed", reason="timeout")``."""

    def __init__(
        self,
        namespace: str = DEFAULT_NAMESPACE,
        service: str = DEFAULT_SERVICE,
        write: Callable[[str], None] = _stdout,
        stack: str = DEFAULT_STACK,
    ) -> None:
        self._namespace = namespace
        self._service = service
        self._write = write
        self._stack = stack

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str], write: Callable[[str], None] = _stdout
    ) -> EmfCounter:
        """Namespace, ``service`` and ``Stack`` from the function's environment (the template's
        Globals)."""
        return cls(
            namespace_from_env(environ), service_from_env(environ), write, stack_from_env(environ)
        )

    def count(self, metric: str, **dimensions: str) -> None:
        fixed = {STACK_DIMENSION: self._stack, "service": self._service}
        self._write(emf_line(self._namespace, metric, {**fixed, **dimensions}))
