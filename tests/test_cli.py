"""The ``tokengate`` CLI end to end: the local stack (moto + the real handlers over HTTP), the
Supabase Auth stand-in on loopback, and the CLI as real subprocesses."""

from __future__ import annotations

import contextlib
import json
import queue
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests

from devstack.moto_aws import free_port
from devstack.stack import LocalStack
from devstack.supabase_auth import DEV_EMAIL, DEV_PASSWORD, SupabaseAuthStandIn
from devstack.supabase_dev import DEV_USER_ID, LOCAL_JWT_SECRET
from tests.cli_support import (
    TIMEOUT,
    Cli,
    ExchangeCounter,
    one_line_error,
    serve_stack,
    serve_stand_in,
    token_lifetime,
)
from tests.json_server import JsonServer
from tokengate.discovery import render_metadata
from tokengate_cli import TokenSource

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def stand_in() -> Iterator[SupabaseAuthStandIn]:
    yield from serve_stand_in()


@pytest.fixture(scope="module")
def stack(stand_in: SupabaseAuthStandIn) -> Iterator[LocalStack]:
    yield from serve_stack(stand_in)


@pytest.fixture(scope="module")
def exchanges(stack: LocalStack) -> ExchangeCounter:
    return ExchangeCounter(stack)


@pytest.fixture
def cli(tmp_path: Path, stack: LocalStack, stand_in: SupabaseAuthStandIn) -> Cli:
    return Cli(tmp_path / "home", stack, stand_in)


def login(cli: Cli) -> None:
    result = cli.run("login", "--email", DEV_EMAIL, "--password-stdin", input=DEV_PASSWORD + "\n")
    assert result.returncode == 0, result.stderr
    assert f"as {DEV_EMAIL}" in result.stdout


def session_file(cli: Cli) -> dict[str, object]:
    document: dict[str, object] = json.loads((cli.state / "session.json").read_text())
    return document


def test_login_token_and_call_whoami(cli: Cli, exchanges: ExchangeCounter) -> None:
    login(cli)
    before = exchanges.count
    token = cli.run("token")
    assert token.returncode == 0, token.stderr
    lines = token.stdout.splitlines()
    assert len(lines) == 1 and lines[0].count(".") == 2
    assert token.stderr == ""

    call = cli.run("call", "GET", "/whoami")
    assert call.returncode == 0, call.stderr
    whoami = json.loads(call.stdout)
    assert whoami["sub"] == DEV_USER_ID
    assert whoami["scope"] == "read"
    assert exchanges.count == before + 1  # call reused the token `token` cached


def test_the_cached_token_is_reused(cli: Cli, exchanges: ExchangeCounter) -> None:
    login(cli)
    before = exchanges.count
    first = cli.run("token").stdout
    second = cli.run("token").stdout
    assert first == second
    assert exchanges.count == before + 1


def test_a_token_with_less_than_min_ttl_left_is_exchanged_again(
    cli: Cli, exchanges: ExchangeCounter, stand_in: SupabaseAuthStandIn
) -> None:
    login(cli)
    first = cli.run("token").stdout
    before, refreshes = exchanges.count, stand_in.counts["refresh_token"]
    # The API's tokens live 900 s: asking for 1000 s left re-exchanges; the session (an hour
    # left) needs no refresh for that.
    again = cli.run("token", "--min-ttl", "1000")
    assert again.returncode == 0, again.stderr
    assert again.stdout != first
    assert exchanges.count == before + 1
    assert stand_in.counts["refresh_token"] == refreshes
    assert cli.run("token", "--min-ttl", "30").stdout == again.stdout  # the new one is cached


def test_concurrent_processes_refresh_the_session_once(
    cli: Cli, exchanges: ExchangeCounter, stand_in: SupabaseAuthStandIn
) -> None:
    with token_lifetime(stand_in, 30):  # less than --min-ttl (60 s): the session runs out first
        login(cli)
    refreshes, before = stand_in.counts["refresh_token"], exchanges.count
    processes = [cli.popen("token") for _ in range(5)]
    outputs = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=TIMEOUT)
        assert process.returncode == 0, stderr
        outputs.append(stdout)
    assert stand_in.counts["refresh_token"] == refreshes + 1
    assert exchanges.count == before + 1
    assert len(set(outputs)) == 1
    # The session survived (no refresh-token reuse ended it) and is the refreshed one.
    expires_at = session_file(cli)["expires_at"]
    assert isinstance(expires_at, (int, float)) and expires_at > time.time() + 600
    assert cli.run("call", "GET", "/whoami").returncode == 0


def test_logout_ends_the_session_at_supabase_and_deletes_local_state(
    cli: Cli, stand_in: SupabaseAuthStandIn
) -> None:
    login(cli)
    assert cli.run("token").returncode == 0
    session_id = _session_id(session_file(cli))
    assert session_id in stand_in.sessions

    result = cli.run("logout")
    assert result.returncode == 0, result.stderr
    assert "Signed out" in result.stdout
    assert session_id not in stand_in.sessions
    assert sorted(p.name for p in cli.state.iterdir()) == ["config.json", "lock"]
    after = cli.run("token")
    assert after.returncode == 3
    assert "tokengate login" in one_line_error(after)


def test_logout_offline_deletes_local_state_and_warns(tmp_path: Path, stack: LocalStack) -> None:
    with SupabaseAuthStandIn(LOCAL_JWT_SECRET) as elsewhere:
        cli = Cli(tmp_path / "home", stack, elsewhere)
        login(cli)
    result = cli.run("logout")  # that Supabase is gone now
    assert result.returncode == 0
    assert "warning" in one_line_error(result) and "could not be reached" in result.stderr
    assert sorted(p.name for p in cli.state.iterdir()) == ["config.json", "lock"]


def test_a_session_revoked_at_supabase_asks_to_sign_in_again(
    cli: Cli, stand_in: SupabaseAuthStandIn
) -> None:
    with token_lifetime(stand_in, 30):
        login(cli)
    stand_in.end_user_sessions(DEV_EMAIL)  # "sign out everywhere", e.g. from another device
    result = cli.run("token")
    assert result.returncode == 3
    error = one_line_error(result)
    assert "sign in again" in error and "tokengate login" in error
    assert not (cli.state / "session.json").exists()


def test_an_unreachable_api_is_one_line_and_exit_4(cli: Cli) -> None:
    login(cli)
    closed = f"http://127.0.0.1:{free_port()}"
    result = cli.run("token", TOKENGATE_API_URL=closed)
    assert result.returncode == 4
    assert "could not be reached" in one_line_error(result)


def test_an_unreachable_supabase_is_one_line_and_exit_4(cli: Cli) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    result = cli.run(
        "login", "--email", DEV_EMAIL, "--password-stdin", input="x\n", SUPABASE_URL=closed
    )
    assert result.returncode == 4
    assert "Supabase" in one_line_error(result)


def test_wrong_password_is_one_line_and_exit_3(cli: Cli) -> None:
    result = cli.run("login", "--email", DEV_EMAIL, "--password-stdin", input="wrong\n")
    assert result.returncode == 3
    assert "invalid_credentials" in one_line_error(result)
    assert not (cli.state / "session.json").exists()


def test_usage_errors_are_one_line_and_exit_2(cli: Cli) -> None:
    for args in (
        ("token", "--min-ttl", "99999"),
        ("call", "GET", "https://elsewhere.example/whoami"),
        ("frobnicate",),
    ):
        result = cli.run(*args)
        assert result.returncode == 2, args
        one_line_error(result)


def test_state_is_private(cli: Cli) -> None:
    cli.home.mkdir(mode=0o755)
    login(cli)
    assert cli.run("token").returncode == 0
    for directory in (cli.home, cli.home / "profiles", cli.state):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
    for name in ("session.json", "tokens.json", "config.json", "lock"):
        assert stat.S_IMODE((cli.state / name).stat().st_mode) == 0o600, name
    assert not [p for p in cli.state.iterdir() if p.name.startswith(".")]  # no temporary files


def test_call_re_exchanges_once_on_401(cli: Cli, exchanges: ExchangeCounter) -> None:
    login(cli)
    assert cli.run("token").returncode == 0
    tokens = json.loads((cli.state / "tokens.json").read_text())
    for entry in tokens.values():  # a token the API no longer accepts (e.g. a retired key)
        header, payload, _ = entry["access_token"].split(".")
        entry["access_token"] = f"{header}.{payload}.{'A' * 342}"
    (cli.state / "tokens.json").write_text(json.dumps(tokens))
    before = exchanges.count
    result = cli.run("call", "/whoami", "-i")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("HTTP/1.1 200")
    assert exchanges.count == before + 1


def test_call_reports_api_errors_with_exit_1(cli: Cli) -> None:
    login(cli)
    result = cli.run("call", "GET", "/no-such-route")
    assert result.returncode == 1
    assert "the API answered 404" in one_line_error(result)
    assert json.loads(result.stdout)["error"] == "not_found"  # the body still goes to stdout


def test_status_never_prints_a_token(cli: Cli) -> None:
    login(cli)
    token = cli.run("token").stdout.strip()
    result = cli.run("status")
    assert result.returncode == 0
    assert DEV_EMAIL in result.stdout and "expires in" in result.stdout
    secrets = [token, session_file(cli)["access_token"], session_file(cli)["refresh_token"]]
    assert not any(str(secret) in result.stdout + result.stderr for secret in secrets)


def _session_id(session: dict[str, object]) -> str:
    from tokengate.jws import parse_compact

    return str(parse_compact(session["access_token"]).unverified_claims["session_id"])


def _read_url_from(process: subprocess.Popen[str]) -> str:
    """The sign-in URL the CLI prints on stderr (bounded wait, read by a thread)."""
    assert process.stderr is not None
    lines: queue.Queue[str] = queue.Queue()
    stream = process.stderr

    def pump() -> None:
        with contextlib.suppress(ValueError, OSError):  # closed by communicate() meanwhile
            for line in stream:
                lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            continue
        if line.startswith("http"):
            return line.strip()
    raise AssertionError("no sign-in URL")


def _finish(process: subprocess.Popen[str], stdin: str | None = None) -> tuple[int, str]:
    try:
        stdout, _ = process.communicate(stdin, timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=TIMEOUT)
    return process.returncode, stdout


def test_provider_login_with_pkce_and_a_loopback_redirect(
    cli: Cli, stand_in: SupabaseAuthStandIn
) -> None:
    process = cli.popen("login", "--provider", "github", "--no-browser")
    try:
        url = _read_url_from(process)
        assert url.startswith(f"{stand_in.issuer}/authorize?")
        assert "code_challenge_method=s256" in url and "redirect_to=http%3A%2F%2F127.0.0.1" in url
        page = httpx.get(url, follow_redirects=True, timeout=TIMEOUT)  # what the browser does
        assert page.status_code == 200 and "Signed in" in page.text
    finally:
        code, stdout = _finish(process)
    assert code == 0
    assert f"as {DEV_EMAIL}" in stdout
    assert cli.run("call", "GET", "/whoami").returncode == 0


def test_login_with_an_email_one_time_code(cli: Cli, stand_in: SupabaseAuthStandIn) -> None:
    stand_in.last_otp = None
    process = cli.popen("login", "--email", DEV_EMAIL, "--otp")
    deadline = time.monotonic() + TIMEOUT
    while stand_in.last_otp is None and time.monotonic() < deadline:
        time.sleep(0.05)
    code, stdout = _finish(process, f"{stand_in.last_otp}\n")
    assert code == 0
    assert f"as {DEV_EMAIL}" in stdout


def test_the_library_api_shares_the_cli_state(
    cli: Cli, stack: LocalStack, exchanges: ExchangeCounter
) -> None:
    login(cli)
    token = cli.run("token").stdout.strip()
    source = TokenSource(home=cli.home, api_url=stack.base_url)
    assert source.token() == token  # the same cache, no second exchange
    before = exchanges.count
    with httpx.Client(base_url=stack.base_url, auth=source.httpx_auth(), timeout=TIMEOUT) as web:
        assert web.get("/whoami").json()["sub"] == DEV_USER_ID
    with requests.Session() as session:
        session.auth = source.requests_auth()
        assert session.get(f"{stack.base_url}/whoami", timeout=TIMEOUT).json()["sub"] == DEV_USER_ID
    assert exchanges.count == before


@pytest.mark.parametrize("library", ["httpx", "requests"])
def test_the_library_adapters_re_exchange_once_on_401(
    cli: Cli, stack: LocalStack, exchanges: ExchangeCounter, library: str
) -> None:
    login(cli)
    source = TokenSource(home=cli.home, api_url=stack.base_url)
    refused = source.token()
    header, payload, _ = refused.split(".")
    tokens = source.cached_tokens()
    for entry in tokens.values():
        entry["access_token"] = f"{header}.{payload}.{'A' * 342}"
    source.store.put("tokens", tokens)
    before = exchanges.count
    if library == "httpx":
        with httpx.Client(auth=source.httpx_auth(), timeout=TIMEOUT) as web:
            answer: Any = web.get(f"{stack.base_url}/whoami")
    else:
        answer = requests.get(
            f"{stack.base_url}/whoami", auth=source.requests_auth(), timeout=TIMEOUT
        )
    assert answer.status_code == 200
    assert exchanges.count == before + 1


def test_a_cached_token_costs_no_heavy_import(cli: Cli) -> None:
    login(cli)
    assert cli.run("token").returncode == 0
    probe = (
        "import sys\n"
        "from tokengate_cli.cli import main\n"
        "code = main(['token'])\n"
        "heavy = ('httpx', 'supabase_auth', 'pydantic', 'cryptography', 'filelock', 'keyring')\n"
        "print(sorted(m for m in heavy if m in sys.modules), file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env=cli.env,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "[]"


def test_logout_refreshes_an_expiring_session_to_end_it_at_supabase(
    cli: Cli, stand_in: SupabaseAuthStandIn
) -> None:
    with token_lifetime(stand_in, 5):  # too close to expiry to sign out with
        login(cli)
    refreshes = stand_in.counts["refresh_token"]
    user_sessions = {s.id for s in stand_in.sessions.values()}
    assert cli.run("logout").returncode == 0
    assert stand_in.counts["refresh_token"] == refreshes + 1
    assert {s.id for s in stand_in.sessions.values()} < user_sessions  # this one ended


def test_status_when_signed_out_is_exit_3(cli: Cli) -> None:
    result = cli.run("status")
    assert result.returncode == 3
    assert "tokengate login" in one_line_error(result)


def test_supabase_down_when_a_refresh_is_due_keeps_the_session(
    tmp_path: Path, stack: LocalStack
) -> None:
    with SupabaseAuthStandIn(LOCAL_JWT_SECRET) as elsewhere:
        cli = Cli(tmp_path / "home", stack, elsewhere)
        with token_lifetime(elsewhere, 30):
            login(cli)
    result = cli.run("token")  # the session needs a refresh, and that Supabase is gone
    assert result.returncode == 4
    assert "Supabase" in one_line_error(result) and "could not be reached" in result.stderr
    assert (cli.state / "session.json").exists()  # an outage is not a sign-out


def test_a_refused_exchange_prints_the_servers_error_and_exit_5(cli: Cli) -> None:
    login(cli)
    result = cli.run("token", "--audience", "not-an-audience-of-this-api")
    assert result.returncode == 5
    error = one_line_error(result)
    assert "refused the exchange" in error and "invalid_target" in error


def test_login_with_only_the_api_url_when_discovery_advertises_supabase(
    cli: Cli, stand_in: SupabaseAuthStandIn
) -> None:
    with JsonServer() as server:
        api = server.base_url
        # The product's own discovery document, so the client reads the names it serves.
        server.documents["/.well-known/openid-configuration"] = render_metadata(
            api,
            ["read"],
            supabase_url=stand_in.url,
            supabase_publishable_key=stand_in.anon_key,
        )
        result = cli.run(
            "login", "--api", api, "--email", DEV_EMAIL, "--password-stdin",
            input=DEV_PASSWORD + "\n", TOKENGATE_API_URL="", SUPABASE_URL="", SUPABASE_ANON_KEY="",
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    saved = json.loads((cli.state / "config.json").read_text())
    assert saved == {
        "api_url": api,
        "supabase_url": stand_in.url,
        "supabase_key": stand_in.anon_key,
        "store": "file",
    }
