"""Cold starts are counted by every function, in the one shape the dashboard queries: the
``ColdStart`` metric in the ``TokenGate`` namespace with ``Stack``, ``function_name`` and
``service``."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import InProcessApi
from tests.factories import hs_token, supabase_claims
from tokengate.coldstart import cold_start_line, count_cold_start

MakeApi = Callable[..., InProcessApi]


def cold_starts(output: str) -> list[dict[str, Any]]:
    """The EMF documents in ``output`` that count a cold start, each checked for the shape
    CloudWatch requires of EMF."""
    found = []
    for line in output.splitlines():
        if not line.startswith("{"):
            continue
        document = json.loads(line)
        directives = document.get("_aws", {}).get("CloudWatchMetrics", [])
        if not any(m["Name"] == "ColdStart" for d in directives for m in d["Metrics"]):
            continue
        (directive,) = directives
        assert directive["Namespace"] == "TokenGate"
        assert directive["Dimensions"] == [["Stack", "function_name", "service"]]
        assert isinstance(document["_aws"]["Timestamp"], int)
        assert document["service"] == "tokengate" and document["function_name"]
        value = document["ColdStart"]
        assert value in (1, [1.0], 1.0)
        found.append(document)
    return found


def test_each_function_counts_its_cold_start_once(
    make_api: MakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api = make_api()
    # Loading the handlers is the cold start of the exchange, the JWKS function and both
    # authorizers: each counts it at its init, none at an invocation.
    assert len(cold_starts(capsys.readouterr().out)) == 4
    token = hs_token(supabase_claims())
    assert api.exchange(token)[0] == 200
    assert api.exchange(token)[0] == 200
    assert api.call("GET", "/.well-known/jwks.json")[0] == 200
    assert cold_starts(capsys.readouterr().out) == []


def test_the_line_is_the_powertools_shape() -> None:
    """The shape of Powertools' ``capture_cold_start_metric``, which the dashboard was built on."""
    document = json.loads(cold_start_line("fn", "tokengate", 1_700_000_000_000))
    assert cold_starts(json.dumps(document)) == [document]
    assert document["_aws"]["CloudWatchMetrics"][0]["Metrics"] == [
        {"Name": "ColdStart", "Unit": "Count"}
    ]


def test_the_namespace_and_service_come_from_the_environment(
    capsys: pytest.CaptureFixture[str],
) -> None:
    environ = {
        "AWS_LAMBDA_FUNCTION_NAME": "fn",
        "POWERTOOLS_METRICS_NAMESPACE": "Elsewhere",
        "POWERTOOLS_SERVICE_NAME": "gate",
    }
    count_cold_start(environ)
    (document,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert document["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Elsewhere"
    assert (document["function_name"], document["service"]) == ("fn", "gate")
