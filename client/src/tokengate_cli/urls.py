"""URL rules, kept apart from :mod:`tokengate_cli.http` so the cached-token path never imports
urllib.request (and with it ssl and email)."""

from __future__ import annotations

from urllib.parse import urlsplit

from .errors import UsageError


def check_url(url: str, what: str) -> str:
    """https, or plain http to loopback only (local development)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "https" and host:
        return url.rstrip("/")
    if parts.scheme == "http" and (host in ("localhost", "::1") or host.startswith("127.")):
        return url.rstrip("/")
    raise UsageError(f"{what} must be an https URL (plain http only on loopback): {url}")
