"""RFC 8693 request parsing (docs/contract.md §3.1, §12 F-26)."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from tokengate.errors import RequestError
from tokengate.exchange import ACCESS_TOKEN, GRANT_TYPE, JWT, parse_token_request

FORM = "application/x-www-form-urlencoded"
BASE = [("grant_type", GRANT_TYPE), ("subject_token", "tok"), ("subject_token_type", ACCESS_TOKEN)]


def form(*extra: tuple[str, str], base: list[tuple[str, str]] = BASE) -> bytes:
    return urlencode([*base, *extra]).encode()


def error_of(body: bytes, content_type: str | None = FORM) -> str:
    with pytest.raises(RequestError) as caught:
        parse_token_request(body, content_type)
    return caught.value.error


def test_minimal_form_request() -> None:
    request = parse_token_request(form(), FORM)
    assert request.subject_token == "tok"
    assert request.audiences == ()
    assert request.scopes is None


def test_all_parameters() -> None:
    body = form(
        ("audience", "a"),
        ("audience", "b"),
        ("resource", "https://api.example.com/"),
        ("scope", "read write"),
        ("requested_token_type", JWT),
    )
    request = parse_token_request(body, f"{FORM}; charset=UTF-8")
    assert request.audiences == ("a", "b")
    assert request.resources == ("https://api.example.com/",)
    assert request.scopes == ("read", "write")


def test_json_body_with_the_same_members() -> None:
    body = json.dumps(
        {
            "grant_type": GRANT_TYPE,
            "subject_token": "tok",
            "subject_token_type": JWT,
            "audience": ["a", "b"],
            "scope": "read",
        }
    ).encode()
    request = parse_token_request(body, "application/json")
    assert request.audiences == ("a", "b")


CASES = {
    "missing grant_type": (form(base=BASE[1:]), FORM, "invalid_request"),
    "empty grant_type": (form(base=[("grant_type", ""), *BASE[1:]]), FORM, "invalid_request"),
    "password grant": (
        form(base=[("grant_type", "password"), *BASE[1:]]),
        FORM,
        "unsupported_grant_type",
    ),
    "client_credentials": (
        form(base=[("grant_type", "client_credentials"), *BASE[1:]]),
        FORM,
        "unsupported_grant_type",
    ),
    "grant_type case": (
        form(base=[("grant_type", GRANT_TYPE.upper()), *BASE[1:]]),
        FORM,
        "unsupported_grant_type",
    ),
    "missing subject_token": (form(base=[BASE[0], BASE[2]]), FORM, "invalid_request"),
    "empty subject_token": (
        form(base=[BASE[0], ("subject_token", ""), BASE[2]]),
        FORM,
        "invalid_request",
    ),
    "missing subject_token_type": (form(base=BASE[:2]), FORM, "invalid_request"),
    "id_token subject type": (
        form(base=[*BASE[:2], ("subject_token_type", "urn:ietf:params:oauth:token-type:id_token")]),
        FORM,
        "invalid_request",
    ),
    "refresh_token subject type": (
        form(
            base=[
                *BASE[:2],
                ("subject_token_type", "urn:ietf:params:oauth:token-type:refresh_token"),
            ]
        ),
        FORM,
        "invalid_request",
    ),
    "saml requested type": (
        form(("requested_token_type", "urn:ietf:params:oauth:token-type:saml2")),
        FORM,
        "invalid_request",
    ),
    "actor_token": (
        form(("actor_token", "x"), ("actor_token_type", ACCESS_TOKEN)),
        FORM,
        "invalid_request",
    ),
    "actor_token_type alone": (form(("actor_token_type", ACCESS_TOKEN)), FORM, "invalid_request"),
    "repeated grant_type": (form(("grant_type", GRANT_TYPE)), FORM, "invalid_request"),
    "repeated subject_token": (form(("subject_token", "other")), FORM, "invalid_request"),
    "repeated scope": (form(("scope", "a"), ("scope", "b")), FORM, "invalid_request"),
    "oversized body": (form(("scope", "x" * 17000)), FORM, "invalid_request"),
    "text/plain": (form(), "text/plain", "invalid_request"),
    "no content type": (form(), None, "invalid_request"),
    "multipart": (form(), "multipart/form-data; boundary=x", "invalid_request"),
    "json array": (b"[]", "application/json", "invalid_request"),
    "json not json": (b"{", "application/json", "invalid_request"),
    "json number member": (
        json.dumps({"grant_type": GRANT_TYPE, "subject_token": 5}).encode(),
        "application/json",
        "invalid_request",
    ),
    "json repeated member": (
        f'{{"grant_type": "{GRANT_TYPE}", "subject_token": "a", "subject_token": "b", "subject_token_type": "{ACCESS_TOKEN}"}}'.encode(),
        "application/json",
        "invalid_request",
    ),
    "json list for single": (
        json.dumps({"grant_type": [GRANT_TYPE]}).encode(),
        "application/json",
        "invalid_request",
    ),
    "invalid utf-8 form": (b"grant_type=\xff", FORM, "invalid_request"),
    "broken form": (b"grant_type", FORM, "invalid_request"),
    "too many fields": (
        b"&".join([form()] + [b"x%d=1" % i for i in range(40)]),
        FORM,
        "invalid_request",
    ),
}


@pytest.mark.parametrize("body, content_type, error", CASES.values(), ids=CASES.keys())
def test_invalid_requests(body: bytes, content_type: str | None, error: str) -> None:
    assert error_of(body, content_type) == error
