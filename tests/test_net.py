"""tokengate.net.split_url: the authorizers' URL grammar, checked against urllib.parse.urlsplit.

The oracle is the standard library's splitter: whatever split_url accepts, urlsplit must split
into the same scheme, host, port, path and query; and every URL of the grammar is accepted.
"""

import string
from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokengate.config import Settings
from tokengate.errors import ConfigurationError
from tokengate.net import check_url, split_url

_UNRESERVED = string.ascii_letters + string.digits + "-._~"
_SUB_DELIMS = "!$&'()*+,;="
_PCHARS = _UNRESERVED + _SUB_DELIMS + ":@"
_LABEL = st.text(string.ascii_letters + string.digits, min_size=1, max_size=12)
_HOST = st.one_of(
    st.lists(_LABEL, min_size=1, max_size=4).map(".".join),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda a: f"[{a}]"),
)
_ESCAPE = st.tuples(st.sampled_from(string.hexdigits), st.sampled_from(string.hexdigits)).map(
    lambda pair: "%" + "".join(pair)
)
_SEGMENT = st.lists(st.one_of(st.sampled_from(_PCHARS), _ESCAPE), max_size=8).map("".join)
_QUERY = st.lists(st.one_of(st.sampled_from(_PCHARS + "/?"), _ESCAPE), max_size=10).map("".join)


@st.composite
def urls(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["https", "http", "HTTPS", "Http"]))
    host = draw(_HOST)
    port = draw(st.none() | st.integers(1, 65535))
    path = "".join("/" + segment for segment in draw(st.lists(_SEGMENT, max_size=4)))
    query = draw(st.none() | _QUERY)
    authority = host + (f":{port}" if port is not None else "")
    return f"{scheme}://{authority}{path}" + (f"?{query}" if query is not None else "")


def assert_split_as_urlsplit(url: str) -> None:
    ours = split_url(url)
    theirs = urlsplit(url)
    assert ours.scheme == theirs.scheme
    assert ours.host == theirs.hostname
    assert ours.port == theirs.port
    assert ours.authority == theirs.netloc
    assert ours.path == theirs.path
    assert ours.query == theirs.query
    assert theirs.fragment == "" and theirs.username is None


@settings(max_examples=400, deadline=None)
@given(urls())
def test_every_url_of_the_grammar_is_split_as_urlsplit_splits_it(url: str) -> None:
    assert_split_as_urlsplit(url)


_NEAR_URL = st.text(
    alphabet=st.sampled_from(_PCHARS + "/?#[]%\\ \t\n\r\x00é" + string.ascii_letters), max_size=40
)


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(["https://", "http://", "https://a.example", "ftp://", ""]), _NEAR_URL)
def test_whatever_is_accepted_urlsplit_splits_the_same_way(prefix: str, rest: str) -> None:
    url = prefix + rest
    try:
        split_url(url)
    except ValueError:
        return
    assert_split_as_urlsplit(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://user@example.com/jwks.json",  # userinfo
        "https://user:pw@example.com/",
        "https://example.com/jwks.json#frag",  # fragment
        "https://example.com\\@evil.example/",  # backslash
        "https://exa mple.com/",  # whitespace
        "https://example.com/a\tb",  # urlsplit drops the tab silently
        "https://example.com/\n",
        "https://exämple.com/",  # not ASCII
        "https://example.com:0/",
        "https://example.com:65536/",
        "https://example.com:/",  # a colon without a port
        "https:///path",  # no host
        "https://-example.com/",
        "https://example.com/%zz",  # a malformed escape
        "https://[fe80::1%25eth0]/",  # a zone id
        "https://[a:]/",  # not an IPv6 address
        "https://[1.2.3.4]/",
        "ftp://example.com/",
        "example.com/jwks.json",
        "",
    ],
)
def test_what_the_grammar_refuses(url: str) -> None:
    with pytest.raises(ValueError, match=r"URL|IPv6"):
        split_url(url)


def test_host_and_scheme_are_lowercased_and_brackets_dropped() -> None:
    parts = split_url("HTTPS://Example.COM:8443/A/b?X=1")
    assert (parts.scheme, parts.host, parts.port, parts.path, parts.query) == (
        "https",
        "example.com",
        8443,
        "/A/b",
        "X=1",
    )
    assert parts.authority == "Example.COM:8443"  # the Host header, as written
    assert split_url("http://[::1]:9000/x").host == "::1"


@pytest.mark.parametrize(
    ("url", "accepted"),
    [
        ("https://api.example.com/.well-known/jwks.json", True),
        ("http://127.0.0.1:3000/jwks.json", True),
        ("http://localhost:3000/jwks.json", True),
        ("http://[::1]:3000/jwks.json", True),
        ("http://api.example.com/jwks.json", False),  # plain http off loopback
        ("https://user@api.example.com/jwks.json", False),
    ],
)
def test_fetched_urls_are_https_or_loopback_http(url: str, accepted: bool) -> None:
    if accepted:
        assert check_url(url, "a JWKS URL") == url
    else:
        with pytest.raises(ConfigurationError):
            check_url(url, "a JWKS URL")


@pytest.mark.parametrize(
    "value",
    ["https://x.supabase.co?", "https://x.supabase.co?a=b", "https://x.supabase.co#f", "x.co"],
)
def test_a_configured_url_with_a_query_or_fragment_stops_the_start(value: str) -> None:
    with pytest.raises(ConfigurationError, match="SUPABASE_URL must be an http"):
        Settings.from_env({"SUPABASE_URL": value})
