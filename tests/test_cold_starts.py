"""Cold starts are counted by every function, in the one shape the dashboard queries: the
``ColdStart`` metric in the ``TokenGate`` namespace with ``function_name`` and ``service``."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from aws_lambda_powertools.metrics.provider.cold_start import reset_cold_start_flag

from tests.conftest import InProcessApi
from tests.factories import hs_token, supabase_claims
from tokengate.coldstart import cold_start_line

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
        assert directive["Dimensions"] == [["function_name", "service"]]
        assert isinstance(document["_aws"]["Timestamp"], int)
        assert document["service"] == "tokengate" and document["function_name"]
        value = document["ColdStart"]
        assert value in (1, [1.0], 1.0)
        found.append(document)
    return found


def test_each_function_counts_its_cold_start_once(
    make_api: MakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    # Powertools keeps "cold" per process, and this process has loaded the exchange before:
    # make it a fresh container again, as loading the handlers makes the others.
    reset_cold_start_flag()
    api = make_api()
    # Loading the handlers is the cold start of the JWKS function and both authorizers.
    assert len(cold_starts(capsys.readouterr().out)) == 3
    # The exchange counts it through Powertools, on its first invocation only.
    token = hs_token(supabase_claims())
    assert api.exchange(token)[0] == 200
    first = cold_starts(capsys.readouterr().out)
    assert [d["function_name"] for d in first] == ["TokenExchangeFunction"]
    assert api.exchange(token)[0] == 200
    assert api.call("GET", "/.well-known/jwks.json")[0] == 200
    assert cold_starts(capsys.readouterr().out) == []


def test_the_line_is_the_powertools_shape() -> None:
    document = json.loads(cold_start_line("fn", "tokengate", 1_700_000_000_000))
    assert cold_starts(json.dumps(document)) == [document]
    assert document["_aws"]["CloudWatchMetrics"][0]["Metrics"] == [
        {"Name": "ColdStart", "Unit": "Count"}
    ]
