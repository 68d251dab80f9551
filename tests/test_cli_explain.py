"""``tokengate explain`` on the tokens people actually paste, against the running local stack:
a valid API token, a Supabase access token sent where an API token is expected, an expired API
token (really signed by the stack's KMS key), an API token for another audience, the anon key,
and garbage. Plus a property: any input at all gives a report, never a crash."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devstack.invoke import expired_api_token
from devstack.moto_aws import free_port
from devstack.stack import LocalStack
from devstack.supabase_auth import DEV_EMAIL, DEV_PASSWORD, SupabaseAuthStandIn
from devstack.supabase_dev import DEV_USER_ID
from tests.cli_support import Cli, serve_stack, serve_stand_in
from tokengate_cli.explain import API_TOKEN, NOT_A_JWT, SUPABASE_KEY, SUPABASE_TOKEN, Explainer

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def stand_in() -> Iterator[SupabaseAuthStandIn]:
    yield from serve_stand_in()


@pytest.fixture(scope="module")
def stack(stand_in: SupabaseAuthStandIn) -> Iterator[LocalStack]:
    yield from serve_stack(stand_in)


@pytest.fixture(scope="module")
def cli(
    tmp_path_factory: pytest.TempPathFactory, stack: LocalStack, stand_in: SupabaseAuthStandIn
) -> Cli:
    signed_in = Cli(tmp_path_factory.mktemp("explain") / "home", stack, stand_in)
    result = signed_in.run(
        "login", "--email", DEV_EMAIL, "--password-stdin", input=DEV_PASSWORD + "\n"
    )
    assert result.returncode == 0, result.stderr
    return signed_in


def explain(cli: Cli, token: str) -> tuple[int, dict[str, Any]]:
    result = cli.run("explain", "-", "--json", input=token)
    assert "Traceback" not in result.stderr
    return result.returncode, json.loads(result.stdout)


def check(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in report["checks"] if c["name"] == name)


def test_a_valid_api_token_passes_every_check(cli: Cli) -> None:
    token = cli.run("token").stdout.strip()
    code, report = explain(cli, token)
    assert code == 0
    assert report["kind"] == API_TOKEN and report["ok"]
    assert {c["name"] for c in report["checks"]} >= {
        "key", "signature", "audience", "status", "verdict",
    }  # fmt: skip
    assert all(c["ok"] for c in report["checks"])
    assert check(report, "status")["detail"].startswith("VALID: entry ")
    assert report["claims"]["sub"] == DEV_USER_ID


def test_a_revoked_sessions_token_is_refused_as_the_authorizer_refuses_it(
    tmp_path: Path, stack: LocalStack, stand_in: SupabaseAuthStandIn
) -> None:
    """Revoked at the API (RFC 7009 /revoke): explain reads the API's status list as any
    verifier does and says REVOKED, with the fix, though every other check passes."""
    own = Cli(tmp_path / "home", stack, stand_in)  # its own session: the module's stays valid
    login = own.run("login", "--email", DEV_EMAIL, "--password-stdin", input=DEV_PASSWORD + "\n")
    assert login.returncode == 0, login.stderr
    token = own.run("token").stdout.strip()
    assert explain(own, token)[0] == 0
    revoked = httpx.post(f"{stack.base_url}/revoke", data={"token": token}, timeout=30)
    assert revoked.status_code == 200
    code, report = explain(own, token)
    assert code == 1
    assert check(report, "signature")["ok"] is True
    status = check(report, "status")
    assert status["ok"] is False and status["detail"].startswith("REVOKED")
    assert "tokengate login" in status["remedy"]
    assert report["conclusion"] == "The API would not accept it as an API token."


def test_a_supabase_token_sent_as_an_api_token_is_named_with_its_fix(cli: Cli) -> None:
    session = json.loads((cli.state / "session.json").read_text())
    result = cli.run("explain", session["access_token"])
    assert result.returncode == 1
    text = result.stdout
    assert text.startswith("Supabase access token")
    assert "sent where an API token is expected" in text
    assert "signature key was not found" in text
    assert "tokengate token" in text and "tokengate call" in text
    assert session["access_token"] not in text
    _, report = explain(cli, session["access_token"])
    assert report["kind"] == SUPABASE_TOKEN
    assert check(report, "signature")["ok"] is True  # it is a good Supabase token...
    assert check(report, "accepted as an API token")["ok"] is False  # ...in the wrong place


def test_an_expired_api_token_says_so_and_how_to_get_a_fresh_one(
    cli: Cli, stack: LocalStack
) -> None:
    assert stack.aws is not None
    expired = expired_api_token(
        stack.aws.client("kms"), stack.provisioned.signing_key_arn, stack.base_url
    )
    code, report = explain(cli, expired)
    assert code == 1
    assert report["kind"] == API_TOKEN
    assert check(report, "signature")["ok"] is True
    expiry = check(report, "expiry")
    assert expiry["ok"] is False and "expired" in expiry["detail"]
    assert "tokengate token" in expiry["remedy"]
    assert "expired" in check(report, "verdict")["detail"]


def test_an_api_token_for_another_audience_names_the_right_one(cli: Cli) -> None:
    other = cli.run("token", "--audience", "other")
    assert other.returncode == 0, other.stderr
    code, report = explain(cli, other.stdout)
    assert code == 1
    audience = check(report, "audience")
    assert audience["ok"] is False
    assert "'other'" in audience["detail"]
    assert "tokengate token --audience api" in audience["remedy"]
    assert check(report, "signature")["ok"] is True


def test_the_anon_key_is_a_project_key_not_a_user(cli: Cli, stand_in: SupabaseAuthStandIn) -> None:
    code, report = explain(cli, stand_in.anon_key)
    assert code == 1
    assert report["kind"] == SUPABASE_KEY
    assert report["claims"]["role"] == "anon"
    assert "tokengate login" in check(report, "user token")["remedy"]


@pytest.mark.parametrize("garbage", ["hello", "a.b", "eyJhbGciOiJub25lIn0.e30.", "Bearer x.y.z"])
def test_garbage_is_not_a_jwt(cli: Cli, garbage: str) -> None:
    code, report = explain(cli, garbage)
    assert code == 1
    assert report["kind"] == NOT_A_JWT
    assert check(report, "structure")["ok"] is False


def test_explain_without_input_is_a_usage_error(cli: Cli) -> None:
    result = cli.run("explain", "-", input="")
    assert result.returncode == 2


COMPACT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300) | st.binary(max_size=200).map(lambda b: b.hex()))
def test_any_text_gives_a_report_and_never_raises(text: str) -> None:
    # No API or Supabase configured: nothing is fetched, every input is judged offline.
    report = Explainer(None, None).explain(text)
    assert report.checks and not report.ok
    if not COMPACT.fullmatch(text.strip()) and not text.strip().startswith("sb_"):
        assert report.kind == NOT_A_JWT
    json.dumps(report.to_json())


def _segment(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


claim_values = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(max_size=20), st.lists(st.text(max_size=5))
)
claim_names = st.sampled_from(
    ["iss", "sub", "aud", "exp", "iat", "role", "ref", "session_id", "scope", "typ", "x"]
)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["RS256", "ES256", "HS256", "none"]),
    st.sampled_from([None, "JWT", "at+jwt"]),
    st.dictionaries(claim_names, claim_values, max_size=8),
    st.binary(min_size=1, max_size=64),
)
def test_any_well_formed_jwt_is_classified(
    alg: str, typ: str | None, claims: dict[str, Any], signature: bytes
) -> None:
    header = {"alg": alg} | ({"typ": typ} if typ else {})
    sig = base64.urlsafe_b64encode(signature).rstrip(b"=").decode()
    report = Explainer(None, None).explain(f"{_segment(header)}.{_segment(claims)}.{sig}")
    assert report.kind != NOT_A_JWT
    if typ == "at+jwt":
        assert report.kind == API_TOKEN
    assert not report.ok  # nothing unverifiable is ever called acceptable


def test_the_console_script_is_installed() -> None:
    import sys

    script = Path(sys.executable).parent / "tokengate"
    assert script.exists()


def test_a_tampered_api_token_fails_its_signature(cli: Cli) -> None:
    header, payload, signature = cli.run("token").stdout.strip().split(".")
    forged = f"{header}.{payload}.{'A' * len(signature)}"
    code, report = explain(cli, forged)
    assert code == 1
    assert check(report, "key")["ok"] is True
    assert check(report, "signature")["ok"] is False
    assert check(report, "verdict")["ok"] is False


def test_an_api_token_whose_keys_cannot_be_had_gets_no_verdict(
    tmp_path: Path, stack: LocalStack, stand_in: SupabaseAuthStandIn
) -> None:
    fresh = Cli(tmp_path / "home", stack, stand_in)  # no API saved by a login
    now = int(time.time())
    claims = {
        "iss": f"http://127.0.0.1:{free_port()}",  # nothing listens there
        "sub": DEV_USER_ID, "aud": "api", "iat": now, "exp": now + 600, "jti": "j",
        "scope": "read", "client_id": "cli", "sid": "s",
    }  # fmt: skip
    header = {"alg": "RS256", "typ": "at+jwt", "kid": "k"}
    token = f"{_segment(header)}.{_segment(claims)}.{'A' * 342}"
    result = fresh.run("explain", "-", input=token, TOKENGATE_API_URL="")
    assert result.returncode == 4, result.stdout
    assert "no verdict" in result.stdout
    assert "The API would accept it." not in result.stdout
