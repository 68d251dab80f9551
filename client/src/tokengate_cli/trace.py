"""``--verbose`` / ``TOKENGATE_DEBUG=1``: one line on standard error per HTTP request.

Each line has the method, the URL without its query values (``?grant_type=password`` stays,
anything else shows as ``name=…``: a query can carry a code or a token), the status and the
time taken. Never a header or a body, so never a token.
"""

from __future__ import annotations

import os
import sys
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

SHOWN_QUERY_VALUES = frozenset({"grant_type", "scope", "provider"})
_verbose = False


def enable() -> None:
    global _verbose
    _verbose = True


def enabled() -> bool:
    return _verbose or bool(os.environ.get("TOKENGATE_DEBUG"))


def shown_url(url: str) -> str:
    """``url`` as a trace line may show it: no query values but harmless ones, no fragment,
    no user information."""
    parts = urlsplit(url)
    query = [
        (name, value if name in SHOWN_QUERY_VALUES else "…")
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
    ]
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query, safe="…"), ""))


def request_line(method: str, url: str, status: int | str, seconds: float) -> None:
    if enabled():
        sys.stderr.write(
            f"tokengate: {method} {shown_url(url)} -> {status} ({seconds * 1000:.0f} ms)\n"
        )
        sys.stderr.flush()
