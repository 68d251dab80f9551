"""A ``requests`` auth: inject the API token, re-exchange once on a 401 (requests is optional:
this module is imported only by ``TokenSource.requests_auth()``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from requests.auth import AuthBase

if TYPE_CHECKING:
    from .bearer import BearerTokens


class RequestsAuth(AuthBase):
    def __init__(self, source: BearerTokens, scope: str | None = None) -> None:
        self._source = source
        self._scope = scope

    def __call__(self, request: Any) -> Any:
        token = self._source.token(self._scope)
        request.headers["Authorization"] = f"Bearer {token}"
        request.register_hook("response", self._retry_once(token))
        return request

    def _retry_once(self, token: str) -> Any:
        def hook(response: Any, **kwargs: Any) -> Any:
            if response.status_code != 401:
                return response
            fresh = self._source.token(self._scope, replacing=token)
            retry = response.request.copy()
            retry.hooks["response"] = []  # once only
            retry.headers["Authorization"] = f"Bearer {fresh}"
            response.content  # noqa: B018 - drain the body so the connection can be reused
            response.close()
            again = response.connection.send(retry, **kwargs)
            again.history.append(response)
            return again

        return hook
