"""A cold-start count as one Embedded Metric Format line, for the functions without Powertools'
Metrics: the same metric Powertools' ``capture_cold_start_metric`` emits (``ColdStart`` in the
``TokenGate`` namespace, dimensions ``function_name`` and ``service``), so one dashboard query
counts every function's cold starts."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping

from .emf import DEFAULT_NAMESPACE as NAMESPACE
from .emf import emf_line


def cold_start_line(function_name: str, service: str, timestamp_ms: int) -> str:
    dimensions = {"function_name": function_name, "service": service}
    return emf_line(NAMESPACE, "ColdStart", dimensions, timestamp_ms=timestamp_ms)


def count_cold_start(environ: Mapping[str, str]) -> None:
    """Called once, at module scope: one line on stdout, which CloudWatch turns into a count."""
    line = cold_start_line(
        environ.get("AWS_LAMBDA_FUNCTION_NAME", "local"),
        environ.get("POWERTOOLS_SERVICE_NAME", "tokengate"),
        int(time.time() * 1000),
    )
    sys.stdout.write(line + "\n")
