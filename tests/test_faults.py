"""Failure and fault injection (docs/contract.md §12 G-27): AWS and the Supabase JWKS misbehaving.

The exchange answers 503 temporarily_unavailable with Retry-After (or serves from cached keys);
the authorizers never Allow; no token is ever half-issued.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from tests.conftest import InProcessApi
from tests.factories import KeyPair, ec_pair, hs_token, key_token, supabase_claims
from tests.jwks_server import JwksServer

MakeApi = Callable[..., InProcessApi]


@pytest.fixture
def blackhole() -> Iterator[str]:
    """A loopback endpoint that accepts connections and never answers (a hung dependency)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def assert_unavailable(answer: tuple[int, dict[str, str], object]) -> None:
    status, headers, body = answer
    assert status == 503
    assert body == {"error": "temporarily_unavailable", "error_description": "Try again shortly."}
    assert headers["Retry-After"].isdigit()
    assert headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("endpoint", ["refused", "hung"])
def test_aws_unreachable_at_the_exchange(make_api: MakeApi, blackhole: str, endpoint: str) -> None:
    """Secrets Manager and KMS both unreachable: the HS256 secret cannot be read, nothing signs."""
    url = "http://127.0.0.1:1" if endpoint == "refused" else blackhole
    api = make_api(AWS_ENDPOINT_URL=url)
    started = time.monotonic()
    assert_unavailable(api.exchange(hs_token(supabase_claims())))
    # Bounded: 2 s to connect, 3 s to read, 2 attempts; well inside the function's 10 s timeout.
    assert time.monotonic() - started < 8


def test_secrets_manager_signing_key_unreachable(make_api: MakeApi) -> None:
    api = make_api({"SigningMode": "secretsmanager"}, AWS_ENDPOINT_URL="http://127.0.0.1:1")
    assert_unavailable(api.exchange(hs_token(supabase_claims())))
    status, _, body = api.call("GET", "/.well-known/jwks.json")
    assert (status, body["error"]) == (503, "temporarily_unavailable")


def test_authorizers_never_allow_when_dependencies_fail(make_api: MakeApi) -> None:
    api = make_api(
        AWS_ENDPOINT_URL="http://127.0.0.1:1", API_JWKS_URL="http://127.0.0.1:1/jwks.json"
    )
    token = hs_token(supabase_claims())
    assert api.call("GET", "/supabase/whoami", Authorization=f"Bearer {token}")[0] == 401
    assert api.call("GET", "/whoami", Authorization=f"Bearer {token}")[0] == 401


@pytest.fixture
def project(ec_key: KeyPair) -> Iterator[JwksServer]:
    with JwksServer({"keys": [ec_key.jwk()]}) as server:
        yield server


def claims_for(server: JwksServer) -> dict[str, object]:
    return supabase_claims(iss=f"{server.base_url}/auth/v1")


@pytest.mark.parametrize("mode", ["error", "redirect", "huge", "invalid", "hang"])
def test_supabase_jwks_failures_with_nothing_cached(
    make_api: MakeApi, project: JwksServer, ec_key: KeyPair, mode: str
) -> None:
    api = make_api({"SupabaseUrl": project.base_url})
    project.mode = mode
    started = time.monotonic()
    assert_unavailable(api.exchange(key_token(ec_key, claims_for(project))))
    assert time.monotonic() - started < 5  # the JWKS client's deadline is 3 s
    status = api.call(
        "GET", "/supabase/whoami", Authorization=f"Bearer {key_token(ec_key, claims_for(project))}"
    )[0]
    assert status == 401
    # HS256 tokens do not depend on the JWKS and keep working.
    assert api.exchange(hs_token(claims_for(project)))[0] == 200


def test_supabase_jwks_failure_serves_the_last_good_keys(
    make_api: MakeApi, project: JwksServer, ec_key: KeyPair
) -> None:
    api = make_api({"SupabaseUrl": project.base_url})
    token = key_token(ec_key, claims_for(project))
    assert api.exchange(token)[0] == 200
    project.mode = "error"
    assert api.exchange(token)[0] == 200  # cached keys keep serving
    unknown = key_token(ec_pair("rotated-in"), claims_for(project))
    status, _, body = api.exchange(unknown)
    assert (status, body["error"]) == (400, "invalid_request")


def test_refetch_storm_through_the_handler(
    make_api: MakeApi, project: JwksServer, ec_key: KeyPair
) -> None:
    """docs/contract.md §12 B-9 at the exchange: 1,000 random kids, one JWKS fetch per window."""
    api = make_api({"SupabaseUrl": project.base_url})
    assert api.exchange(key_token(ec_key, claims_for(project)))[0] == 200
    before = project.requests
    for _ in range(1000):
        assert api.exchange(key_token(ec_pair(), claims_for(project)))[0] == 400
    assert project.requests - before <= 1


# -- the optional live-session check (docs/contract.md §5) -------------------------------------------------


@pytest.fixture
def session_api(make_api: MakeApi, project: JwksServer) -> InProcessApi:
    return make_api(
        {
            "SupabaseUrl": project.base_url,
            "SessionCheck": "true",
            "SupabaseApiKey": "sb_publishable_local",
        }
    )


def test_session_check_passes_a_live_session(
    session_api: InProcessApi, project: JwksServer
) -> None:
    token = hs_token(claims_for(project))
    assert session_api.exchange(token)[0] == 200
    (sent,) = project.user_requests
    assert sent["apikey"] == "sb_publishable_local"
    assert sent["authorization"] == f"Bearer {token}"


@pytest.mark.parametrize("status", [401, 403, 404])
def test_session_check_refuses_an_ended_session(
    session_api: InProcessApi, project: JwksServer, status: int
) -> None:
    project.user_status = status
    answer = session_api.exchange(hs_token(claims_for(project)))
    assert (answer[0], answer[2]["error"]) == (400, "invalid_request")


@pytest.mark.parametrize("failure", ["status 500", "status 302", "hang"])
def test_session_check_outage_is_503(
    session_api: InProcessApi, project: JwksServer, failure: str
) -> None:
    if failure == "hang":
        project.mode = "hang"
    else:
        project.user_status = int(failure.split()[1])
    started = time.monotonic()
    assert_unavailable(session_api.exchange(hs_token(claims_for(project))))
    assert time.monotonic() - started < 5


def test_session_check_is_off_by_default(make_api: MakeApi, project: JwksServer) -> None:
    api = make_api({"SupabaseUrl": project.base_url})
    assert api.exchange(hs_token(claims_for(project)))[0] == 200
    assert project.user_requests == []


def test_session_check_needs_the_api_key(make_api: MakeApi, project: JwksServer) -> None:
    from tokengate.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="SUPABASE_API_KEY"):
        make_api({"SupabaseUrl": project.base_url, "SessionCheck": "true"})
