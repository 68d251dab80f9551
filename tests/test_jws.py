"""Strict compact JWS parsing (docs/contract.md §5 first bullet; §12 B-11, C-12..16)."""

from __future__ import annotations

import base64
import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.factories import HS_SECRET, b64json, hs256, jws, supabase_claims
from tokengate.errors import InvalidTokenError, Reason
from tokengate.jws import (
    UnverifiedToken,
    b64url_decode,
    b64url_encode,
    parse_compact,
    strict_json_object,
)

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


def _oracle_b64url(segment: str) -> bytes | None:
    """Canonical unpadded base64url, by the definition: only the URL-safe alphabet, and the text
    is exactly what encoding the decoded bytes gives back."""
    if not re.fullmatch(r"[A-Za-z0-9_-]+", segment) or len(segment) % 4 == 1:
        return None
    data = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    return data if base64.urlsafe_b64encode(data).rstrip(b"=").decode() == segment else None


SEGMENT_TEXT = st.text(
    alphabet=st.sampled_from(
        [*"ABCDQgwAEIMQYcgkosw048xyz_-", "+", "/", "=", " ", "\n", ".", "é", "\x00"]
    ),
    max_size=12,
)


@given(SEGMENT_TEXT)
def test_base64url_decode_accepts_exactly_the_canonical_text(segment: str) -> None:
    expected = _oracle_b64url(segment)
    if expected is None:
        with pytest.raises(ValueError, match="base64url"):
            b64url_decode(segment)
    else:
        assert b64url_decode(segment) == expected


@given(st.binary(max_size=64))
def test_every_encoding_decodes_back(data: bytes) -> None:
    encoded = b64url_encode(data)
    assert (b64url_decode(encoded) if encoded else b"") == data


@given(SEGMENT_TEXT, SEGMENT_TEXT, st.sampled_from(["", ".", ".."]))
def test_a_token_parses_only_when_every_segment_is_canonical(
    payload: str, signature: str, extra: str
) -> None:
    token = f"{HEADER}.{payload}.{signature}{extra}"
    payload_bytes, signature_bytes = _oracle_b64url(payload), _oracle_b64url(signature)
    ok = not extra and payload_bytes is not None and signature_bytes is not None
    if ok:
        try:
            expected_claims = json.loads(payload_bytes or b"")
        except ValueError:
            ok = False
        else:
            ok = isinstance(expected_claims, dict)
    parsed = parses_as(token, expected_claims if ok else None, signature_bytes)
    assert parsed is None or parsed.signing_input == f"{HEADER}.{payload}".encode()


def parses_as(
    token: str, claims: dict[str, object] | None, signature: bytes | None
) -> UnverifiedToken | None:
    """``parse_compact(token)`` gives ``claims`` and ``signature``, or, ``claims`` None, refuses
    the token as malformed."""
    if claims is None:
        with pytest.raises(InvalidTokenError) as caught:
            parse_compact(token)
        assert caught.value.reason == Reason.MALFORMED
        return None
    parsed = parse_compact(token)
    assert parsed.unverified_claims == claims
    assert parsed.signature == signature
    return parsed


@pytest.mark.parametrize(
    "text",
    [b'{"a":1}', b' {"a":1}', b'{"a":1} ', b'\t{"a":[1,{"b":2}]}\n', b'{"a":"}"}', b"{}"],
)
def test_objects_with_and_without_surrounding_whitespace_parse(text: bytes) -> None:
    assert strict_json_object(text) == json.loads(text)


@pytest.mark.parametrize("text", [b'{"a":1}}', b'{"a":1}{}', b'{"a":1} }', b"{", b"}", b"{}x}"])
def test_text_after_the_object_is_refused(text: bytes) -> None:
    with pytest.raises(ValueError, match="JSON"):
        strict_json_object(text)


def _oracle_claims(text: str) -> dict[str, object] | None:
    """A JSON object with no repeated member and no NaN/Infinity, by the standard library."""

    def unique(pairs: list[tuple[str, object]]) -> dict[str, object]:
        if len({key for key, _ in pairs}) != len(pairs):
            raise ValueError("repeated member")
        return dict(pairs)

    def refuse(name: str) -> object:
        raise ValueError(name)

    try:
        value = json.loads(text, object_pairs_hook=unique, parse_constant=refuse)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


OBJECT_TEXT = st.dictionaries(
    st.text(max_size=3),
    st.one_of(st.integers(), st.text(max_size=3), st.booleans(), st.none()),
    max_size=4,
).map(json.dumps)
PAYLOAD_TEXT = st.one_of(
    OBJECT_TEXT,
    st.tuples(OBJECT_TEXT, st.sampled_from(["}", " }", "{}", "]", " ", "\n", "x}"])).map("".join),
    st.lists(st.tuples(st.sampled_from("ab"), st.integers(0, 3)), max_size=3).map(
        lambda pairs: "{" + ",".join(f'"{key}":{value}' for key, value in pairs) + "}"
    ),
    st.text(alphabet='{}[]":,ab1 \\Nn', max_size=14),
)


@pytest.mark.parametrize("part", ["payload", "signature"])
@pytest.mark.parametrize(("character", "replaces"), [("+", "-"), ("/", "_"), ("=", "-")])
def test_standard_base64_is_refused_in_a_token_whose_header_was_just_seen(
    part: str, character: str, replaces: str
) -> None:
    """Standard base64's "+" and "/" (in place of "-" and "_") spell the same bytes, and its "="
    pads: none of them is base64url, in either segment, the one-step parse included."""
    payload = b64url_encode(b'{"a":">>>???"}')  # with a "-" and a "_"
    signature = b64url_encode(b"\xfb\xef\xbe\xff\xff\xff" * 5)  # "----____" five times
    parse_compact(f"{HEADER}.{payload}.{signature}")  # HEADER is now the last header seen
    if part == "payload":
        payload = payload.replace(replaces, character, 1)
    else:
        signature = signature.replace(replaces, character, 1)
    with pytest.raises(InvalidTokenError) as caught:
        parse_compact(f"{HEADER}.{payload}.{signature}")
    assert caught.value.reason == Reason.MALFORMED


@given(PAYLOAD_TEXT, st.binary(min_size=1, max_size=8))
def test_a_token_whose_header_was_just_seen_parses_as_the_definition_says(
    text: str, signature: bytes
) -> None:
    """The parser takes a token with the header it last saw apart in one step: the same rules."""
    parse_compact(f"{HEADER}.{PAYLOAD}.{SIG}")  # HEADER is now the last header seen
    token = f"{HEADER}.{b64(text.encode())}.{b64(signature)}"
    parsed = parses_as(token, _oracle_claims(text) if text else None, signature)
    assert parsed is None or parsed.header == json.loads(base64.urlsafe_b64decode(HEADER + "=="))
