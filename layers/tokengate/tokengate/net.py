"""Outbound connections, whatever speaks over them: which URLs may be called, and name resolution
and socket timeouts bounded by a call's deadline (:mod:`tokengate.fetch`, :mod:`tokengate.http`).

https only; plain http only to a loopback host, for local development.
"""

from __future__ import annotations

import re
import socket
import threading
from typing import Any

from .budget import Deadline
from .errors import ConfigurationError

MAX_TIMEOUT_SECONDS = 3.0

# The URLs an authorizer fetches or is configured with, as RFC 3986 spells them, narrowed:
# http(s); a host name, IPv4 address or bracketed IPv6 literal; an optional port; a path and a
# query of RFC 3986 characters (percent-escapes well formed). No userinfo, no fragment, nothing
# outside printable ASCII. Stricter than urllib.parse.urlsplit, which accepts all of those and
# silently drops tabs and newlines; and urllib.parse (with ipaddress, which it imports) is ~3 ms
# of an authorizer's cold start that this one expression replaces. Checked against urlsplit over
# generated URLs (tests/test_net.py): whatever this accepts, urlsplit splits the same way.
_PCHAR = r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})"
_URL = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://"
    r"(?P<authority>(?P<host>[A-Za-z0-9_](?:[A-Za-z0-9_.\-]*[A-Za-z0-9_])?|\[[0-9A-Fa-f:.]+\])"
    r"(?::(?P<port>[0-9]{1,5}))?)"
    rf"(?P<path>(?:/{_PCHAR}*)*)"
    rf"(?:\?(?P<query>(?:{_PCHAR}|[/?])*))?"
)


class Url:
    """A URL split by :func:`split_url`: ``host`` lowercased and without brackets, ``port``
    None when not given, ``query`` without its ``?``."""

    __slots__ = ("authority", "host", "path", "port", "query", "scheme")

    def __init__(
        self, scheme: str, authority: str, host: str, port: int | None, path: str, query: str
    ) -> None:
        self.scheme = scheme
        self.authority = authority
        self.host = host
        self.port = port
        self.path = path
        self.query = query


def split_url(url: str) -> Url:
    """``url`` split into its parts; ValueError if it is not an http(s) URL of the narrowed
    grammar above."""
    match = _URL.fullmatch(url) if isinstance(url, str) else None
    if match is None:
        raise ValueError("not an http(s) URL of the accepted form")
    scheme = match["scheme"].lower()
    if scheme not in ("https", "http"):
        raise ValueError("not an http(s) URL")
    port = match["port"]
    number = int(port) if port is not None else None
    if number is not None and not 0 < number < 65536:
        raise ValueError("the URL's port is out of range")
    host = match["host"].lower()
    if host.startswith("["):
        import ipaddress  # only a configured IPv6 literal pays for this import

        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError("the bracketed host is not an IPv6 address") from None
    return Url(scheme, match["authority"], host, number, match["path"], match["query"] or "")


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    import ipaddress  # only the plain-http (local development) path asks

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def checked_url(url: str, what: str) -> Url:
    """``url`` split, if it may be called: https only; plain http only to a loopback host (local
    development). ConfigurationError naming ``what`` otherwise."""
    try:
        parts = split_url(url)
    except ValueError:
        parts = None
    if parts is not None and (parts.scheme == "https" or is_loopback_host(parts.host)):
        return parts
    raise ConfigurationError(f"{what} must be https (or http on loopback): {url!r}")


def check_url(url: str, what: str) -> str:
    """``url`` itself, if it may be called (see :func:`checked_url`)."""
    checked_url(url, what)
    return url


def op_timeout(deadline: Deadline, cap: float) -> float:
    left = deadline.remaining()
    if left <= 0:
        raise TimeoutError("deadline passed")
    return min(cap, left)


def resolve(host: str, port: int, deadline: Deadline, cap: float) -> list[Any]:
    """getaddrinfo, given up when the deadline passes (a literal address needs no lookup)."""
    # An ASCII host as bytes: given a str, getaddrinfo encodes it with the "idna" codec, whose
    # import (with stringprep and unicodedata) a cold start would pay for an ASCII name.
    name: str | bytes = host.encode("ascii") if host.isascii() else host
    try:
        return socket.getaddrinfo(name, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    except socket.gaierror:
        pass  # a name, not a literal address
    found: list[Any] = []
    failed: list[OSError] = []
    done = threading.Event()

    def lookup() -> None:
        try:
            found.extend(socket.getaddrinfo(name, port, type=socket.SOCK_STREAM))
        except OSError as exc:
            failed.append(exc)
        finally:
            done.set()

    threading.Thread(target=lookup, daemon=True).start()
    if not done.wait(op_timeout(deadline, cap)):
        raise TimeoutError("name resolution")
    if failed:
        raise failed[0]
    return found
