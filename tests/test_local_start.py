"""The local stack's start as a newcomer sees it: on a healthy start, nothing is a warning (the
gateway listens before the functions start, so the API-token authorizer's prefetch of this
stack's own JWKS succeeds)."""

from __future__ import annotations

import json
import logging
import os

import pytest

from devstack.moto_aws import free_port
from devstack.stack import LocalStack
from tests.factories import HS_SECRET
from tests.jwks_server import JwksServer


def test_a_healthy_start_logs_no_warning(
    supabase_server: JwksServer,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    saved = dict(os.environ)
    capfd.readouterr()
    try:
        with caplog.at_level(logging.INFO):
            stack = LocalStack(free_port(), supabase_server.base_url, HS_SECRET).start()
        try:
            output = capfd.readouterr()
            warnings = [
                f"{r.name}: {r.getMessage()}"
                for r in caplog.records
                if r.levelno >= logging.WARNING
            ]
            assert warnings == []
            assert "JwksRefreshFailed" not in output.out + output.err
            assert "WARNING" not in output.out + output.err
            # Each function's init counts its cold start under its own name, as in Lambda.
            names = {
                json.loads(line)["function_name"]
                for line in output.out.splitlines()
                if line.startswith("{") and '"ColdStart":1' in line
            }
            assert "local" not in names and len(names) == 4, names
        finally:
            stack.stop()
    finally:
        os.environ.clear()
        os.environ.update(saved)
