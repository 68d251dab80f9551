"""The local stack over real HTTP on loopback (docs/contract.md §9): the acceptance path of the exchange."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest

from devstack.client import Client, http
from devstack.invoke import expired_api_token
from devstack.moto_aws import free_port
from devstack.stack import LocalStack
from devstack.state import state_path
from devstack.template import Template
from tests.factories import (
    DROP,
    HS_SECRET,
    USER_ID,
    KeyPair,
    anon_key_claims,
    b64json,
    hs_token,
    key_token,
    supabase_claims,
)
from tests.jwks_server import JwksServer
from tokengate.errors import INVALID_SUBJECT

pytestmark = pytest.mark.stack
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def supabase(supabase_server: JwksServer) -> JwksServer:
    return supabase_server


@pytest.fixture
def stack(local_stack: LocalStack) -> LocalStack:
    return local_stack


@pytest.fixture
def client(local_stack: LocalStack) -> Client:
    return Client(local_stack.base_url)


def claims_for(supabase: JwksServer, **overrides: Any) -> dict[str, Any]:
    return supabase_claims(iss=f"{supabase.base_url}/auth/v1", **overrides)


def verify_through_discovery(client: Client, token: str) -> dict[str, Any]:
    """What any standard verifier does: discovery → jwks_uri → key by kid → verify."""
    status, _, metadata = client.get("/.well-known/openid-configuration")
    assert status == 200
    jwks_client = jwt.PyJWKClient(metadata["jwks_uri"], cache_keys=False)
    signing_key = jwks_client.get_signing_key_from_jwt(token)
    return jwt.decode(
        token,
        signing_key.key,
        algorithms=["RS256", "ES256"],
        audience="api",
        issuer=metadata["issuer"],
    )


def test_hs256_token_with_kid_is_exchanged(client: Client, supabase: JwksServer) -> None:
    subject = claims_for(supabase)
    status, headers, body = client.exchange(hs_token(subject, kid="IBZFPqpuE0oC+hnZ"))
    assert status == 200, body
    assert headers["Cache-Control"] == "no-store"
    claims = verify_through_discovery(client, body["access_token"])
    assert jwt.get_unverified_header(body["access_token"])["typ"] == "at+jwt"
    assert claims["iss"] == client.base_url
    assert claims["sub"] == USER_ID
    assert claims["aud"] == "api"
    assert claims["sid"] == subject["session_id"]
    assert claims["exp"] - claims["iat"] == 900
    assert claims["jti"]


def test_es256_token_from_the_project_jwks_is_exchanged(
    client: Client, supabase: JwksServer, ec_key: KeyPair
) -> None:
    status, _, body = client.exchange(key_token(ec_key, claims_for(supabase)))
    assert status == 200, body
    assert verify_through_discovery(client, body["access_token"])["sub"] == USER_ID
    assert any(path.endswith("/auth/v1/.well-known/jwks.json") for path in supabase.paths)


def rejected(supabase: JwksServer) -> dict[str, str]:
    now = int(time.time())
    good = hs_token(claims_for(supabase))
    _, payload, _ = good.split(".")
    return {
        "anon key": hs_token(anon_key_claims(now, "anon"), kid=DROP),
        "service_role key": hs_token(anon_key_claims(now, "service_role"), kid=DROP),
        "anonymous user": hs_token(claims_for(supabase, is_anonymous=True)),
        "expired": hs_token(claims_for(supabase, iat=now - 7200, exp=now - 3600)),
        "wrong issuer": hs_token(supabase_claims()),
        "alg none": f"{b64json({'alg': 'none', 'typ': 'JWT'})}.{payload}.",
        "garbage": "garbage",
        "Bearer prefix": f"Bearer {good}",
    }


@pytest.mark.parametrize(
    "name",
    [
        "anon key",
        "service_role key",
        "anonymous user",
        "expired",
        "wrong issuer",
        "alg none",
        "garbage",
        "Bearer prefix",
    ],
)
def test_unacceptable_tokens_get_one_generic_invalid_request(
    client: Client, supabase: JwksServer, name: str
) -> None:
    status, headers, body = client.exchange(rejected(supabase)[name])
    assert status == 400
    assert body == {"error": "invalid_request", "error_description": INVALID_SUBJECT}
    assert headers["Cache-Control"] == "no-store"


def test_oauth_errors(client: Client, supabase: JwksServer) -> None:
    token = hs_token(claims_for(supabase))
    assert client.exchange(token, grant_type="password")[2]["error"] == "unsupported_grant_type"
    assert client.exchange(token, audience="other-api")[2]["error"] == "invalid_target"
    assert client.exchange(token, scope="write")[2]["error"] == "invalid_scope"
    assert client.exchange(token, scope="read")[0] == 200


def test_oversized_and_wrong_content_types(client: Client) -> None:
    status, _, body = http(
        "POST",
        client.base_url + "/token",
        b"x" * 40000,
        {"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert (status, body["error"]) == (400, "invalid_request")
    status, _, body = http(
        "POST", client.base_url + "/token", b"grant_type=x", {"Content-Type": "text/plain"}
    )
    assert (status, body["error"]) == (400, "invalid_request")


def test_jwks_and_discovery(client: Client) -> None:
    status, headers, jwks = client.get("/.well-known/jwks.json")
    assert status == 200
    assert headers["Cache-Control"].startswith("public, max-age=")
    status, _, metadata = client.get("/.well-known/oauth-authorization-server")
    assert metadata["issuer"] == client.base_url
    assert http("GET", metadata["jwks_uri"])[2] == jwks


def test_kms_unavailable_is_503_without_a_token(supabase: JwksServer) -> None:
    saved = dict(os.environ)
    stack = LocalStack(free_port(), supabase.base_url, HS_SECRET).start()
    try:
        client = Client(stack.base_url)
        token = hs_token(claims_for(supabase))
        assert client.exchange(token)[0] == 200
        stack.stop_aws()
        status, headers, body = client.exchange(token)
        assert status == 503
        assert body["error"] == "temporarily_unavailable"
        assert "access_token" not in body
        assert headers["Retry-After"].isdigit()
        assert "Traceback" not in json.dumps(body)
    finally:
        stack.stop()
        os.environ.clear()
        os.environ.update(saved)


READY = "Ctrl-C stops everything"
# Bounds on waiting for a child: generous, they catch a hang instead of timing anything.
START_WAIT = 90.0
STOP_WAIT = 60.0


def stack_env(**variables: str) -> dict[str, str]:
    """This environment without any AWS, Supabase or other setting of the caller's, plus these."""
    prefixes = ("AWS_", "SUPABASE_", "SIGNING_")
    ours = set(Template.load().global_variables())
    return {
        k: v for k, v in os.environ.items() if not k.startswith(prefixes) and k not in ours
    } | variables


class ChildOutput:
    """What a child process prints, read line by line in a thread so every wait is bounded."""

    def __init__(self, stream: Any) -> None:
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: Any) -> None:
        with stream:
            for line in stream:
                self._lines.put(line)
        self._lines.put(None)

    def _read(self, wait: float, last: Callable[[str], bool], late: str, ended: str | None) -> str:
        """Lines up to and including the first that ``last`` accepts, or up to the end of the
        output when ``ended`` is None. Fails with ``late`` when ``wait`` runs out first, and with
        ``ended`` when the output ends first; either message is followed by what was read."""
        lines: list[str] = []
        deadline = time.monotonic() + wait
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"{late}: {''.join(lines)[-2000:]}")
            if line is None:
                if ended is None:
                    return "".join(lines)
                pytest.fail(f"{ended}: {''.join(lines)[-2000:]}")
            lines.append(line)
            if last(line):
                return "".join(lines)

    def until(self, marker: str, wait: float) -> str:
        """Lines up to and including the first that starts with ``marker``."""
        return self._read(
            wait,
            lambda line: line.startswith(marker),
            f"no {marker!r} line within {wait:.0f} s",
            f"the child ended before {marker!r}",
        )

    def line(self, wait: float) -> str:
        """The next line."""
        try:
            line = self._lines.get(timeout=wait)
        except queue.Empty:
            pytest.fail(f"no line within {wait:.0f} s")
        if line is None:
            pytest.fail("the child's output ended")
        return line

    def rest(self, wait: float) -> str:
        """Everything up to the end of the output."""
        return self._read(
            wait, lambda line: False, f"output still open after {wait:.0f} s", ended=None
        )


_OUTPUTS: dict[int, ChildOutput] = {}  # by pid: the rest of what each served child prints


def child_output(process: subprocess.Popen[str]) -> ChildOutput:
    return _OUTPUTS[process.pid]


@contextlib.contextmanager
def served(
    command: list[str], **variables: str
) -> Iterator[tuple[subprocess.Popen[str], int, str]]:
    """The local stack started by ``command`` on a free port, in its own process group, with what
    it printed up to the ready line. Nothing it starts outlives the test, even when the test fails."""
    port = free_port()
    env = stack_env(PORT=str(port), **variables)
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output = _OUTPUTS[process.pid] = ChildOutput(process.stdout)
        yield process, port, output.until(READY, START_WAIT)
    finally:
        _OUTPUTS.pop(process.pid, None)
        if process.poll() is None:
            left = _read(state_path(port))  # while the stack lives, the record is its own
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_WAIT)
            _remove_record(port, left)


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (OSError, ValueError):  # absent, unreadable or not text: nothing of ours to remove
        return None


def _remove_record(port: int, record: str | None) -> None:
    """What a killed stack could not remove itself: its record in .aws-sam/local/ and its log's
    folder (not another stack's, should one have taken the port since)."""
    if record is None or _read(state_path(port)) != record:
        return
    with contextlib.suppress(ValueError, AttributeError, TypeError):
        log_file = json.loads(record).get("log_file")
        if log_file and Path(log_file).parent.name.startswith("tokengate-local-"):
            shutil.rmtree(Path(log_file).parent, ignore_errors=True)
    with contextlib.suppress(OSError):
        state_path(port).unlink(missing_ok=True)


def output_after_stop(process: subprocess.Popen[str]) -> str:
    """Waits for the stack to exit after a stop signal and returns the rest of what it printed."""
    try:
        process.wait(timeout=STOP_WAIT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the local stack did not stop after a stop signal (waited {STOP_WAIT:.0f} s)")
    return child_output(process).rest(STOP_WAIT)


def test_make_run_walkthrough_works_as_printed() -> None:
    """`make run` starts and prints a walkthrough that works verbatim; SIGTERM stops it."""
    with served(["make", "--no-print-directory", "run"]) as (process, port, output):
        assert f"http://127.0.0.1:{port}" in output, output
        ready = http("GET", f"http://127.0.0.1:{port}/.well-known/openid-configuration")
        assert ready[0] == 200
        script = output.split("Try it (copy-paste into a shell):", 1)[1].split(READY, 1)[0]
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )
        assert result.returncode == 0, result.stderr
        answers = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
        exchange, read_write, whoami, supabase_whoami, jwks = answers
        assert exchange["token_type"] == "Bearer"
        assert read_write["scope"] == "read write"
        assert whoami["sub"] == supabase_whoami["sub"]
        assert whoami["scope"] == "read"
        assert jwks["keys"]
        record = state_path(port)  # where make events finds the running stack
        assert record.stat().st_mode & 0o077 == 0
        assert json.loads(record.read_text())["base_url"] == f"http://127.0.0.1:{port}"

        # The whole group gets SIGTERM and make forwards it too: the stack sees it twice.
        os.killpg(process.pid, signal.SIGTERM)
        rest = output_after_stop(process)
    assert rest.rstrip().endswith("stopped."), rest[-2000:]
    assert not state_path(port).exists()
    with pytest.raises(urllib.error.URLError):
        http("GET", f"http://127.0.0.1:{port}/.well-known/jwks.json")


def test_a_misspelt_setting_is_reported_in_one_line_at_start() -> None:
    """A variable that looks like one of ours but is not is named, with a guess, before the
    stack serves; it does not stop the stack (shells carry other tools' variables too)."""
    typos = {"ROUTE_SCOPE": "{}", "TOKEN_TTL": "60", "SUPABASE_ACCESS_TOKEN": "Supabase CLI's"}
    with served([sys.executable, "-m", "devstack"], **typos) as (_, port, output):
        warnings = [line for line in output.splitlines() if "warning" in line]
        assert warnings == [
            "make run: warning: ignoring ROUTE_SCOPE (did you mean ROUTE_SCOPES?); "
            "TOKEN_TTL (did you mean TOKEN_TTL_SECONDS?)"
        ]
        assert http("GET", f"http://127.0.0.1:{port}/.well-known/jwks.json")[0] == 200


def test_a_burst_of_stop_signals_stops_the_stack_cleanly() -> None:
    """Ctrl-C pressed twice, or make forwarding the signal the terminal already sent, must stop
    the stack, never hang it."""
    with served([sys.executable, "-m", "devstack"]) as (process, _, _):
        for number in range(200):
            process.send_signal(signal.SIGTERM if number % 2 else signal.SIGINT)
        rest = output_after_stop(process)
    assert process.returncode == 0, rest[-2000:]
    assert rest.rstrip().endswith("stopped."), rest[-2000:]


def test_each_log_line_names_the_function_and_invocation_that_wrote_it() -> None:
    """Five functions share the local stack's process (in AWS, each has its own): an
    authorizer's line must not carry the exchange's function name or request id."""
    with served([sys.executable, "-m", "devstack"]) as (process, port, _):
        child = child_output(process)
        client = Client(f"http://127.0.0.1:{port}")
        assert client.exchange("garbage")[0] == 400
        assert client.get("/whoami", "a.b.c")[0] == 401
        assert client.get("/supabase/whoami", "a.b.c")[0] == 401
        assert client.exchange("garbage")[0] == 400
        records: list[dict[str, Any]] = []
        while len(records) < 4:
            line = child.line(STOP_WAIT)
            if line.startswith("{") and "_aws" not in line:  # a log line, not a metric
                records.append(json.loads(line))
    assert [(r["message"], r["function_name"]) for r in records] == [
        ("token exchange refused", "TokenExchangeFunction"),
        ("authorizer decision", "ApiTokenAuthorizerFunction"),
        ("authorizer decision", "SupabaseAuthorizerFunction"),
        ("token exchange refused", "TokenExchangeFunction"),
    ]
    assert len({r["function_request_id"] for r in records}) == 4
    assert all(r["function_arn"].endswith(f":function:{r['function_name']}") for r in records)
    assert [r["cold_start"] for r in records] == [True, True, True, False]


def blocked_signals(pid: int) -> dict[str, int]:
    """Each thread's blocked-signal mask, from /proc."""
    masks = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        status = (task / "status").read_text()
        found = re.search(r"^SigBlk:\s*([0-9a-f]+)$", status, re.M)
        assert found is not None, status
        masks[task.name] = int(found[1], 16)
    return masks


def test_no_server_thread_can_take_a_stop_signal() -> None:
    """The cause of a hang on a burst of signals, checked directly: the kernel gives a signal
    sent to the process to any thread that does not block it, and one taken by a server thread
    never woke the main thread. Every other thread must block SIGINT and SIGTERM; the main thread
    takes them with sigwait (which unblocks them while it waits)."""
    with served([sys.executable, "-m", "devstack"]) as (process, _, _):
        masks = blocked_signals(process.pid)
    others = {tid: mask for tid, mask in masks.items() if tid != str(process.pid)}
    assert others, masks  # the moto and HTTP server threads are running
    stop = (1 << (signal.SIGINT - 1)) | (1 << (signal.SIGTERM - 1))
    assert {tid: mask & stop for tid, mask in others.items()} == dict.fromkeys(others, stop)


# -- protected routes through the authorizers (docs/contract.md §3.3, §7) ---------------------------------


def expired(stack: LocalStack) -> str:
    assert stack.aws is not None
    return expired_api_token(
        stack.aws.client("kms"), stack.provisioned.signing_key_arn, stack.base_url, USER_ID
    )


def test_protected_routes(client: Client, stack: LocalStack, supabase: JwksServer) -> None:
    supabase_token = hs_token(
        claims_for(supabase, app_metadata={"provider": "email", "api_scopes": ["write"]})
    )
    api_token = client.exchange(supabase_token)[2]["access_token"]
    write_only = client.exchange(supabase_token, scope="write")[2]["access_token"]

    status, _, body = client.get("/whoami", api_token)
    assert status == 200
    assert (body["sub"], body["scope"], body["principalId"]) == (USER_ID, "read", USER_ID)

    assert client.get("/whoami")[0] == 401
    tampered = api_token[:-6] + ("AAAAAA" if not api_token.endswith("AAAAAA") else "BBBBBB")
    assert client.get("/whoami", tampered)[0] == 401
    assert client.get("/whoami", expired(stack))[0] == 401
    assert client.get("/whoami", write_only)[0] == 403
    assert client.get("/whoami", supabase_token)[0] == 401

    status, _, body = client.get("/supabase/whoami", supabase_token)
    assert (status, body["sub"]) == (200, USER_ID)
    assert client.get("/supabase/whoami", api_token)[0] == 401
    assert client.get("/supabase/whoami")[0] == 401


def test_unauthorized_answers_carry_www_authenticate(client: Client) -> None:
    status, headers, body = client.get("/whoami", "abc.def.ghi")
    assert status == 401
    assert body["error"] == "invalid_token"
    assert headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')


# `python -m devstack` (what make run runs), then whether it got as far as loading moto.
RUN_MAKE_RUN_AND_SAY_IF_MOTO_LOADED = """
import runpy, sys
try:
    runpy.run_module("devstack", run_name="__main__", alter_sys=True)
finally:
    print("moto loaded:", "moto" in sys.modules)
"""


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"PORT": "abc"}, "PORT='abc' must be a TCP port number"),
        ({"PORT": "70000"}, "PORT='70000' must be a TCP port number"),
        ({"PORT": "\u00b2"}, "PORT='\u00b2' must be a TCP port number"),
        ({"SIGNING_ALG": "PS256"}, "SigningAlgorithm='PS256' is not allowed"),
        ({"SIGNING_MODE": "hsm"}, "SigningMode='hsm' is not allowed"),
        ({"SUPABASE_URL": "ftp://example.com"}, "SupabaseUrl='ftp://example.com' does not match"),
        ({"SUPABASE_JWT_SECRET": "too-short"}, "secret must be at least 32 bytes"),
        # The settings first, then the secret, as the functions read them.
        (
            {"SUPABASE_JWT_SECRET": "too-short", "AUDIENCES": " "},
            "AUDIENCES must name at least one audience",
        ),
        ({"MIN_AAL": "aal3"}, "MIN_AAL: MinAal='aal3' is not allowed: choose one of aal1, aal2"),
        ({"TOKEN_TTL_SECONDS": "30"}, "TOKEN_TTL_SECONDS: TokenTtlSeconds='30' is outside 60"),
        ({"JWKS_CACHE_SECONDS": "0"}, "JWKS_CACHE_SECONDS: JwksCacheSeconds='0' is outside 1"),
        ({"SESSION_CHECK": "maybe"}, "SESSION_CHECK: SessionCheck='maybe' is not allowed"),
        # A real project (no stand-in, whose anon key make run would supply) and no key.
        (
            {"SESSION_CHECK": "true", "SUPABASE_URL": "http://127.0.0.1:54321"},
            "SESSION_CHECK needs SUPABASE_API_KEY",
        ),
        ({"RESOURCES": "[1]"}, "RESOURCES must be a JSON object"),
        ({"ISSUER": "not a url"}, "ISSUER must be an http(s) URL"),
        (
            {"AUTHORIZER_CACHE_TTL": "61"},
            "AUTHORIZER_CACHE_TTL: AuthorizerCacheTtl='61' is outside 0..60",
        ),
        (
            {"AUTHORIZER_CACHE_TTL": "45", "LEEWAY_SECONDS": "0"},
            "AUTHORIZER_CACHE_TTL and LEEWAY_SECONDS: the authorizer cache TTL (45 s) may exceed",
        ),
        ({}, "is in use; try PORT="),
    ],
)
def test_make_run_explains_a_bad_setting_in_one_line(
    variables: dict[str, str], message: str
) -> None:
    """In one line, and before anything starts: the local AWS (moto) is not even imported."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        # The port is in use, unless the case sets its own PORT.
        env = stack_env(PORT=str(taken.getsockname()[1])) | variables
        result = subprocess.run(
            [sys.executable, "-c", RUN_MAKE_RUN_AND_SAY_IF_MOTO_LOADED],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("make run: "), result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr  # no stack trace
    assert result.stdout == "moto loaded: False\n"


# -- answers as API Gateway gives them, for any method and any malformed request ---------------

SOCKET_WAIT = 30.0  # a bound on each socket read: catches a hang, times nothing


def raw_exchange(stack: LocalStack, request: bytes) -> tuple[bytes, bool]:
    """Sends raw bytes, keeps the connection open, and returns what came back and whether the
    stack closed the connection itself (instead of waiting for more from the client)."""
    with socket.create_connection(("127.0.0.1", stack.port), timeout=SOCKET_WAIT) as sock:
        sock.sendall(request)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except TimeoutError:
            return received, False
    return received, True


def parse_answer(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("HEAD", "/whoami"),
        ("OPTIONS", "/token"),
        ("PROPFIND", "/token"),
        ("DELETE", "/token"),
        ("GET", "/no/such/route"),
        ("POST", "/whoami"),
        ("GET", "/whoami"),
    ],
)
def test_any_method_and_route_gets_the_gateway_answer(
    stack: LocalStack, method: str, path: str
) -> None:
    """Over HTTP, whatever the method, the answer the gateway gives (never Python's 501 page):
    the same status, headers and JSON body as the gateway's own, HEAD without the body."""
    assert stack.gateway is not None
    expected = stack.gateway.handle(method, path, {"Host": "x"}, b"", "127.0.0.1")
    request = f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    raw, closed = raw_exchange(stack, request)
    status, headers, body = parse_answer(raw)
    assert closed
    assert status == expected.status, raw
    assert headers["Content-Type"] == "application/json"
    assert {k: headers[k] for k in expected.headers} == expected.headers
    assert int(headers["Content-Length"]) == len(expected.body)
    if method == "HEAD":
        assert body == b""
    else:
        assert json.loads(body) == json.loads(expected.body)
        assert isinstance(json.loads(body), dict)


@pytest.mark.parametrize(
    ("framing", "status"),
    [
        ("Content-Length: -1", 400),
        ("Content-Length: abc", 400),
        ("Content-Length: 1e3", 400),
        ("Content-Length: \u00b2", 400),  # a digit to str.isdigit, not to int()
        ("Content-Length: 5\r\nContent-Length: 6", 400),
        ("Content-Length: 99999999999", 413),
        ("Transfer-Encoding: chunked", 411),
    ],
)
def test_a_malformed_body_length_is_answered_and_the_connection_closed(
    stack: LocalStack, client: Client, framing: str, status: int
) -> None:
    """Kept open by the client, the connection must still be answered and closed by the stack:
    no handler thread waits for a body whose end it cannot know, and no traceback."""
    request = f"POST /token HTTP/1.1\r\nHost: x\r\n{framing}\r\n\r\ngrant_type=x".encode("latin-1")
    raw, closed = raw_exchange(stack, request)
    got_status, headers, body = parse_answer(raw)
    assert (got_status, headers["Connection"]) == (status, "close"), raw
    assert headers["Content-Type"] == "application/json"
    assert isinstance(json.loads(body), dict)
    assert closed
    assert client.get("/.well-known/jwks.json")[0] == 200  # still serving


@pytest.mark.parametrize(
    ("request_bytes", "expected"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET / HTTP/7.0\r\n\r\n", 505),
        (b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n", 414),
    ],
)
def test_a_malformed_request_line_gets_json_not_an_html_page(
    stack: LocalStack, request_bytes: bytes, expected: int
) -> None:
    raw, closed = raw_exchange(stack, request_bytes)
    status, headers, body = parse_answer(raw)
    assert status == expected, raw
    assert headers["Content-Type"] == "application/json"
    assert set(json.loads(body)) == {"message"}
    assert closed


def test_a_body_shorter_than_announced_does_not_hold_a_thread(stack: LocalStack) -> None:
    """A client that announces more than it sends and hangs up: the stack's thread ends."""
    before = threading.active_count()
    with socket.create_connection(("127.0.0.1", stack.port), timeout=SOCKET_WAIT) as sock:
        sock.sendall(b"POST /token HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(65536) == b""  # closed without an answer: there is no request to answer
    deadline = time.monotonic() + SOCKET_WAIT
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= before
