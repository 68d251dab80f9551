"""Strict compact JWS parsing (docs/contract.md §5 first bullet; §12 B-11, C-12..16)."""

from __future__ import annotations

import pytest

from tests.factories import HS_SECRET, b64json, hs256, jws, supabase_claims
from tokengate.errors import InvalidTokenError, Reason
from tokengate.jws import b64url_decode, b64url_encode, parse_compact

HEADER = b64json({"alg": "HS256", "typ": "JWT"})
PAYLOAD = b64json({"sub": "x"})
SIG = b64url_encode(b"\x01" * 32)


def raw(header: str, payload: str) -> str:
    """A token whose segments are given as already-encoded text."""
    return f"{header}.{payload}.{b64url_encode(hs256(f'{header}.{payload}'.encode()))}"


def b64(data: bytes) -> str:
    return b64url_encode(data)


MALFORMED = {
    "empty": "",
    "dots only": "..",
    "two segments": f"{HEADER}.{PAYLOAD}",
    "four segments": f"{HEADER}.{PAYLOAD}.{SIG}.{SIG}",
    "five segments (JWE)": f"{HEADER}.{PAYLOAD}.{SIG}.{SIG}.{SIG}",
    "missing payload": f"{HEADER}..{SIG}",
    "empty signature": f"{HEADER}.{PAYLOAD}.",
    "padding": f"{HEADER}=.{PAYLOAD}.{SIG}",
    "padded signature": f"{HEADER}.{PAYLOAD}.{SIG}=",
    "plus alphabet": f"{HEADER}.{PAYLOAD}.{SIG[:-2]}+/",
    "space inside": f"{HEADER}. {PAYLOAD}.{SIG}",
    "leading space": f" {HEADER}.{PAYLOAD}.{SIG}",
    "trailing newline": f"{HEADER}.{PAYLOAD}.{SIG}\n",
    "bearer prefix": f"Bearer {HEADER}.{PAYLOAD}.{SIG}",
    "non-ascii": f"{HEADER}.{PAYLOAD}.{SIG}é",
    "non-canonical base64 (unused bits)": f"{HEADER}.{PAYLOAD}.{SIG[:-1]}B",
    "length 1 mod 4": f"{HEADER}.{PAYLOAD}.AAAAA",
    "header not an object": raw(b64(b"[1,2]"), PAYLOAD),
    "header a string": raw(b64(b'"alg"'), PAYLOAD),
    "payload not an object": raw(HEADER, b64(b"42")),
    "payload null": raw(HEADER, b64(b"null")),
    "invalid utf-8": raw(HEADER, b64(b'{"sub":"\xff"}')),
    "BOM": raw(HEADER, b64(b'\xef\xbb\xbf{"sub":"x"}')),
    "duplicate member": raw(HEADER, b64(b'{"sub":"a","sub":"b"}')),
    "duplicate header member": raw(b64(b'{"alg":"HS256","alg":"none"}'), PAYLOAD),
    "NaN": raw(HEADER, b64(b'{"exp":NaN}')),
    "Infinity": raw(HEADER, b64(b'{"exp":Infinity}')),
    "-Infinity": raw(HEADER, b64(b'{"exp":-Infinity}')),
    "1e400": raw(HEADER, b64(b'{"exp":1e400}')),
    "deep nesting": raw(HEADER, b64(b'{"a":' + b"[" * 5000 + b"]" * 5000 + b"}")),
    "trailing garbage": raw(HEADER, b64(b'{"sub":"x"} x')),
    "JSON serialization": '{"payload":"e30","protected":"e30","signature":"AA"}',
    "one megabyte": "a" * 1_000_000,
    "not a string": 12345,
    "bytes": f"{HEADER}.{PAYLOAD}.{SIG}".encode(),
}


@pytest.mark.parametrize("token", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_tokens_are_refused(token: object) -> None:
    with pytest.raises(InvalidTokenError) as caught:
        parse_compact(token)
    assert caught.value.reason in {Reason.MALFORMED, Reason.HEADER}


FORBIDDEN_HEADERS = ["crit", "jku", "x5u", "jwk", "x5c", "b64", "zip", "enc", "cty", "x5t", "foo"]


@pytest.mark.parametrize("member", FORBIDDEN_HEADERS)
def test_header_members_outside_alg_typ_kid_are_refused(member: str) -> None:
    header = {"alg": "HS256", "typ": "JWT", member: ["exp"] if member == "crit" else "x"}
    token = jws(header, supabase_claims(), hs256)
    with pytest.raises(InvalidTokenError) as caught:
        parse_compact(token)
    assert caught.value.reason == Reason.HEADER


@pytest.mark.parametrize("kid", [123, None, "", "k" * 257, ["a"], {"a": 1}], ids=str)
def test_kid_must_be_a_short_string(kid: object) -> None:
    token = jws({"alg": "HS256", "kid": kid}, supabase_claims(), hs256)
    with pytest.raises(InvalidTokenError):
        parse_compact(token)


def test_alg_must_be_a_string() -> None:
    for alg in (None, 1, ["HS256"]):
        with pytest.raises(InvalidTokenError):
            parse_compact(jws({"alg": alg}, {"a": 1}, hs256))


def test_a_valid_token_parses_into_an_unverified_token() -> None:
    claims = supabase_claims()
    token = jws({"alg": "HS256", "typ": "JWT", "kid": "abc"}, claims, lambda m: hs256(m, HS_SECRET))
    parsed = parse_compact(token)
    assert parsed.alg == "HS256"
    assert parsed.kid == "abc"
    assert parsed.unverified_claims == claims
    assert parsed.signing_input == token.rsplit(".", 1)[0].encode()
    assert parsed.signature == hs256(parsed.signing_input)


@pytest.mark.parametrize("data", [b"\x00", b"\xff\xfe", b"abc", bytes(range(256))])
def test_base64url_round_trip(data: bytes) -> None:
    assert b64url_decode(b64url_encode(data)) == data


@pytest.mark.parametrize("segment", ["", "A", "AB==", "AB=", "A+", "A/", "AB C", "QQ", "QR"])
def test_base64url_decode_refuses_non_canonical_text(segment: str) -> None:
    if segment == "QQ":  # the canonical spelling of b"A" is the control row
        assert b64url_decode(segment) == b"A"
        return
    with pytest.raises(ValueError, match="base64url"):
        b64url_decode(segment)
