"""Revocation (docs/revocation.md): the status list format, the store over moto, POST /revoke and
the exchange through the real handler, the authorizers' status checks and their failure modes."""

from __future__ import annotations

import base64
import json
import threading
import zlib
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import boto3
import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from moto import mock_aws

from devstack.gateway import LambdaContext, serve
from devstack.moto_aws import create_revocation_table, free_port
from tests.conftest import ISSUER, FakeClock, InProcessApi
from tests.factories import USER_ID, KeyPair, hs_token, supabase_claims
from tokengate.authorizer import Unauthorized
from tokengate.aws import DynamoTable
from tokengate.emf import EmfCounter
from tokengate.errors import DependencyUnavailableError, InvalidTokenError
from tokengate.keys import AsymmetricKey, key_from_jwk
from tokengate.revocation import RevocationStore, StatusListPublisher
from tokengate.statuscache import StatusListCache
from tokengate.statuslist import (
    CAPACITY,
    encode_lst,
    inflate_lst,
    session_digest,
    set_indices,
    sign_status_list,
    status_list_claims,
    verify_status_list,
)

MakeApi = Callable[..., InProcessApi]
OTHER_USER = "0f0e0d0c-0b0a-4909-8807-060504030201"
URI = "https://api.example.com/statuslists/1"


def independent_bits(lst: str) -> bytes:
    """The draft's decoding with the standard library only (not the product's code)."""
    return zlib.decompress(base64.urlsafe_b64decode(lst + "=" * (-len(lst) % 4)))


def independent_status(lst: str, idx: int) -> int:
    data = independent_bits(lst)
    return (data[idx // 8] >> (idx % 8)) & 1


# -- the format ---------------------------------------------------------------------------------


def test_bit_order_is_the_drafts_example() -> None:
    """draft-ietf-oauth-status-list §4.1: statuses 1,0,0,1,1,1,0,1 | 1,1,0,0,0,1,0,1 are the bytes
    0xB9 0xA3 (index 0 is the least significant bit of byte 0)."""
    statuses = [1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 1, 0, 1]
    revoked = [i for i, s in enumerate(statuses) if s]
    lst = encode_lst(revoked, size=16)
    assert independent_bits(lst) == bytes([0xB9, 0xA3])
    assert set_indices(inflate_lst(lst)) == frozenset(revoked)


@pytest.mark.parametrize("revoked", [[], [0], [7, 8], [CAPACITY - 1], [5, 1000, 123456]])
def test_encoded_lists_decode_with_the_standard_library(revoked: list[int]) -> None:
    lst = encode_lst(revoked)
    assert len(independent_bits(lst)) == CAPACITY // 8
    for idx in {*revoked, 0, 1, 9, CAPACITY - 2}:
        assert independent_status(lst, idx) == (idx in revoked)


@settings(max_examples=60, deadline=None)
@given(
    size_bytes=st.integers(min_value=1, max_value=3 * 4096 + 17),
    data=st.data(),
)
def test_the_set_indices_are_exactly_the_set_bits(size_bytes: int, data: st.DataObject) -> None:
    """Every set bit, and only those, across block edges and a short last block: checked against a
    bit-by-bit reading of the same bytes."""
    raw = bytearray(size_bytes)
    positions = data.draw(st.lists(st.integers(0, size_bytes * 8 - 1), max_size=40))
    for idx in positions:
        raw[idx // 8] |= 1 << (idx % 8)
    expected = {i for i in range(size_bytes * 8) if (raw[i // 8] >> (i % 8)) & 1}
    assert set_indices(bytes(raw)) == expected == set(positions)


def test_a_compression_bomb_is_refused() -> None:
    bomb = base64.urlsafe_b64encode(zlib.compress(bytes(CAPACITY))).rstrip(b"=").decode()
    with pytest.raises(ValueError, match="too large"):
        inflate_lst(bomb)


class Keys:
    def __init__(self, *pairs: KeyPair) -> None:
        self._keys = {pair.kid: key_from_jwk(pair.jwk()) for pair in pairs}

    def get(self, kid: str) -> AsymmetricKey:
        if kid not in self._keys:
            raise InvalidTokenError("unknown_key", "kid")
        return self._keys[kid]


def signed_list(key: KeyPair, iat: int, revoked: list[int] = (), **overrides: Any) -> str:  # type: ignore[assignment]
    claims = status_list_claims(
        uri=URI,
        iat=iat,
        lifetime=3600,
        ttl=15,
        revoked=revoked,
        sessions=[session_digest("s1")],
        users={},
    )
    return sign_status_list(key, claims | overrides)  # type: ignore[arg-type]


def test_a_product_claim_reader_skips_the_bits_but_not_the_checks(
    rsa_key: KeyPair, ec_key: KeyPair
) -> None:
    """read_bits=False (the Supabase authorizer): the same verification, the revoked sessions
    read, the bits not inflated (even a bomb is never expanded), and every index outside."""
    keys = Keys(rsa_key)
    now = 1_800_000_000
    view = verify_status_list(signed_list(rsa_key, now, [3]), keys, URI, now, read_bits=False)
    assert view.sessions == {session_digest("s1")}
    assert view.size == 0 and view.revoked == frozenset()
    bomb = base64.urlsafe_b64encode(zlib.compress(bytes(CAPACITY))).rstrip(b"=").decode()
    bombed = signed_list(rsa_key, now, status_list={"bits": 1, "lst": bomb})
    assert verify_status_list(bombed, keys, URI, now, read_bits=False).size == 0
    with pytest.raises(InvalidTokenError):
        verify_status_list(bombed, keys, URI, now)  # a reader of the bits refuses it
    for token in [
        signed_list(ec_key, now),
        signed_list(rsa_key, now - 7200),
        signed_list(rsa_key, now, status_list={"bits": 2, "lst": encode_lst([])}),
        signed_list(rsa_key, now, status_list={"bits": 1, "lst": 7}),
        signed_list(rsa_key, now, status_list={"bits": 1, "lst": "not base64!"}),
        signed_list(rsa_key, now, status_list={"bits": 1, "lst": "AAAA"}),  # not ZLIB
    ]:
        with pytest.raises(InvalidTokenError):
            verify_status_list(token, keys, URI, now, read_bits=False)


def test_status_list_tokens_are_refused_when_not_ours(rsa_key: KeyPair, ec_key: KeyPair) -> None:
    keys = Keys(rsa_key)
    now = 1_800_000_000
    assert verify_status_list(signed_list(rsa_key, now, [3]), keys, URI, now).revoked == {3}
    for token in [
        signed_list(ec_key, now),  # a key not in our JWKS
        signed_list(rsa_key, now, sub="https://elsewhere.example/statuslists/1"),
        signed_list(rsa_key, now - 7200),  # expired
        signed_list(rsa_key, now, status_list={"bits": 2, "lst": encode_lst([])}),
        "a.b",
    ]:
        with pytest.raises(InvalidTokenError):
            verify_status_list(token, keys, URI, now)
    wrong_type = jwt.encode({"sub": URI}, rsa_key.private, "RS256", {"kid": rsa_key.kid})
    with pytest.raises(InvalidTokenError):
        verify_status_list(wrong_type, keys, URI, now)


# -- the authorizers' copy: last good, max age, rollback --------------------------------------


class ListFetcher:
    def __init__(self) -> None:
        self.body = b""
        self.fail = False
        self.calls = 0

    def fetch(self, url: str) -> bytes:
        self.calls += 1
        if self.fail:
            raise DependencyUnavailableError("jwks_unavailable", "ConnectionRefusedError")
        return self.body


def test_an_unreachable_list_serves_the_last_good_then_fails_closed(
    rsa_key: KeyPair, clock: FakeClock
) -> None:
    fetcher = ListFetcher()
    fetcher.body = signed_list(rsa_key, int(clock()), [4]).encode()
    lines: list[str] = []
    cache = StatusListCache(
        "http://127.0.0.1:1/statuslists/1",
        URI,
        fetcher,
        Keys(rsa_key),
        clock=clock,
        refresh=15,
        max_age=300,
        metrics=EmfCounter(write=lines.append),
    )
    assert cache.view().revoked == {4}
    assert cache.view().revoked == {4} and fetcher.calls == 1  # warm: no fetch
    fetcher.fail = True
    clock.advance(299)
    assert cache.view().revoked == {4}  # the last good list, within the max age
    assert not any('"StatusListStale"' in line for line in lines)
    clock.advance(2)
    with pytest.raises(DependencyUnavailableError) as refused:
        cache.view()
    assert refused.value.reason == "status_list_stale"
    stale = [json.loads(line) for line in lines if '"StatusListStale"' in line]
    assert stale and stale[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "TokenGate"
    fetcher.fail = False
    fetcher.body = signed_list(rsa_key, int(clock()), [4, 5]).encode()
    clock.advance(6)  # past the retry pause
    assert cache.view().revoked == {4, 5}


def test_an_older_list_never_replaces_a_newer_one(rsa_key: KeyPair, clock: FakeClock) -> None:
    fetcher = ListFetcher()
    fetcher.body = signed_list(rsa_key, int(clock()), [4]).encode()
    cache = StatusListCache("http://127.0.0.1:1/s", URI, fetcher, Keys(rsa_key), clock=clock)
    assert cache.view().revoked == {4}
    fetcher.body = signed_list(rsa_key, int(clock()) - 60, []).encode()  # replayed, older
    clock.advance(16)
    assert cache.view().revoked == {4}


# -- the store over moto --------------------------------------------------------------------


@pytest.fixture
def store(aws_env: None, clock: FakeClock) -> Iterator[RevocationStore]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_revocation_table(client, "revocation")
        yield RevocationStore(DynamoTable(client, "revocation"), clock)


def test_each_session_gets_its_own_index(store: RevocationStore, clock: FakeClock) -> None:
    now = clock()
    first = store.admit("s1", USER_ID, now)[0]
    assert store.admit("s1", USER_ID, now)[0] == first
    assert len({store.admit(f"s{i}", USER_ID, now)[0] for i in range(1, 20)}) == 19


def test_revoking_a_session_refuses_it_and_no_other(
    store: RevocationStore, clock: FakeClock
) -> None:
    now = clock()
    idx1, idx2 = store.admit("s1", USER_ID, now)[0], store.admit("s2", USER_ID, now)[0]
    assert store.revoke_session("s1", USER_ID) is True  # it had been exchanged
    with pytest.raises(InvalidTokenError) as refused:
        store.admit("s1", USER_ID, now)
    assert refused.value.reason == "revoked"
    assert store.admit("s2", USER_ID, now)[0] == idx2
    assert store.snapshot()[1].revoked == {idx1}
    assert store.revoke_session("never-exchanged") is False  # recorded all the same
    with pytest.raises(InvalidTokenError):
        store.admit("never-exchanged", USER_ID, now)
    assert store.revoke_session("never-exchanged") is False  # a second revocation: still none


def test_revoking_a_user_refuses_every_older_token_and_no_other_user(
    store: RevocationStore, clock: FakeClock
) -> None:
    now = clock()
    mine = [store.admit(f"mine{i}", USER_ID, now)[0] for i in range(3)]
    theirs = store.admit("theirs", OTHER_USER, now)[0]
    clock.advance(5)
    assert sorted(store.revoke_user(USER_ID)) == ["mine0", "mine1", "mine2"]
    with pytest.raises(InvalidTokenError):
        store.admit("a-new-session", USER_ID, now)  # a token issued before the revocation
    clock.advance(5)
    assert store.admit("signed-in-again", USER_ID, clock())[0] not in mine
    assert store.admit("theirs", OTHER_USER, now)[0] == theirs
    assert store.snapshot()[1].revoked == set(mine)


def test_a_published_list_shows_the_revoked_indices(
    store: RevocationStore, clock: FakeClock, rsa_key: KeyPair
) -> None:
    idx = store.admit("s1", USER_ID, clock())[0]
    keep = store.admit("s2", USER_ID, clock())[0]
    store.revoke_session("s1")
    token = StatusListPublisher(store, rsa_key, clock).publish("https://api.example.com")  # type: ignore[arg-type]
    assert store.stored_list() == token
    claims = jwt.decode(
        token, rsa_key.private.public_key(), ["RS256"], options={"verify_iat": False}
    )
    assert jwt.get_unverified_header(token)["typ"] == "statuslist+jwt"
    assert claims["sub"] == URI and claims["exp"] > claims["iat"] and claims["ttl"] > 0
    assert independent_status(claims["status_list"]["lst"], idx) == 1
    assert independent_status(claims["status_list"]["lst"], keep) == 0


# -- POST /revoke and /token through the real handler --------------------------------------


def revoke(
    api: InProcessApi, body: bytes, content_type: str = "application/x-www-form-urlencoded"
) -> tuple[int, dict[str, str], Any]:
    answer = api.gateway.handle(
        "POST", "/revoke", {"Content-Type": content_type}, body, "127.0.0.1"
    )
    return answer.status, answer.headers, answer.body


@pytest.fixture
def served(make_api: MakeApi) -> Iterator[InProcessApi]:
    """The template's API in-process with revocation on, also served on loopback: the
    authorizers fetch the JWKS and the status list from it over HTTP, as in AWS."""
    port = free_port()
    api = make_api(
        {"Revocation": "true", "StatusListRefreshSeconds": "1"},
        API_JWKS_URL=f"http://127.0.0.1:{port}/.well-known/jwks.json",
        ISSUER=ISSUER,
    )
    server = serve(api.gateway, port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()


def test_revoke_answers_as_rfc7009_says(served: InProcessApi) -> None:
    token = served.exchange(hs_token(supabase_claims()))[2]["access_token"]
    for body in [b"token=not-a-token", b"token=a.b.c", b"token=x&token_type_hint=refresh_token"]:
        status, headers, payload = revoke(served, body)
        assert (status, payload) == (200, b"")
        assert headers["Cache-Control"] == "no-store"
    for body, content_type in [
        (b"", "application/x-www-form-urlencoded"),
        (b"token_type_hint=access_token", "application/x-www-form-urlencoded"),
        (
            urlencode([("token", token), ("token", token)]).encode(),
            "application/x-www-form-urlencoded",
        ),
        (json.dumps({"token": token}).encode(), "application/json"),
        (b"token=" + b"a" * 20000, "application/x-www-form-urlencoded"),
        (b"token=%ZZ&&&", "application/x-www-form-urlencoded"),
    ]:
        status, _, payload = revoke(served, body, content_type)
        assert status == 400
        assert json.loads(payload)["error"] == "invalid_request"
    metadata = served.call("GET", "/.well-known/openid-configuration")[2]
    assert metadata["revocation_endpoint"] == f"{ISSUER}/revoke"
    assert metadata["revocation_endpoint_auth_methods_supported"] == ["none"]
    assert metadata["status_list_aggregation_endpoint"] == f"{ISSUER}/statuslists"


def decide(api: InProcessApi, function: str, token: str, path: str = "/whoami") -> str:
    event: dict[str, Any] = {
        "type": "TOKEN",
        "authorizationToken": f"Bearer {token}",
        "methodArn": f"arn:aws:execute-api:us-east-1:123456789012:abc123/v1/GET{path}",
    }
    if function == "SupabaseAuthorizerFunction":
        event = {
            "type": "REQUEST",
            "methodArn": event["methodArn"],
            "resource": path,
            "path": path,
            "httpMethod": "GET",
            "headers": {"Authorization": f"Bearer {token}"},
        }
    try:
        answer = api.gateway.handlers[function](event, LambdaContext(function))
    except Unauthorized:
        return "unauthorized"
    effects = {s["Effect"] for s in answer["policyDocument"]["Statement"]}
    return "allow" if effects == {"Allow"} or "Allow" in effects else "deny"


def test_a_revoked_session_is_refused_everywhere_and_another_is_not(
    served: InProcessApi, clock: FakeClock
) -> None:
    import time

    supabase = hs_token(supabase_claims())
    other = hs_token(supabase_claims())  # another session of the same user
    token = served.exchange(supabase)[2]["access_token"]
    kept = served.exchange(other)[2]["access_token"]
    status = jwt.decode(token, options={"verify_signature": False})["status"]["status_list"]
    assert status["uri"] == f"{ISSUER}/statuslists/1" and type(status["idx"]) is int
    for function, presented in [
        ("ApiTokenAuthorizerFunction", token),
        ("SupabaseAuthorizerFunction", supabase),
    ]:
        assert decide(served, function, presented) == "allow"
    assert revoke(served, urlencode({"token": token}).encode())[0] == 200
    assert served.exchange(supabase)[0] == 400  # from the moment /revoke answered
    time.sleep(1.2)  # the configured 1 s refresh
    assert decide(served, "ApiTokenAuthorizerFunction", token) == "unauthorized"
    assert decide(served, "SupabaseAuthorizerFunction", supabase) == "unauthorized"
    assert decide(served, "ApiTokenAuthorizerFunction", kept) == "allow"
    assert decide(served, "SupabaseAuthorizerFunction", other) == "allow"
    assert served.exchange(other)[0] == 200


def test_a_supabase_token_revokes_its_session_even_expired(served: InProcessApi) -> None:
    claims = supabase_claims()
    token = served.exchange(hs_token(claims))[2]["access_token"]
    expired = hs_token(claims | {"iat": claims["iat"] - 7200, "exp": claims["iat"] - 3600})
    assert revoke(served, urlencode({"token": expired}).encode())[0] == 200
    assert served.exchange(hs_token(claims))[0] == 400
    idx = jwt.decode(token, options={"verify_signature": False})["status"]["status_list"]["idx"]
    answer = served.gateway.handle("GET", "/statuslists/1", {}, b"", "127.0.0.1")
    assert answer.status == 200
    assert answer.headers["Content-Type"] == "application/statuslist+jwt"
    lst = jwt.decode(answer.body, options={"verify_signature": False})["status_list"]["lst"]
    assert independent_status(lst, idx) == 1


def test_a_store_that_cannot_be_written_is_a_503_and_nothing_is_issued(
    make_api: MakeApi,
) -> None:
    api = make_api(
        {"Revocation": "true"}, AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:1", ISSUER=ISSUER
    )
    supabase = hs_token(supabase_claims())
    status, headers, body = revoke(api, urlencode({"token": supabase}).encode())
    assert status == 503
    assert headers["Retry-After"] and json.loads(body)["error"] == "temporarily_unavailable"
    status, headers, body = api.exchange(supabase)
    assert status == 503 and body["error"] == "temporarily_unavailable"  # fail closed


def test_warm_decisions_with_revocation_make_no_aws_call(served: InProcessApi) -> None:
    token = served.exchange(hs_token(supabase_claims()))[2]["access_token"]
    assert decide(served, "ApiTokenAuthorizerFunction", token) == "allow"
    served.aws_calls.clear()
    for _ in range(20):
        assert decide(served, "ApiTokenAuthorizerFunction", token) == "allow"
    assert served.aws_calls == []


# -- a new session's transaction (docs/revocation.md, "A revocation racing an exchange") -------


class Interleaved(DynamoTable):
    """The real table on moto, with an action run just before or just after the transaction
    that writes a new session: the points where a concurrent request can land."""

    def __init__(self, client: Any, name: str) -> None:
        super().__init__(client, name)
        self.before: list[Callable[[], Any]] = []
        self.after: list[Callable[[], Any]] = []
        self.operations: list[str] = []

    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        self.operations.append(operation)
        return super()._call(operation, **params)

    def batch_get(self, keys: list[dict[str, Any]], **projection: Any) -> list[dict[str, Any]]:
        self.operations.append("batch_get_item")
        return super().batch_get(keys, **projection)

    def transact_write(self, operations: list[dict[str, dict[str, Any]]]) -> None:
        self.operations.append("transact_write_items")
        while self.before:
            self.before.pop(0)()
        super().transact_write(operations)
        while self.after:
            self.after.pop(0)()


@pytest.fixture
def racing(aws_env: None, clock: FakeClock) -> Iterator[tuple[RevocationStore, Interleaved]]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_revocation_table(client, "revocation")
        table = Interleaved(client, "revocation")
        yield RevocationStore(table, clock), table


def test_a_new_session_costs_three_calls(
    racing: tuple[RevocationStore, Interleaved], clock: FakeClock
) -> None:
    store, table = racing
    store.admit("s1", USER_ID, clock())
    assert table.operations == ["batch_get_item", "update_item", "transact_write_items"]


def test_a_user_revoked_before_the_transaction_refuses_the_new_session(
    racing: tuple[RevocationStore, Interleaved], clock: FakeClock
) -> None:
    store, table = racing
    now = clock()
    table.before.append(lambda: store.revoke_user(USER_ID))
    with pytest.raises(InvalidTokenError) as refused:
        store.admit("s1", USER_ID, now)
    assert refused.value.reason == "revoked"
    clock.advance(5)
    assert store.admit("s2", USER_ID, clock())[0] >= 0  # a token issued after it is admitted
    # The refused session was recorded: a later revocation of the user finds it.
    assert sorted(store.revoke_user(USER_ID)) == ["s1", "s2"]


def test_a_user_revoked_after_the_transaction_flips_the_new_sessions_index(
    racing: tuple[RevocationStore, Interleaved], clock: FakeClock
) -> None:
    store, table = racing
    table.after.append(lambda: store.revoke_user(USER_ID))
    idx = store.admit("s1", USER_ID, clock())[0]
    assert store.snapshot()[1].revoked == {idx}


def test_a_session_revoked_before_the_transaction_is_refused(
    racing: tuple[RevocationStore, Interleaved], clock: FakeClock
) -> None:
    store, table = racing
    table.before.append(lambda: store.revoke_session("s1", USER_ID))
    with pytest.raises(InvalidTokenError) as refused:
        store.admit("s1", USER_ID, clock())
    assert refused.value.reason == "revoked"


def test_two_first_exchanges_of_a_session_end_with_one_index(
    racing: tuple[RevocationStore, Interleaved], clock: FakeClock
) -> None:
    store, table = racing
    now = clock()
    other: list[int] = []
    table.before.append(lambda: other.append(store.admit("s1", USER_ID, now)[0]))
    assert store.admit("s1", USER_ID, now)[0] == other[0]
    assert store.admit("s1", USER_ID, now)[0] == other[0]


def test_a_lost_race_still_checks_the_user(
    racing: tuple[RevocationStore, Interleaved], clock: FakeClock
) -> None:
    """The session was written by another exchange, then the user revoked (its scan flipped
    that session): this exchange, finding the session written, is refused."""
    store, table = racing
    now = clock()
    table.before.append(lambda: store.admit("s1", USER_ID, now))
    table.before.append(lambda: store.revoke_user(USER_ID))
    with pytest.raises(InvalidTokenError):
        store.admit("s1", USER_ID, now)


def test_an_expired_user_record_or_a_later_token_is_admitted(
    racing: tuple[RevocationStore, Interleaved], clock: FakeClock
) -> None:
    from tokengate.revocation import RETENTION_SECONDS

    store, _ = racing
    issued = clock()
    store.revoke_user(USER_ID)
    with pytest.raises(InvalidTokenError):
        store.admit("s1", USER_ID, issued)
    assert store.admit("s2", USER_ID, issued + 1.5)[0] >= 0  # a fractional iat after "before"
    with pytest.raises(InvalidTokenError):
        store.admit("s3", USER_ID, issued - 0.5)
    clock.advance(RETENTION_SECONDS + 1)
    assert store.admit("s4", USER_ID, issued)[0] >= 0  # the record is past its TTL


@pytest.mark.parametrize(
    ("codes", "expected"),
    [
        (["ConditionalCheckFailed", "None"], ("dynamodb_condition_failed", (0,))),
        (["None", "ConditionalCheckFailed"], ("dynamodb_condition_failed", (1,))),
        (["TransactionConflict", "None"], ("dynamodb_unavailable", ())),
        (["ValidationError", "None"], ("dynamodb_misconfigured", ())),
    ],
)
def test_a_cancelled_transaction_is_read_from_its_reasons(
    codes: list[str], expected: tuple[str, tuple[int, ...]]
) -> None:
    from tokengate.aws import error_class
    from tokengate.errors import ConditionFailedError

    document = {"CancellationReasons": [{"Code": code} for code in codes]}
    error = error_class("dynamodb", "TransactionCanceledException", 400, document)
    assert error.reason == expected[0]
    assert (error.failed if isinstance(error, ConditionFailedError) else ()) == expected[1]


def test_only_the_api_token_authorizer_reads_the_bits() -> None:
    """The Supabase authorizer reads the product claim alone: its tokens carry no index."""
    from tokengate.config import Settings
    from tokengate.runtime import api_token_principals, supabase_principals

    settings = Settings.from_env(
        {
            "SUPABASE_URL": "https://project.supabase.co",
            "ISSUER": ISSUER,
            "REVOCATION_TABLE": "revocation",
            "AWS_REGION": "us-east-1",
        }
    )
    api = api_token_principals(settings)
    supabase = supabase_principals(settings)
    assert api._configured_status is not None and api._configured_status._read_bits
    assert supabase._status_lists is not None
    assert not supabase._status_lists.for_issuer(ISSUER)._read_bits
