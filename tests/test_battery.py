"""docs/contract.md §12 A-F on each surface: the Supabase verifier, the API-token verifier, and over
HTTP through the local stack (/token, /supabase/whoami, /whoami). Logs captured throughout must
hold no token, signature or secret (G-29)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from devstack.client import Client
from devstack.stack import LocalStack
from tests.battery import api_token_attacks, supabase_attacks
from tests.conftest import FakeClock, StaticJwksFetcher
from tests.factories import (
    DROP,
    HS_SECRET,
    USER_ID,
    KeyPair,
    StaticKeySet,
    hs256,
    jws,
    key_token,
    supabase_claims,
)
from tests.jwks_server import JwksServer
from tokengate.apitoken import ApiTokenVerifier
from tokengate.aws import KmsSigner
from tokengate.errors import INVALID_SUBJECT, InvalidTokenError
from tokengate.jwks import JwksCache
from tokengate.jws import b64url_encode, encode_compact
from tokengate.keys import HmacKey, key_from_jwk
from tokengate.supabase import SupabasePolicy, SupabaseTokenVerifier

MAX_HEADER_BYTES = 10_240  # API Gateway refuses larger request headers before any authorizer


@pytest.fixture(scope="module")
def attacker() -> Iterator[JwksServer]:
    """Where jku/x5u point: it must never be asked for anything."""
    with JwksServer({"keys": []}) as server:
        yield server


@pytest.fixture(scope="module")
def attacks(
    supabase_server: JwksServer, ec_key: KeyPair, rsa_key: KeyPair, attacker: JwksServer
) -> dict[str, str]:
    return supabase_attacks(
        f"{supabase_server.base_url}/auth/v1", HS_SECRET, ec_key, rsa_key, attacker.base_url
    )


def sendable_as_header(token: str) -> bool:
    return (
        len(token) < MAX_HEADER_BYTES
        and token.isprintable()
        and token.isascii()
        and token == token.strip()
    )


@pytest.fixture
def logs(capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> Callable[[], str]:
    """Everything logged during the test, at every level: records and the handlers' stdout."""
    caplog.set_level(logging.DEBUG)

    def captured() -> str:
        out, err = capfd.readouterr()
        return out + err + caplog.text

    return captured


def secrets_in(text: str, tokens: list[str]) -> list[str]:
    """Every token, and every signature segment long enough to identify one, found in ``text``."""
    found = [HS_SECRET] if HS_SECRET in text else []
    for token in tokens:
        parts = token.split(".")
        if len(token) >= 40 and token in text:
            found.append(token[:20] + "…")
        if len(parts) == 3 and len(parts[2]) >= 16 and parts[2] in text:
            found.append("signature of " + token[:20] + "…")
    return found


# -- the core verifiers --------------------------------------------------------------------


def test_supabase_verifier_refuses_the_whole_battery(
    attacks: dict[str, str], supabase_server: JwksServer, ec_key: KeyPair, rsa_key: KeyPair
) -> None:
    issuer = f"{supabase_server.base_url}/auth/v1"
    fetcher = StaticJwksFetcher(ec_key, rsa_key)
    secret = HmacKey(HS_SECRET.encode())
    verifier = SupabaseTokenVerifier(
        SupabasePolicy(issuer=issuer),
        hmac_key=lambda: secret,
        jwks=JwksCache(f"{issuer}/.well-known/jwks.json", fetcher, clock=FakeClock(time.time())),
    )
    assert verifier.verify(key_token(ec_key, supabase_claims(iss=issuer))).sub == USER_ID  # control
    accepted = []
    for name, token in attacks.items():
        try:
            verifier.verify(token)
            accepted.append(name)
        except InvalidTokenError:
            pass
    assert accepted == []
    assert len(attacks) >= 170


def test_high_s_ecdsa_twin_verifies_like_the_original(
    supabase_server: JwksServer, ec_key: KeyPair
) -> None:
    """(r, n-s) is another valid signature of the same token (G-30): a denylist must key on
    jti/session_id, never on token bytes. Both verify, and both name the same session."""
    from tokengate.keys import P256_ORDER

    issuer = f"{supabase_server.base_url}/auth/v1"
    verifier = SupabaseTokenVerifier(
        SupabasePolicy(issuer=issuer),
        jwks=JwksCache(f"{issuer}/.well-known/jwks.json", StaticJwksFetcher(ec_key)),
    )
    token = key_token(ec_key, supabase_claims(iss=issuer))
    signing_input, signature = token.rsplit(".", 1)
    from tokengate.jws import b64url_decode

    raw = b64url_decode(signature)
    twin = f"{signing_input}.{b64url_encode(raw[:32] + (P256_ORDER - int.from_bytes(raw[32:], 'big')).to_bytes(32, 'big'))}"
    assert twin != token
    assert verifier.verify(twin).session_id == verifier.verify(token).session_id


# -- over HTTP ------------------------------------------------------------------------------


def test_token_endpoint_refuses_the_whole_battery(
    local_stack: LocalStack,
    attacks: dict[str, str],
    attacker: JwksServer,
    supabase_server: JwksServer,
    logs: Callable[[], str],
) -> None:
    client = Client(local_stack.base_url)
    issuer = f"{supabase_server.base_url}/auth/v1"
    control = client.exchange(
        jws(
            {"alg": "HS256", "typ": "JWT"},
            supabase_claims(iss=issuer),
            lambda m: hs256(m, HS_SECRET),
        )
    )
    assert control[0] == 200
    outcomes: dict[str, Any] = {}
    for name, token in attacks.items():
        status, headers, body = client.exchange(token)
        outcomes[name] = (status, body)
        assert headers.get("Cache-Control") == "no-store", name
    wrong = {
        n: o
        for n, o in outcomes.items()
        if o[0] != 400 or o[1]["error"] != "invalid_request" or "access_token" in o[1]
    }
    assert wrong == {}
    # Every token failure gets the one generic description; the only other answers are for
    # requests refused before any token work: a missing (empty) token and an oversized body.
    for name, (_, body) in outcomes.items():
        if name == "C12 empty":
            assert body["error_description"] == "subject_token is required."
        elif len(attacks[name]) > 16 * 1024:
            assert body["error_description"] == "The request body is too large."
        else:
            assert body["error_description"] == INVALID_SUBJECT, name
    assert attacker.requests == 0
    logged = logs()
    assert "token exchange refused" in logged
    assert secrets_in(logged, [*attacks.values(), control[2]["access_token"]]) == []


def test_supabase_authorizer_refuses_the_whole_battery(
    local_stack: LocalStack,
    attacks: dict[str, str],
    attacker: JwksServer,
    logs: Callable[[], str],
) -> None:
    client = Client(local_stack.base_url)
    sent = {n: t for n, t in attacks.items() if sendable_as_header(t)}
    assert len(sent) >= 150
    wrong = {}
    for name, token in sent.items():
        status = client.get("/supabase/whoami", authorization=f"Bearer {token}")[0]
        if status != 401:
            wrong[name] = status
    assert wrong == {}
    assert attacker.requests == 0
    assert secrets_in(logs(), list(attacks.values())) == []


def kms_minter(stack: LocalStack) -> tuple[Callable[..., str], KmsSigner]:
    assert stack.aws is not None
    signer = KmsSigner(stack.provisioned.signing_key_arn, "RS256", kms=stack.aws.client("kms"))

    def mint(**overrides: Any) -> str:
        now = int(time.time())
        claims = {
            "iss": stack.base_url,
            "sub": USER_ID,
            "aud": "api",
            "iat": now,
            "exp": now + 900,
            "jti": f"jti-{time.monotonic_ns()}",
            "client_id": "cli",
            "scope": "read",
            "sid": "s",
            # An index no session of this stack holds revoked (docs/revocation.md).
            "status": {"status_list": {"idx": 0, "uri": f"{stack.base_url}/statuslists/1"}},
        }
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not DROP}
        signing_input = encode_compact({"alg": "RS256", "typ": "at+jwt", "kid": signer.kid}, claims)
        return f"{signing_input.decode()}.{b64url_encode(signer.sign(signing_input))}"

    return mint, signer


def test_api_token_surfaces_refuse_their_battery(
    local_stack: LocalStack,
    supabase_server: JwksServer,
    logs: Callable[[], str],
) -> None:
    client = Client(local_stack.base_url)
    mint, signer = kms_minter(local_stack)
    supabase_token = jws(
        {"alg": "HS256", "typ": "JWT"},
        supabase_claims(iss=f"{supabase_server.base_url}/auth/v1"),
        lambda m: hs256(m, HS_SECRET),
    )
    attacks = api_token_attacks(
        local_stack.base_url, "api", signer.public_jwk(), signer.kid, mint, supabase_token
    )
    assert client.get("/whoami", mint())[0] == 200  # control: a well-formed token of ours
    assert client.get("/whoami", mint(scope="write"))[0] == 403  # valid, lacking the route's scope
    wrong = {
        name: status
        for name, token in attacks.items()
        if (status := client.get("/whoami", token)[0]) != 401
    }
    assert wrong == {}

    verifier = ApiTokenVerifier(
        StaticKeySet([key_from_jwk(signer.public_jwk())]), local_stack.base_url, "api"
    )
    for token in attacks.values():
        with pytest.raises(InvalidTokenError):
            verifier.verify(token)
    assert secrets_in(logs(), list(attacks.values())) == []


def test_request_level_confusion(local_stack: LocalStack, supabase_server: JwksServer) -> None:
    """F-26: wrong grant_type / token types, repeated parameters, oversized bodies, content types."""
    from devstack.client import http

    client = Client(local_stack.base_url)
    token = jws(
        {"alg": "HS256", "typ": "JWT"},
        supabase_claims(iss=f"{supabase_server.base_url}/auth/v1"),
        lambda m: hs256(m, HS_SECRET),
    )
    assert (
        client.exchange(token, grant_type="refresh_token")[2]["error"] == "unsupported_grant_type"
    )
    assert (
        client.exchange(token, subject_token_type="urn:ietf:params:oauth:token-type:id_token")[2][
            "error"
        ]
        == "invalid_request"
    )
    assert (
        client.exchange(
            token, requested_token_type="urn:ietf:params:oauth:token-type:refresh_token"
        )[2]["error"]
        == "invalid_request"
    )
    url = local_stack.base_url + "/token"
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    repeated = f"grant_type=urn:ietf:params:oauth:grant-type:token-exchange&subject_token={token}&subject_token={token}&subject_token_type=urn:ietf:params:oauth:token-type:access_token"
    assert http("POST", url, repeated.encode(), form)[2]["error"] == "invalid_request"
    assert http("POST", url, b"a=" + b"x" * 100_000, form)[2]["error"] == "invalid_request"
    for content_type in (
        "text/plain",
        "application/xml",
        "multipart/form-data; boundary=x",
        "application/jwt",
    ):
        status, _, body = http("POST", url, b"grant_type=x", {"Content-Type": content_type})
        assert (status, body["error"]) == (400, "invalid_request")


def test_the_log_scan_finds_what_it_looks_for() -> None:
    token = jws({"alg": "HS256", "typ": "JWT"}, supabase_claims(), lambda m: hs256(m, HS_SECRET))
    assert secrets_in(f"x {token} y", [token])
    assert secrets_in("sig=" + token.split(".")[2], [token])
    assert secrets_in(f"secret {HS_SECRET}", [])
    assert secrets_in("nothing here", [token]) == []
