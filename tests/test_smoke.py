"""make smoke against the local stack: every check passes, no token is printed, and a failure
stops at the first failing check with a non-zero exit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.stack import LocalStack
from tests.factories import hs_token, supabase_claims
from tests.jwks_server import JwksServer

pytestmark = pytest.mark.stack
SMOKE = Path(__file__).resolve().parent.parent / "scripts" / "smoke.py"


def smoke(url: str, token: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SMOKE), "--url", url],
        env=os.environ | {"SUPABASE_TOKEN": token},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_smoke_passes_against_the_local_stack(
    local_stack: LocalStack, supabase_server: JwksServer
) -> None:
    token = hs_token(supabase_claims(iss=f"{supabase_server.base_url}/auth/v1"))
    result = smoke(local_stack.base_url, token)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "ok   discovery",
        "ok   jwks",
        "ok   exchange",
        "ok   verify through discovery",
        "ok   whoami",
        "ok   tampered token refused",
        "ok   missing token refused",
    ]
    # The local issuer has no path, so RFC 8414's path-inserted form was checked too.
    assert "RFC 8414 (path-inserted)" in lines[0]
    for secret in (token, *token.split(".")):
        assert secret not in result.stdout + result.stderr


def test_smoke_stops_at_the_first_failure(
    local_stack: LocalStack, supabase_server: JwksServer
) -> None:
    expired = hs_token(
        supabase_claims(now=1_000_000_000, iss=f"{supabase_server.base_url}/auth/v1")
    )
    result = smoke(local_stack.base_url, expired)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[-1].startswith("FAIL exchange: POST /token answered 400 invalid_request")
    assert len(lines) == 3  # discovery and jwks passed; nothing ran after the failure
    assert expired not in result.stdout


def test_smoke_refuses_to_run_without_a_token(local_stack: LocalStack) -> None:
    result = smoke(local_stack.base_url, "")
    assert result.returncode == 2
    assert "SUPABASE_TOKEN" in result.stderr
