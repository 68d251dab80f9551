"""Outbound connections, whatever speaks over them: which URLs may be called, and name resolution
and socket timeouts bounded by a call's deadline (:mod:`tokengate.fetch`, :mod:`tokengate.http`).

https only; plain http only to a loopback host, for local development.
"""

from __future__ import annotations

import socket
import threading
from typing import Any
from urllib.parse import urlsplit

from .budget import Deadline
from .errors import ConfigurationError

MAX_TIMEOUT_SECONDS = 3.0


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


def check_url(url: str, what: str) -> str:
    """https only; plain http only to a loopback host (local development)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and is_loopback_host(parts.hostname):
        return url
    raise ConfigurationError(f"{what} must be https (or http on loopback): {url!r}")


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
