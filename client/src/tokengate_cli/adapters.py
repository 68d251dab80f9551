"""Auth adapters for httpx and requests: inject the API token, re-exchange once on a 401.

A 401 means the API refused the token (revoked key, clock skew, a token cut short): the adapter
asks its :class:`TokenSource` for a token *other than* the refused one, and retries once.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from .bearer import BearerTokens


class HttpxAuth(httpx.Auth):
    def __init__(self, source: BearerTokens, scope: str | None = None) -> None:
        self._source = source
        self._scope = scope

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self._source.token(self._scope)
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            token = self._source.token(self._scope, replacing=token)
            request.headers["Authorization"] = f"Bearer {token}"
            yield request
