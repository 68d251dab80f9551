"""make smoke against the local stack: every check passes, no token is printed, and a failure
stops at the first failing check with a non-zero exit."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from devstack.moto_aws import free_port
from devstack.stack import LocalStack
from devstack.state import remove_state, write_state
from tests.factories import HS_SECRET, hs_token, supabase_claims
from tests.json_server import JsonServer
from tests.jwks_server import JwksServer

pytestmark = pytest.mark.stack
SMOKE = Path(__file__).resolve().parent.parent / "scripts" / "smoke.py"
sys.path.insert(0, str(SMOKE.parent))
from smoke import cloudtrail_status, management_events_recorded  # noqa: E402


def smoke(url: str, token: str, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SMOKE), "--url", url, *options],
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
    assert local_stack.log_path is not None
    result = smoke(local_stack.base_url, token, "--log-file", str(local_stack.log_path))
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
        "ok   cors",
        "ok   issuance log",
        "ok   cloudtrail",
    ]
    # The local issuer has no path, so RFC 8414's path-inserted form was checked too.
    assert "RFC 8414 (path-inserted)" in lines[0]
    assert (
        lines[7]
        == "ok   cors: not checked: no --origin, and the stack's CorsAllowOrigins is unknown (give --stack)"
    )
    assert lines[8].startswith("ok   issuance log: the local stack's log: jti, client_id")
    assert lines[9].startswith("ok   cloudtrail: not checked")
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
    assert result.stdout.count("\nok   ") + result.stdout.startswith("ok   ") == 10
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


# -- the operator's checks: CORS, the issuance line, CloudTrail ----------------------------------

APP = "https://app.example.com"


@pytest.fixture(scope="module")
def cors_stack(supabase_server: JwksServer) -> Iterator[LocalStack]:
    """A stack as make run starts it with CORS_ALLOW_ORIGINS, its state file written: smoke finds
    the configured origin and the log from the URL alone."""
    saved = dict(os.environ)
    running = LocalStack(
        free_port(), supabase_server.base_url, HS_SECRET, {"CorsAllowOrigins": APP}
    ).start()
    write_state(running)
    yield running
    remove_state(running)
    running.stop()
    os.environ.clear()
    os.environ.update(saved)


def test_smoke_checks_cors_and_the_issuance_line_of_make_run(
    cors_stack: LocalStack, supabase_server: JwksServer
) -> None:
    token = hs_token(supabase_claims(iss=f"{supabase_server.base_url}/auth/v1"))
    result = smoke(cors_stack.base_url, token)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = dict(line.split(": ", 1) for line in result.stdout.splitlines())
    assert lines["ok   cors"].startswith(f"{APP} (the local stack): preflight and the 400")
    assert lines["ok   issuance log"].startswith("the local stack's log")
    assert token not in result.stdout + result.stderr


def test_smoke_fails_when_the_issuance_line_is_missing_or_leaks(
    cors_stack: LocalStack, supabase_server: JwksServer, tmp_path: Path
) -> None:
    token = hs_token(supabase_claims(iss=f"{supabase_server.base_url}/auth/v1"))
    empty = tmp_path / "functions.log"
    empty.write_text("")
    result = smoke(cors_stack.base_url, token, "--log-file", str(empty))
    assert result.returncode == 1
    assert result.stdout.splitlines()[-1].startswith("FAIL issuance log: no 'token issued' line")


def test_smoke_fails_when_an_allowed_origin_is_not_named(
    local_stack: LocalStack, supabase_server: JwksServer
) -> None:
    """The module's stack has no CORS: told to expect an origin, smoke fails at the preflight."""
    token = hs_token(supabase_claims(iss=f"{supabase_server.base_url}/auth/v1"))
    result = smoke(local_stack.base_url, token, "--origin", APP)
    assert result.returncode == 1
    assert (
        result.stdout.splitlines()[-1] == f"FAIL cors: preflight of /token from {APP} answered 404"
    )


@pytest.fixture
def cloudtrail(aws_env: None) -> Iterator[Any]:
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="trail-bucket")
        yield boto3.client("cloudtrail", region_name="us-east-1")


def test_cloudtrail_management_events_are_reported_never_failed(cloudtrail: Any) -> None:
    assert cloudtrail_status("s").startswith("NO trail records management write events")
    trail = cloudtrail.create_trail(Name="audit", S3BucketName="trail-bucket")["TrailARN"]
    assert cloudtrail_status("s").startswith("NO trail")  # created, not logging
    cloudtrail.start_logging(Name=trail)
    cloudtrail.put_event_selectors(
        TrailName=trail,
        EventSelectors=[{"ReadWriteType": "ReadOnly", "IncludeManagementEvents": True}],
    )
    assert cloudtrail_status("s").startswith("NO trail")  # reads only: no DisableKey event
    cloudtrail.put_event_selectors(
        TrailName=trail,
        EventSelectors=[{"ReadWriteType": "All", "IncludeManagementEvents": True}],
    )
    assert cloudtrail_status("s") == (
        "trail audit records management events: the stack's EventBridge rules will fire"
    )


def test_cloudtrail_advanced_selectors_and_regions() -> None:
    def management(*fields: dict[str, Any]) -> Any:
        return lambda trail: {"AdvancedEventSelectors": [{"FieldSelectors": list(fields)}]}

    home = [{"Name": "t", "HomeRegion": "eu-west-1", "IsMultiRegionTrail": False}]
    category = {"Field": "eventCategory", "Equals": ["Management"]}
    assert management_events_recorded(home, management(category), "eu-west-1") == "t"
    assert management_events_recorded(home, management(category), "us-east-1") == ""
    reads = {"Field": "readOnly", "Equals": ["true"]}
    assert management_events_recorded(home, management(category, reads), "eu-west-1") == ""
    data = {"Field": "eventCategory", "Equals": ["Data"]}
    assert management_events_recorded(home, management(data), "eu-west-1") == ""


def test_cloudtrail_without_credentials_cannot_tell(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    assert cloudtrail_status("s") == "cannot tell: no AWS credentials"
