"""Where the client may send a token: https anywhere, plain http only to a loopback address."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokengate_cli.errors import UsageError
from tokengate_cli.urls import check_url


def plain_http_allowed(host: str) -> bool:
    """The oracle: a loopback IP address (127.0.0.0/8, ::1) or the name localhost."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@pytest.mark.parametrize(
    "url",
    [
        "http://127.attacker.example:3000",
        "http://127.0.0.1.nip.io",
        "http://127.1.2.3.example.com/",
        "http://localhost.attacker.example",
    ],
)
def test_plain_http_to_a_name_that_merely_looks_like_loopback_is_refused(url: str) -> None:
    with pytest.raises(UsageError, match="https"):
        check_url(url, "the API URL")


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:3000", "http://127.9.8.7", "http://[::1]:8080/", "http://localhost"]
)
def test_plain_http_to_loopback_is_allowed(url: str) -> None:
    assert check_url(url, "the API URL") == url.rstrip("/")


labels = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)


@given(st.lists(st.one_of(labels, st.integers(0, 255).map(str)), min_size=1, max_size=5))
def test_plain_http_is_allowed_exactly_for_loopback_hosts(parts: list[str]) -> None:
    host = ".".join(["127", *parts])
    url = f"http://{host}:3000"
    if plain_http_allowed(host):
        assert check_url(url, "the API URL") == url
    else:
        with pytest.raises(UsageError):
            check_url(url, "the API URL")


@pytest.mark.parametrize("url", ["http://[::1", "https://[not-an-ip]/", "http://127.0.0.1:port"])
def test_a_malformed_url_is_a_usage_error(url: str) -> None:
    with pytest.raises(UsageError, match="the API URL"):
        check_url(url, "the API URL")
