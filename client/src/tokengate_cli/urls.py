"""URL rules, kept apart from :mod:`tokengate_cli.http` so the cached-token path never imports
urllib.request (and with it ssl and email)."""

from __future__ import annotations

from urllib.parse import urlsplit

from .errors import UsageError


def check_url(url: str, what: str) -> str:
    """https, or plain http to a loopback address only (local development): a name that merely
    starts with ``127.`` is a remote host, and a token must never cross the network in clear."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - a port that is not a number in range is a malformed URL
    except ValueError:
        raise UsageError(f"{what} is not a valid URL: {url}") from None
    if parts.scheme == "https" and host:
        return url.rstrip("/")
    if parts.scheme == "http":
        from tokengate.http import is_loopback_host  # the server's own rule, off the https path

        if is_loopback_host(host):
            return url.rstrip("/")
    raise UsageError(f"{what} must be an https URL (plain http only on loopback): {url}")
