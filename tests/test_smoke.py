"""make smoke against the local stack: every check passes, no token is printed, and a failure
stops at the first failing check with a non-zero exit."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.stack import LocalStack
from tests.factories import hs_token, supabase_claims
from tests.json_server import JsonServer
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


@pytest.fixture
def documents() -> Iterator[JsonServer]:
    with JsonServer() as served:
        yield served


def metadata(issuer: str) -> dict[str, Any]:
    return {
        "issuer": issuer,
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "token_endpoint": f"{issuer}/token",
    }


def serve_discovery(documents: JsonServer, prefix: str, oidc: Any, oauth: Any) -> None:
    documents.documents[f"{prefix}/.well-known/openid-configuration"] = oidc
    documents.documents[f"{prefix}/.well-known/oauth-authorization-server"] = oauth


def first_line(documents: JsonServer, base_url: str) -> str:
    result = smoke(base_url, "header.payload.signature")
    assert result.returncode == 1  # nothing past discovery can pass against this server
    return result.stdout.splitlines()[0]


def test_an_issuer_with_a_path_is_checked_by_oidc_discovery_only(documents: JsonServer) -> None:
    issuer = f"{documents.base_url}/v1"
    serve_discovery(documents, "/v1", metadata(issuer), metadata(issuer))
    line = first_line(documents, issuer)
    assert (
        line
        == f"ok   discovery: issuer {issuer}; OIDC discovery only (the issuer has a path, see docs/deploy.md)"
    )


@pytest.mark.parametrize(
    ("case", "change"),
    [
        ("the two discovery documents differ", lambda m: ({**m, "issuer": "https://other"}, m)),
        ("jwks_uri not under issuer", lambda m: ({**m, "jwks_uri": "https://x/jwks"},) * 2),
        (
            "token_endpoint not under issuer",
            lambda m: ({**m, "token_endpoint": "https://x/t"},) * 2,
        ),
    ],
)
def test_inconsistent_discovery_fails_the_first_check(
    documents: JsonServer, case: str, change: Callable[[dict[str, Any]], tuple[Any, Any]]
) -> None:
    oidc, oauth = change(metadata(documents.base_url))
    serve_discovery(documents, "", oidc, oauth)
    assert first_line(documents, documents.base_url) == f"FAIL discovery: {case}"


def test_a_path_less_issuer_must_answer_rfc_8414_at_the_root(documents: JsonServer) -> None:
    """Served under /v1 but claiming the host as issuer: the root form is missing."""
    serve_discovery(documents, "/v1", metadata(documents.base_url), metadata(documents.base_url))
    line = first_line(documents, f"{documents.base_url}/v1")
    assert line == "FAIL discovery: RFC 8414 discovery at the issuer's root"


def test_make_smoke_passes_the_token_by_environment_and_never_echoes_it(
    local_stack: LocalStack, supabase_server: JwksServer
) -> None:
    token = hs_token(supabase_claims(iss=f"{supabase_server.base_url}/auth/v1"))
    root = SMOKE.parent.parent
    result = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "smoke",
            f"URL={local_stack.base_url}",
            f"SUPABASE_TOKEN={token}",
        ],
        cwd=root,
        env={k: v for k, v in os.environ.items() if k != "SUPABASE_TOKEN"},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("\nok   ") + result.stdout.startswith("ok   ") == 7
    assert token not in result.stdout + result.stderr
    usage = subprocess.run(
        ["make", "--no-print-directory", "smoke"],
        cwd=root,
        env={k: v for k, v in os.environ.items() if k != "SUPABASE_TOKEN"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert usage.returncode != 0 and "usage: make smoke" in usage.stdout
