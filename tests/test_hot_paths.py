"""The warm paths' shortcuts against what they stand for, on inputs built to tell them apart.

Each shortcut must give exactly the answer (or the refusal, with its reason) of the long way:
the one-frame JWS split against the split, base64url and strict JSON steps; the plain API-token
read against claim rules written out here from docs/contract.md §6; the authorizer's memos
against a fresh authorizer, on events with odd types and missing fields.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import re
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.depth import examples
from tokengate import jws
from tokengate.apitoken import ApiTokenVerifier
from tokengate.authorizer import Authorizer, AuthRequest, Principal, Unauthorized
from tokengate.errors import InvalidTokenError, Reason
from tokengate.jws import b64url_encode
from tokengate.keys import AsymmetricKey
from tokengate.policies import RouteScopes

SETTINGS = settings(
    max_examples=examples(400, 200),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
MORE = settings(
    max_examples=examples(1500, 400),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# -- the one-frame JWS split --------------------------------------------------------------------
LAST = b64(b'{"alg":"ES256","typ":"at+jwt","kid":"k1"}')
JSON_TEXTS = st.one_of(
    st.sampled_from(
        [
            "{}",
            '{"a":1}',
            " {}",
            "{} ",
            "{}\n",
            "[]",
            "1",
            '"x"',
            "null",
            '{"a":1,"a":2}',
            '{"a":NaN}',
            '{"a":-Infinity}',
            '{"a":1e999}',
            "{}{}",
            "{}x",
            "\ufeff{}",
            '{"\\ud800":1}',
            "[" * 3000,
            '{"a":' * 3000 + "1" + "}" * 3000,
        ]
    ),
    st.text(alphabet='{}[]":,ab1 \\Nn.eE-+', max_size=16),
    st.dictionaries(
        st.text(max_size=3), st.integers() | st.floats(allow_nan=False) | st.text(max_size=3)
    ).map(json.dumps),
)
ODD_TEXT = st.text(alphabet="ABQZafz019-_+/=. \n\té\x00", max_size=10)
LAST_CHARS = st.sampled_from("AaBbfgQw019-_")


def _segment(draw: st.DrawFn, data: bytes) -> str:
    """``data`` in base64url, or spelled wrong: another last character (the unused bits set),
    characters added around it."""
    text = b64(data)
    change = draw(st.integers(0, 5))
    if change == 0 and text:
        text = text[:-1] + draw(LAST_CHARS)
    elif change == 1:
        text = draw(ODD_TEXT) + text + draw(ODD_TEXT)
    elif change == 2:
        text = draw(ODD_TEXT)
    return text


@st.composite
def near_tokens(draw: st.DrawFn) -> str:
    """Tokens that start like one whose header was just seen, broken in every way."""
    payload = _segment(draw, draw(JSON_TEXTS).encode("utf-8", "surrogatepass"))
    signature = _segment(draw, draw(st.binary(max_size=10)))
    header = draw(st.sampled_from([LAST, LAST, LAST, LAST[:-1], LAST + "A", LAST + "AAAA"]))
    dots = st.sampled_from([".", ".", ".", "", ".."])
    token = header + draw(dots) + payload + draw(dots) + signature
    return token + (draw(ODD_TEXT) if draw(st.integers(0, 8)) == 0 else "")


def _long_way(token: str) -> tuple[Any, ...]:
    header, payload, signing_input, signature = jws._split(token)
    try:
        claims = jws.strict_json_object(payload)
    except ValueError as exc:
        raise InvalidTokenError(Reason.MALFORMED, str(exc)) from exc
    return header, claims, signing_input, signature


def _outcome(parse: Any, token: str) -> tuple[Any, ...]:
    jws._split(f"{LAST}.e30.AA")  # LAST is now the last header seen
    try:
        return ("parsed", *parse(token))
    except InvalidTokenError as exc:
        return ("refused", exc.reason, str(exc))


@MORE
@given(near_tokens())
def test_the_one_frame_split_answers_as_the_long_way(token: str) -> None:
    assert _outcome(jws.jwt_parts, token) == _outcome(_long_way, token)


# -- the plain API token ------------------------------------------------------------------------
NOW = 1_700_000_000
ISSUER, AUDIENCE = "https://api.example.com", "api"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class _AnySignature:
    alg, kid = "ES256", "k1"

    def verify(self, signing_input: bytes, signature: bytes) -> bool:
        return True


class _OneKey:
    def get(self, kid: str) -> AsymmetricKey:
        return _AnySignature()  # type: ignore[return-value]


def oracle(claims: dict[str, Any], now: float, leeway: int = 30, lifetime: int = 3600) -> Any:
    """docs/contract.md §6, in its order: the reason of the first rule broken, or the values."""
    if claims.get("iss") != ISSUER:
        return Reason.ISSUER
    aud = claims.get("aud")
    if not (
        aud == AUDIENCE
        if type(aud) is str
        else type(aud) is list and aud and all(type(a) is str for a in aud) and AUDIENCE in aud
    ):
        return Reason.AUDIENCE
    times = {n: claims[n] for n in ("exp", "iat", "nbf") if n in claims}
    if any(type(v) not in (int, float) for v in times.values()):
        return Reason.TIME_CLAIM
    exact = {n: Fraction(v) for n, v in times.items()}
    if "exp" not in exact or "iat" not in exact:
        return Reason.TIME_CLAIM
    if exact["exp"] <= Fraction(now) - leeway:
        return Reason.EXPIRED
    if max(exact["iat"], exact.get("nbf", exact["iat"])) > Fraction(now) + leeway:
        return Reason.NOT_YET_VALID
    if exact["exp"] - exact["iat"] > lifetime:
        return Reason.LIFETIME
    names = ("sub", "scope", "client_id", "jti", "sid")
    values = [claims.get(n) for n in names]
    if any(v is not None and type(v) is not str for v in values):
        return Reason.CLAIM
    sub, scope, client_id, jti, sid = values
    if not sub or scope is None or not client_id or not jti or sid is None:
        return Reason.CLAIM
    lowered = sub.lower()
    if len(sub) == 36 and sub.isascii() and UUID.fullmatch(lowered):
        sub = lowered
    # RFC 6749 §3.3: scope tokens are separated by the space character alone
    return (sub, tuple(t for t in scope.split("\x20") if t), client_id, jti, sid)


ODD: st.SearchStrategy[Any] = st.one_of(
    st.none(), st.booleans(), st.integers(-2, 2), st.just(["a"]), st.just({})
)
TIMES = st.one_of(
    st.integers(NOW - 4000, NOW + 4000),
    st.sampled_from([NOW - 31, NOW - 30, NOW + 30, NOW + 31, NOW + 3600, NOW + 3630, 0]),
    st.sampled_from([10**400, -(10**400), 1e300, -1e300]),
    st.floats(NOW - 100, NOW + 4000),
    st.just(str(NOW)),
    ODD,
)
STRINGS = st.one_of(
    st.sampled_from(
        ["", "a", "ABC", "İ", "ß", " read  write ", "8B3B1C7E-2F1A-4C3D-9E8F-0A1B2C3D4E5F"]
    ),
    st.text(max_size=4),
    ODD,
)
CLAIMS = {
    "iss": st.one_of(st.sampled_from([ISSUER, ISSUER + "/", ISSUER.upper()]), STRINGS),
    "aud": st.one_of(
        st.sampled_from(
            [AUDIENCE, [AUDIENCE], ["x", AUDIENCE], [], ["x"], "API", [AUDIENCE, 1], [[AUDIENCE]]]
        ),
        STRINGS,
    ),
    "exp": TIMES,
    "iat": TIMES,
    "nbf": TIMES,
    **{name: STRINGS for name in ("sub", "scope", "client_id", "jti", "sid")},
}
PLAIN = {
    "iss": ISSUER,
    "aud": AUDIENCE,
    "exp": NOW + 600,
    "iat": NOW,
    "sub": "s-1",
    "scope": "read",
    "client_id": "cli",
    "jti": "j-1",
    "sid": "s",
}


@st.composite
def claim_sets(draw: st.DrawFn) -> dict[str, Any]:
    """A plain valid claim set with a few claims removed or replaced."""
    claims = dict(PLAIN)
    for name, values in CLAIMS.items():
        change = draw(st.integers(0, 4))
        if change == 0:
            claims.pop(name, None)
        elif change == 1:
            claims[name] = draw(values)
    return claims


@MORE
@given(claim_sets(), st.floats(-45, 45))
def test_an_api_token_is_read_as_the_claim_rules_say(claims: dict[str, Any], skew: float) -> None:
    now = NOW + skew
    verifier = ApiTokenVerifier(_OneKey(), ISSUER, AUDIENCE, leeway=30, clock=lambda: now)
    header = b64url_encode(b'{"alg":"ES256","typ":"at+jwt","kid":"k1"}')
    token = f"{header}.{b64url_encode(json.dumps(claims).encode())}.AA"
    expected = oracle(claims, now)
    if isinstance(expected, str):
        with pytest.raises(InvalidTokenError) as caught:
            verifier.verify(token)
        assert caught.value.reason == expected
    else:
        assert tuple(verifier.verify(token)[:5]) == expected


# -- the authorizer's memos, on odd events ------------------------------------------------------
ARN = "arn:aws:execute-api:eu-west-1:123456789012:abc123/v1"
TABLE = {
    "GET /a": "read",
    "POST /a": "write",
    "GET /{p+}": "",
    "ANY /b/{x}": "admin",
    "DELETE /a/b": "read",
}
ARNS = [f"{ARN}/{m}{p}" for m in ("GET", "POST", "DELETE") for p in ("", "/", "/a", "/a/b", "/b/c")]
ODD_FIELD: st.SearchStrategy[Any] = st.one_of(
    st.none(), st.integers(0, 1), st.booleans(), st.just(["x"]), st.just({})
)
AUTHORIZATIONS = st.sampled_from(["t", "t read", "t write", "t read write admin", "bad"]).map(
    lambda spelled: "Bearer " + spelled.replace(" ", "-")
)
FIELDS = {
    "type": st.sampled_from(["TOKEN", "REQUEST", "token"]),
    "version": st.sampled_from(["2.0", "1.0", "2"]),
    "routeArn": st.sampled_from([*ARNS, "", "junk", ARN]),
    "methodArn": st.sampled_from([*ARNS, "", "junk", ARN]),
    "routeKey": st.sampled_from([*TABLE, "$default", "GET /x", ""]),
    "resource": st.sampled_from(["/a", "/{p+}", "/b/{x}", "/a/b", "/x", ""]),
    "httpMethod": st.sampled_from(["GET", "POST", "DELETE", "ANY"]),
}


@st.composite
def odd_events(draw: st.DrawFn) -> list[dict[str, Any]]:
    """A well-formed event of one kind, then variants of it: fields changed, removed, given odd
    types, or taken from another kind (requests a memo key has to tell apart)."""
    kind = draw(st.sampled_from(["TOKEN", "REQUEST", "HTTP"]))
    base: dict[str, Any] = {name: draw(values) for name, values in FIELDS.items()}
    if kind == "HTTP":
        base["version"] = "2.0"
        del base["methodArn"], base["resource"], base["httpMethod"], base["type"]
    else:
        base["type"] = kind
        del base["version"], base["routeArn"], base["routeKey"]
    events = []
    for _ in range(draw(st.integers(1, 5))):
        event = dict(base)
        authorization = draw(AUTHORIZATIONS)
        if kind == "HTTP":  # the header's value, with or without the route key (or another)
            route_key = event.get("routeKey")
            shape = draw(st.sampled_from([(0,), (0, 1), (1, 0), (0, 2), (0, 1, 2)]))
            event["identitySource"] = [(authorization, route_key, "GET /x")[i] for i in shape]
        for name in draw(st.lists(st.sampled_from([*FIELDS, "identitySource"]), max_size=2)):
            change = draw(st.integers(0, 3))
            if change == 0:
                event.pop(name, None)
            elif change == 1:
                event[name] = draw(ODD_FIELD)
            elif name == "identitySource":
                sources = st.one_of(FIELDS["routeKey"], AUTHORIZATIONS, ODD_FIELD)
                event[name] = draw(st.lists(sources, max_size=3))
            else:
                event[name] = draw(FIELDS[name])
        if draw(st.integers(0, 3)):
            event["authorizationToken"] = authorization
        if draw(st.integers(0, 3)):
            spelled = draw(st.sampled_from(["Authorization", "authorization"]))
            event["headers"] = {spelled: authorization}
        events.append(event)
    return events


@SETTINGS
@given(st.lists(odd_events(), min_size=1, max_size=3), st.randoms(use_true_random=False))
def test_a_remembered_answer_holds_for_odd_events(
    groups: list[list[dict[str, Any]]], rnd: Any
) -> None:
    """What the verifier is asked, what is decided and what is answered: as a fresh authorizer
    does, whatever came before (the same events again included)."""
    seen: list[Any] = []

    def verify(token: str, request: AuthRequest) -> Principal:
        seen.append(request)
        if token == "bad":
            raise InvalidTokenError(Reason.MALFORMED, "test")
        scopes = frozenset(token.split("-")[1:])
        return Principal("s-1", scopes, {"scope": " ".join(sorted(scopes))})

    def record(decision: str, reason: str, principal: Principal | None) -> None:
        seen.append((decision, reason))

    def answer(authorizer: Authorizer, event: dict[str, Any]) -> Any:
        seen.clear()
        try:
            result: Any = authorizer.decide(copy.deepcopy(event))
        except Unauthorized:
            result = "Unauthorized"
        return result, list(seen)

    warm = Authorizer(verify, RouteScopes(TABLE), record)
    events = [event for group in groups for event in group]
    for event in events + [rnd.choice(events) for _ in events]:
        assert answer(warm, event) == answer(Authorizer(verify, RouteScopes(TABLE), record), event)


def test_the_memos_keep_no_token() -> None:
    """Places and answers are remembered without the caller's token, including the HTTP API
    identity sources that carry it: a bearer token lives only as long as its invocation."""
    secret = "eyJ0b2tlbi1yZWFkLXdyaXRl"
    principal = Principal("s-1", frozenset({"read", "write"}), {"scope": "read write"})
    authorizer = Authorizer(lambda token, request: principal, RouteScopes(TABLE))
    arn = "arn:aws:execute-api:eu-west-1:123456789012:abc123/v1"
    for route_key in TABLE:
        method, path = route_key.split(" ")
        value = f"Bearer {secret}"
        events: list[dict[str, Any]] = [
            {"type": "TOKEN", "authorizationToken": value, "methodArn": f"{arn}/{method}{path}"},
            {
                "type": "REQUEST",
                "methodArn": f"{arn}/{method}{path}",
                "resource": path,
                "httpMethod": method,
                "headers": {"Authorization": value},
            },
            {
                "version": "2.0",
                "type": "REQUEST",
                "routeArn": f"{arn}/{method}{path}",
                "routeKey": route_key,
                "identitySource": [value, route_key],
                "headers": {"authorization": value},
            },
        ]
        for event in events:
            with contextlib.suppress(Unauthorized):
                authorizer.decide(event)
    remembered = repr(vars(authorizer))
    assert "abc123" in remembered  # the memos were filled
    assert secret not in remembered


def test_the_memos_stay_within_their_bound() -> None:
    """However many places and scope sets come, the memos hold at most MEMO_SIZE places and
    MEMO_SIZE answers, and every answer, after a clearing too, is a fresh authorizer's."""

    def verify(token: str, request: AuthRequest) -> Principal:
        scopes = frozenset(token.split("-")[1:])
        return Principal("s-1", scopes, {"scope": " ".join(sorted(scopes))})

    def answer(authorizer: Authorizer, event: dict[str, Any]) -> Any:
        try:
            return authorizer.decide(event)
        except Unauthorized:
            return "Unauthorized"

    warm = Authorizer(verify, RouteScopes(TABLE))
    warm.MEMO_SIZE = 3
    for _ in range(2):
        for arn in ARNS:
            for token in ("t", "t-read", "t-write", "t-read-write-admin"):
                event = {"type": "TOKEN", "authorizationToken": f"Bearer {token}", "methodArn": arn}
                assert answer(warm, event) == answer(Authorizer(verify, RouteScopes(TABLE)), event)
                assert len(warm._places) <= 3
                assert sum(len(place.answers) for place in warm._places.values()) <= 3
