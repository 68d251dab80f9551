"""The ``tokengate`` client: sign in with Supabase, hold and refresh API tokens, call the API.

Library use::

    from tokengate_cli import TokenSource

    source = TokenSource(api_url=..., supabase_url=..., supabase_key=...)  # or the environment
    token = source.token(scope="read")           # cached, refreshed, under one lock
    httpx.Client(auth=source.httpx_auth())       # injects it; re-exchanges once on a 401
    requests.Session().auth = source.requests_auth()
"""

from __future__ import annotations

from .errors import (
    ApiError,
    ClientError,
    ExchangeRefused,
    NotSignedIn,
    SessionEnded,
    SessionRefused,
    Unreachable,
    UsageError,
)

TYPE_CHECKING = False  # not typing's: `tokengate token` with a cached token never imports typing
if TYPE_CHECKING:
    from typing import Any

    from .source import TokenSource

__all__ = [
    "ApiError",
    "ClientError",
    "ExchangeRefused",
    "NotSignedIn",
    "SessionEnded",
    "SessionRefused",
    "TokenSource",
    "Unreachable",
    "UsageError",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """``TokenSource`` is loaded when first asked for: the command line's cached-token path
    never needs it."""
    if name == "TokenSource":
        from .source import TokenSource

        return TokenSource
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
