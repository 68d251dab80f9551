"""A small HTTP client for the local stack over loopback (the tools and the tests use it)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlencode

from tokengate.exchange import ACCESS_TOKEN, GRANT_TYPE

Answer = tuple[int, dict[str, str], Any]


def http(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> Answer:
    # Callers pass the local stack's own http://127.0.0.1 URLs.
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=20) as response:  # noqa: S310
            status, head, raw = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        status, head, raw = error.code, dict(error.headers), error.read()
    return status, head, json.loads(raw) if raw else None


class Client:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def get(self, path: str, token: str | None = None, authorization: str | None = None) -> Answer:
        headers = (
            {"Authorization": authorization or f"Bearer {token}"}
            if (token or authorization)
            else {}
        )
        return http("GET", self.base_url + path, headers=headers)

    def exchange(self, subject_token: str, **params: str) -> Answer:
        form = {
            "grant_type": GRANT_TYPE,
            "subject_token": subject_token,
            "subject_token_type": ACCESS_TOKEN,
        } | params
        return http(
            "POST",
            self.base_url + "/token",
            urlencode(form).encode(),
            {"Content-Type": "application/x-www-form-urlencoded"},
        )

    def revoke(self, token: str, **params: str) -> Answer:
        """POST /revoke (RFC 7009): revokes the token's session."""
        return http(
            "POST",
            self.base_url + "/revoke",
            urlencode({"token": token} | params).encode(),
            {"Content-Type": "application/x-www-form-urlencoded"},
        )
