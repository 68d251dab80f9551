"""A cold-start count as one Embedded Metric Format line, written at a function's init: the
``ColdStart`` metric (namespace ``POWERTOOLS_METRICS_NAMESPACE``, ``TokenGate`` by default;
dimensions ``Stack``, ``function_name`` and ``service``) in the shape Powertools'
``capture_cold_start_metric`` emits (plus ``Stack``), so one dashboard query counts every
function's cold starts, per stack."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping

from .emf import (
    DEFAULT_NAMESPACE,
    DEFAULT_STACK,
    STACK_DIMENSION,
    emf_line,
    namespace_from_env,
    service_from_env,
    stack_from_env,
)


def cold_start_line(
    function_name: str,
    service: str,
    timestamp_ms: int,
    namespace: str = DEFAULT_NAMESPACE,
    stack: str = DEFAULT_STACK,
) -> str:
    dimensions = {STACK_DIMENSION: stack, "function_name": function_name, "service": service}
    return emf_line(namespace, "ColdStart", dimensions, timestamp_ms=timestamp_ms)


def count_cold_start(environ: Mapping[str, str]) -> None:
    """Called once, at module scope: one line on stdout, which CloudWatch turns into a count."""
    line = cold_start_line(
        environ.get("AWS_LAMBDA_FUNCTION_NAME", "local"),
        service_from_env(environ),
        int(time.time() * 1000),
        namespace_from_env(environ),
        stack_from_env(environ),
    )
    sys.stdout.write(line + "\n")
