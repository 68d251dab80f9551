"""The CLI's journeys against the local stack and the Supabase stand-in, as a user runs them:
the development user's scopes, signing in again after logout, the paste-back headless sign-in
(the test plays the user on another machine), paths without a leading /, the HTTP trace, and
logout revoking at the API (a loopback server plays the API)."""

from __future__ import annotations

import contextlib
import json
import queue
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from supabase_auth import SyncGoTrueClient
from supabase_auth.errors import AuthApiError

from devstack.__main__ import cli_walkthrough
from devstack.stack import LocalStack
from devstack.supabase_auth import DEV_EMAIL, DEV_PASSWORD, SupabaseAuthStandIn
from devstack.supabase_dev import LOCAL_JWT_SECRET, hs256_token
from tests.cli_support import TIMEOUT, Cli, one_line_error, serve_stack, serve_stand_in
from tests.conftest import FakeClock
from tokengate.discovery import render_metadata

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def stand_in() -> Iterator[SupabaseAuthStandIn]:
    yield from serve_stand_in()


@pytest.fixture(scope="module")
def stack(stand_in: SupabaseAuthStandIn) -> Iterator[LocalStack]:
    yield from serve_stack(stand_in)


@pytest.fixture
def cli(tmp_path: Path, stack: LocalStack, stand_in: SupabaseAuthStandIn) -> Cli:
    return Cli(tmp_path / "home", stack, stand_in)


def login(cli: Cli, *extra: str, **env: str) -> None:
    result = cli.run(
        "login", "--email", DEV_EMAIL, "--password-stdin", *extra, input=DEV_PASSWORD + "\n", **env
    )
    assert result.returncode == 0, result.stderr


# -- the development user holds what make run says --------------------------------------------


def test_the_development_user_gets_write_through_the_cli(
    cli: Cli, stack: LocalStack, stand_in: SupabaseAuthStandIn
) -> None:
    banner = cli_walkthrough(stack, stand_in)
    assert "API scopes this user can get: read write" in banner
    login(cli)
    token = cli.run("token", "--scope", "read write")
    assert token.returncode == 0, token.stderr
    order = cli.run("call", "POST", "/orders/42", "--scope", "read write", "-d", '{"note": "hi"}')
    assert order.returncode == 0, (order.stderr, order.stdout)
    assert cli.run("call", "POST", "/orders/42", "-d", "{}").returncode == 1  # read only: 403


def test_the_stand_in_user_carries_its_scopes_as_the_official_client_reads_them(
    stand_in: SupabaseAuthStandIn,
) -> None:
    with SyncGoTrueClient(
        url=stand_in.issuer, headers={"apikey": stand_in.anon_key},
        auto_refresh_token=False, persist_session=False,
    ) as client:  # fmt: skip
        session = client.sign_in_with_password({"email": DEV_EMAIL, "password": DEV_PASSWORD})
        assert session.user is not None
        assert session.user.app_metadata["api_scopes"] == ["write"]
        assert session.session is not None
        user = client.get_user(session.session.access_token)
        assert user is not None and user.user.app_metadata["api_scopes"] == ["write"]


# -- exit 3 means sign in again, everywhere -----------------------------------------------------


def test_after_logout_token_and_call_exit_3_and_login_needs_no_flags(cli: Cli) -> None:
    unset = {"TOKENGATE_API_URL": "", "SUPABASE_URL": "", "SUPABASE_ANON_KEY": ""}
    login(cli)
    assert cli.run("logout").returncode == 0
    for args in (["token"], ["call", "GET", "/whoami"]):
        result = cli.run(*args, **unset)
        assert result.returncode == 3, result.stderr
        assert "tokengate login" in one_line_error(result)
    login(cli, **unset)  # the profile kept its API and Supabase project
    assert cli.run("call", "whoami", **unset).returncode == 0


def test_a_session_revoked_at_the_api_asks_to_sign_in_again(cli: Cli, stack: LocalStack) -> None:
    """RFC 7009 /revoke (or make revoke) ends the session at the API while it lives on at
    Supabase: the next exchange is refused, and the CLI says to sign in (exit 3), not that the
    exchange failed (exit 5). A new sign-in is a new session, which the API accepts."""
    login(cli)
    token = cli.run("token")
    assert token.returncode == 0, token.stderr
    revoked = httpx.post(
        f"{stack.base_url}/revoke", data={"token": token.stdout.strip()}, timeout=TIMEOUT
    )
    assert revoked.status_code == 200
    again = cli.run("token", "--min-ttl", "3600")  # longer than a token lives: a new exchange
    assert again.returncode == 3, again.stderr
    assert "the session was revoked there" in one_line_error(again)
    assert "tokengate login" in one_line_error(again)
    login(cli)
    assert cli.run("call", "GET", "/whoami").returncode == 0


def test_a_token_the_api_finds_expired_is_refreshed_once_not_a_reason_to_sign_in(
    cli: Cli,
) -> None:
    """The client's clock says the session's Supabase token is fresh, the API's says it has
    expired (a laptop clock behind): the refused exchange is retried once with a refreshed
    token, which the API takes. Not "sign in again"."""
    login(cli)
    path = cli.state / "session.json"
    session = json.loads(path.read_text())
    claims = jwt.decode(session["access_token"], options={"verify_signature": False})
    now = int(time.time())
    claims |= {"iat": now - 3700, "exp": now - 100}  # expired by the API's clock...
    session["access_token"] = hs256_token(claims, LOCAL_JWT_SECRET)
    session["expires_at"] = now + 3600  # ...fresh by this client's
    path.write_text(json.dumps(session))
    result = cli.run("token")
    assert result.returncode == 0, result.stderr
    refreshed = json.loads(path.read_text())
    assert refreshed["access_token"] != session["access_token"]


# -- paths without a leading / ------------------------------------------------------------------


def test_call_takes_a_path_with_or_without_its_leading_slash(cli: Cli) -> None:
    login(cli)
    with_slash = cli.run("call", "GET", "/whoami")
    without = cli.run("call", "whoami")
    assert with_slash.returncode == without.returncode == 0
    body = json.loads(with_slash.stdout)
    assert body == json.loads(without.stdout)
    assert body["principalId"] == body["sub"]  # as docs/cli.md shows the body


# -- the HTTP trace -----------------------------------------------------------------------------

TRACE = re.compile(r"^tokengate: (GET|POST) (http://127\.0\.0\.1:\d+/\S*) -> (\d{3}) \(\d+ ms\)$")


@pytest.mark.parametrize("switch", ["--verbose", "TOKENGATE_DEBUG"])
def test_verbose_traces_each_request_and_never_a_token(cli: Cli, switch: str) -> None:
    env = {"TOKENGATE_DEBUG": "1"} if switch == "TOKENGATE_DEBUG" else {}
    flags = ["--verbose"] if switch == "--verbose" else []
    result = cli.run("login", "--email", DEV_EMAIL, "--password-stdin", *flags,
                     input=DEV_PASSWORD + "\n", **env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    traced = [TRACE.match(line) for line in result.stderr.splitlines()]
    assert traced and all(traced), result.stderr
    assert any(m and m.group(2).endswith("/auth/v1/token?grant_type=password") for m in traced)
    token = cli.run(*flags, "token", "--min-ttl", "3600", **env)  # refresh and exchange
    assert token.returncode == 0, token.stderr
    lines = token.stderr.splitlines()
    assert all(TRACE.match(line) for line in lines), token.stderr
    urls = [m.group(2) for m in map(TRACE.match, lines) if m]
    assert any(u.endswith("/.well-known/openid-configuration") for u in urls)
    assert any(u.endswith("/token") for u in urls) and any("refresh_token" in u for u in urls)
    session = json.loads((cli.state / "session.json").read_text())
    for secret in (token.stdout.strip(), session["access_token"], session["refresh_token"]):
        assert secret not in token.stderr and secret not in result.stderr


# -- the paste-back headless sign-in ------------------------------------------------------------


def _stderr_until_prompt(process: subprocess.Popen[str]) -> str:
    """What the CLI printed up to its "URL or code:" prompt (bounded wait, read by a thread)."""
    assert process.stderr is not None
    chunks: queue.Queue[str] = queue.Queue()
    stream = process.stderr

    def pump() -> None:
        with contextlib.suppress(ValueError, OSError):  # closed by communicate() meanwhile
            for character in iter(lambda: stream.read(1), ""):
                chunks.put(character)

    threading.Thread(target=pump, daemon=True).start()
    seen = ""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline and not seen.endswith("URL or code: "):
        try:
            seen += chunks.get(timeout=1)
        except queue.Empty:
            continue
    assert seen.endswith("URL or code: "), seen
    return seen


def _browser_elsewhere(authorize_url: str) -> str:
    """The browser on another machine: it signs in and is sent to the loopback address, which
    it cannot reach (no port forwarding); the user copies that address from the address bar."""
    answer = httpx.get(authorize_url, follow_redirects=False, timeout=TIMEOUT)
    assert answer.status_code in (302, 303), answer.text
    return answer.headers["location"]


def _headless(cli: Cli, paste: Any) -> tuple[int, str, str]:
    process = cli.popen("login", "--provider", "github", "--no-browser")
    try:
        prompt = _stderr_until_prompt(process)
        authorize = next(line for line in prompt.splitlines() if line.startswith("http"))
        pasted = paste(_browser_elsewhere(authorize))
        stdout, _ = process.communicate(pasted + "\n", timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=TIMEOUT)
    return process.returncode, stdout, prompt


def test_headless_sign_in_with_the_pasted_url(cli: Cli, stand_in: SupabaseAuthStandIn) -> None:
    code, stdout, prompt = _headless(cli, lambda url: url)
    assert code == 0, prompt
    assert f"as {DEV_EMAIL}" in stdout
    assert f"{stand_in.issuer}/authorize?" in prompt and "code_challenge_method=s256" in prompt
    assert cli.run("call", "GET", "/whoami").returncode == 0


def test_headless_sign_in_with_only_the_code(cli: Cli) -> None:
    code, stdout, _ = _headless(cli, lambda url: parse_qs(urlsplit(url).query)["code"][0])
    assert code == 0 and f"as {DEV_EMAIL}" in stdout


def _other_state(url: str) -> str:
    return re.sub(r"state=[^&]+", "state=not-this-sign-in", url)


@pytest.mark.parametrize(
    "paste",
    [
        _other_state,
        lambda url: url.replace("127.0.0.1", "evil.example"),
        lambda url: "not a url or code!",
    ],
)
def test_headless_sign_in_refuses_a_pasted_url_of_another_sign_in(
    tmp_path: Path, stack: LocalStack, stand_in: SupabaseAuthStandIn, paste: Any
) -> None:
    cli = Cli(tmp_path / "home", stack, stand_in)
    code, _, prompt = _headless(cli, paste)
    assert code == 2, prompt
    assert not (cli.state / "session.json").exists()


# -- the stand-in's PKCE, checked as Supabase Auth's handlers check it ---------------------------


@pytest.fixture
def pkce_stand_in() -> Iterator[tuple[SupabaseAuthStandIn, FakeClock]]:
    clock = FakeClock(time.time())
    with SupabaseAuthStandIn(LOCAL_JWT_SECRET, clock=clock) as running:
        yield running, clock


def _pkce_client(stand_in: SupabaseAuthStandIn) -> SyncGoTrueClient:
    return SyncGoTrueClient(
        url=stand_in.issuer, headers={"apikey": stand_in.anon_key},
        auto_refresh_token=False, persist_session=False, flow_type="pkce",
    )  # fmt: skip


def _authorized(client: SyncGoTrueClient, redirect_to: str) -> str:
    start = client.sign_in_with_oauth(
        {"provider": "github", "options": {"redirect_to": redirect_to}}
    )
    return _browser_elsewhere(start.url)


def test_the_stand_in_pkce_flow_matches_supabase_auth(
    pkce_stand_in: tuple[SupabaseAuthStandIn, FakeClock],
) -> None:
    stand_in, clock = pkce_stand_in
    with _pkce_client(stand_in) as client:
        location = _authorized(client, "http://127.0.0.1:9/callback?state=s1&code=stale")
        query = parse_qs(urlsplit(location).query)
        assert query["state"] == ["s1"] and len(query["code"]) == 1 and query["code"] != ["stale"]
        code = query["code"][0]
        with pytest.raises(AuthApiError) as wrong:  # a wrong verifier leaves the flow state
            client.exchange_code_for_session({"auth_code": code, "code_verifier": "x" * 43})
        assert wrong.value.code == "bad_code_verifier"
        done = client.exchange_code_for_session({"auth_code": code})
        assert done.session is not None and done.user is not None
        with pytest.raises(AuthApiError) as again:  # destroyed by the exchange that succeeded
            client.exchange_code_for_session({"auth_code": code, "code_verifier": "x" * 43})
        assert (again.value.status, again.value.code) == (404, "flow_state_not_found")
        expired = parse_qs(urlsplit(_authorized(client, "http://127.0.0.1:9/cb")).query)["code"][0]
        clock.advance(301)
        with pytest.raises(AuthApiError) as late:
            client.exchange_code_for_session({"auth_code": expired})
        assert (late.value.status, late.value.code) == (422, "flow_state_expired")


@pytest.mark.parametrize(
    "query",
    [
        {"code_challenge": "a" * 42, "code_challenge_method": "s256"},
        {"code_challenge": "a" * 129, "code_challenge_method": "s256"},
        {"code_challenge": "a" * 43 + "!", "code_challenge_method": "s256"},
        {"code_challenge": "a" * 43},
        {"code_challenge": "a" * 43, "code_challenge_method": "md5"},
    ],
)
def test_the_stand_in_authorize_validates_pkce_as_supabase_does(
    pkce_stand_in: tuple[SupabaseAuthStandIn, FakeClock], query: dict[str, str]
) -> None:
    stand_in, _ = pkce_stand_in
    params = {"provider": "github", "redirect_to": "http://127.0.0.1:9/cb", **query}
    answer = httpx.get(f"{stand_in.issuer}/authorize", params=params, timeout=TIMEOUT)
    assert answer.status_code == 400
    assert answer.json()["error_code"] == "validation_failed"


def test_the_stand_in_pkce_exchange_needs_both_code_and_verifier(
    pkce_stand_in: tuple[SupabaseAuthStandIn, FakeClock],
) -> None:
    stand_in, _ = pkce_stand_in
    answer = httpx.post(
        f"{stand_in.issuer}/token?grant_type=pkce",
        json={"auth_code": "x", "code_verifier": ""},
        headers={"apikey": stand_in.anon_key},
        timeout=TIMEOUT,
    )
    assert (answer.status_code, answer.json()["error_code"]) == (400, "validation_failed")


# -- logout revokes at the API ------------------------------------------------------------------


class RevocationApi:
    """A loopback server playing the API: discovery (with or without revocation_endpoint), and
    a revocation endpoint that records what it is sent and answers ``status``."""

    def __init__(self, *, revocation: bool = True, status: int = 200) -> None:
        self.revoked: list[dict[str, list[str]]] = []
        self.status = status
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, status: int, document: Any) -> None:
                body = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path != "/.well-known/openid-configuration":
                    self._answer(404, {"error": "not_found"})
                    return
                document = render_metadata(outer.base_url, ["read"])
                if revocation:
                    document["revocation_endpoint"] = f"{outer.base_url}/revoke"
                self._answer(200, document)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                if self.path == "/revoke":
                    outer.revoked.append(form)
                    self._answer(outer.status, {} if outer.status == 200 else {"error": "nope"})
                else:
                    self._answer(404, {"error": "not_found"})

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def __enter__(self) -> RevocationApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_logout_revokes_the_session_at_the_api_then_signs_out_at_supabase(
    cli: Cli, stand_in: SupabaseAuthStandIn
) -> None:
    login(cli)
    session = json.loads((cli.state / "session.json").read_text())
    with RevocationApi() as api:
        result = cli.run("logout", TOKENGATE_API_URL=api.base_url)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert api.revoked == [
        {"token": [session["access_token"]], "token_type_hint": ["access_token"]}
    ]
    assert stand_in.counts["logout"] >= 1
    assert not (cli.state / "session.json").exists()


def test_logout_without_a_revocation_endpoint_only_signs_out(cli: Cli) -> None:
    login(cli)
    with RevocationApi(revocation=False) as api:
        result = cli.run("logout", TOKENGATE_API_URL=api.base_url)
    assert (result.returncode, result.stderr) == (0, "")
    assert api.revoked == [] and "Signed out" in result.stdout


@pytest.mark.parametrize("api_state", ["refuses", "down"])
def test_logout_deletes_local_state_when_the_api_cannot_revoke(cli: Cli, api_state: str) -> None:
    login(cli)
    with RevocationApi(status=400 if api_state == "refuses" else 503) as api:
        url = api.base_url
        if api_state == "down":
            api.server.shutdown()
            api.server.server_close()
        result = cli.run("logout", TOKENGATE_API_URL=url)
    assert result.returncode == 0
    warning = one_line_error(result)
    assert "warning" in warning and "did not revoke" in warning
    assert not (cli.state / "session.json").exists()
