"""Revocation on the local stack over HTTP, its gateway's authorizer cache included
(docs/revocation.md): the propagation bound at both authorizers, make revoke, and a third-party
verifier that reads the published status list with pyjwt and the standard library only."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest

from devstack.client import Client
from devstack.moto_aws import free_port
from devstack.stack import LocalStack
from devstack.state import remove_state, write_state
from tests.factories import HS_SECRET, USER_ID, hs_token, supabase_claims
from tests.jwks_server import JwksServer

OTHER_USER = "0f0e0d0c-0b0a-4909-8807-060504030201"
# A short bound for the test, set as an operator would: status list refresh 1 s, the gateway's
# authorizer cache 2 s. The bound is their sum plus a few seconds (docs/revocation.md).
REFRESH, CACHE_TTL, SLACK = 1, 2, 3
BOUND = REFRESH + CACHE_TTL + SLACK
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def stack(supabase_server: JwksServer) -> Iterator[LocalStack]:
    saved = dict(os.environ)
    running = LocalStack(
        free_port(),
        supabase_server.base_url,
        HS_SECRET,
        parameters={
            "AuthorizerCacheTtl": str(CACHE_TTL),
            "StatusListRefreshSeconds": str(REFRESH),
        },
    ).start()
    write_state(running)
    yield running
    remove_state(running)
    running.stop()
    os.environ.clear()
    os.environ.update(saved)


class Session:
    """One Supabase session: its Supabase token and an API token exchanged from it."""

    def __init__(self, stack: LocalStack, supabase: JwksServer, sub: str = USER_ID) -> None:
        self.client = Client(stack.base_url)
        self.claims = supabase_claims(iss=f"{supabase.base_url}/auth/v1", sub=sub)
        self.supabase = hs_token(self.claims)
        status, _, body = self.client.exchange(self.supabase)
        assert status == 200, body
        self.api = str(body["access_token"])

    def answers(self, n: int = 1) -> tuple[int, int]:
        """(API-token route, Supabase route) statuses; the Supabase authorizer's cache is keyed
        on the path, so each call takes a path it has seen before too."""
        return (
            self.client.get("/whoami", self.api)[0],
            self.client.get(f"/supabase/orders/{n}", self.supabase)[0],
        )


def make_revoke(stack: LocalStack, *arguments: str) -> subprocess.CompletedProcess[str]:
    """``make revoke`` against this stack (the script it runs, with the stack's port)."""
    return subprocess.run(
        [sys.executable, "scripts/revoke.py", *arguments, "--port", str(stack.port)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def refused_within(check: Callable[[], bool], bound: float) -> float:
    """Seconds until ``check`` holds, polled; fails if it does not within ``bound``."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < bound, f"not refused within {bound} s"
        time.sleep(0.2)
    return time.monotonic() - start


def test_a_revoked_session_is_refused_at_both_authorizers_within_the_bound(
    stack: LocalStack, supabase_server: JwksServer
) -> None:
    victim, sibling = Session(stack, supabase_server), Session(stack, supabase_server)
    stranger = Session(stack, supabase_server, OTHER_USER)
    for session in (victim, sibling, stranger):
        assert session.answers() == (200, 200)  # cached by the gateway from now on
    assert victim.client.revoke(victim.api)[0] == 200
    assert victim.client.exchange(victim.supabase)[0] == 400  # at once
    refused_within(lambda: victim.answers() == (401, 401), BOUND)
    time.sleep(CACHE_TTL + 0.5)
    assert victim.answers() == (401, 401)  # and for good
    assert victim.answers(2) == (401, 401)
    for session in (sibling, stranger):
        assert session.answers() == (200, 200)
        assert session.client.exchange(session.supabase)[0] == 200


def test_make_revoke_sub_refuses_every_older_token_of_the_user_and_none_of_another(
    stack: LocalStack, supabase_server: JwksServer
) -> None:
    user = "1a2b3c4d-1a2b-4c3d-8e9f-0a1b2c3d4e5f"
    sessions = [Session(stack, supabase_server, user) for _ in range(2)]
    stranger = Session(stack, supabase_server, OTHER_USER)
    for session in (*sessions, stranger):
        assert session.answers(3) == (200, 200)
    time.sleep(1.1)  # tokens issued in an earlier second than the revocation
    done = make_revoke(stack, "--sub", user)
    assert done.returncode == 0, done.stderr
    assert "2 session(s)" in done.stdout
    for session in sessions:
        refused_within(lambda s=session: s.answers(3) == (401, 401), BOUND)  # type: ignore[misc]
        assert session.client.exchange(session.supabase)[0] == 400
    assert stranger.answers(3) == (200, 200)
    time.sleep(1.1)
    again = Session(stack, supabase_server, user)  # signing in again after it works
    assert again.answers(4) == (200, 200)


def test_make_revoke_sid_revokes_one_session(
    stack: LocalStack, supabase_server: JwksServer
) -> None:
    victim, sibling = Session(stack, supabase_server), Session(stack, supabase_server)
    sid = victim.claims["session_id"]
    done = make_revoke(stack, "--sid", sid)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"revoked session {sid}; status list republished")
    refused_within(lambda: victim.answers(5) == (401, 401), BOUND)
    assert sibling.answers(5) == (200, 200)
    # A mistyped id is recorded all the same (it can never be exchanged), and said to be unknown.
    typo = make_revoke(stack, "--sid", sid + "x")
    assert typo.returncode == 0, typo.stderr
    assert "no token was ever issued for it here" in typo.stdout


# -- a third-party verifier: no product code below this line ---------------------------------


def get(url: str) -> tuple[bytes, dict[str, str]]:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return answer.read(), dict(answer.headers)


def third_party_status(api_token: str, issuer: str) -> int:
    """What any verifier does with discovery, pyjwt and the standard library: verify the API
    token, fetch the list its status claim names, verify that, read the token's bits."""
    metadata = json.loads(get(f"{issuer}/.well-known/openid-configuration")[0])
    jwks = json.loads(get(metadata["jwks_uri"])[0])
    keys = {k["kid"]: jwt.PyJWK(k) for k in jwks["keys"]}
    header = jwt.get_unverified_header(api_token)
    key = keys[header["kid"]]
    claims = jwt.decode(
        api_token, key.key, [key.algorithm_name], audience="api", issuer=metadata["issuer"]
    )
    reference = claims["status"]["status_list"]
    assert (
        reference["uri"]
        in json.loads(get(metadata["status_list_aggregation_endpoint"])[0])["status_lists"]
    )
    body, headers = get(reference["uri"])
    assert headers["Content-Type"] == "application/statuslist+jwt"
    list_header = jwt.get_unverified_header(body)
    assert list_header["typ"] == "statuslist+jwt"
    list_key = keys[list_header["kid"]]
    listed: dict[str, Any] = jwt.decode(body, list_key.key, [list_key.algorithm_name])
    assert listed["sub"] == reference["uri"]
    lst = listed["status_list"]["lst"]
    data = zlib.decompress(base64.urlsafe_b64decode(lst + "=" * (-len(lst) % 4)))
    bits, idx = listed["status_list"]["bits"], reference["idx"]
    return int((data[idx * bits // 8] >> (idx * bits % 8)) & ((1 << bits) - 1))


def test_a_third_party_verifier_reads_the_status_list(
    stack: LocalStack, supabase_server: JwksServer
) -> None:
    session = Session(stack, supabase_server)
    assert third_party_status(session.api, stack.base_url) == 0
    assert session.client.revoke(session.supabase)[0] == 200  # by its Supabase token this time
    assert third_party_status(session.api, stack.base_url) == 1
