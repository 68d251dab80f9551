"""The ``tokengate`` client: sign in with Supabase, hold and refresh API tokens, call the API.

Library use::

    from tokengate_cli import TokenSource

    source = TokenSource(api_url=..., supabase_url=..., supabase_key=...)  # or the environment
    token = source.token(scope="read")           # cached, refreshed, under one lock
    httpx.Client(auth=source.httpx_auth())       # injects it; re-exchanges once on a 401
    requests.Session().auth = source.requests_auth()
"""

from .errors import (
    ApiError,
    ClientError,
    ExchangeRefused,
    NotSignedIn,
    SessionEnded,
    Unreachable,
    UsageError,
)
from .source import TokenSource

__all__ = [
    "ApiError",
    "ClientError",
    "ExchangeRefused",
    "NotSignedIn",
    "SessionEnded",
    "TokenSource",
    "Unreachable",
    "UsageError",
]
__version__ = "0.1.0"
