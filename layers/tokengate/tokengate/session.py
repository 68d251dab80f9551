"""The optional live-session check (docs/contract.md §5): is a token's session still live?

Supabase does not revoke access tokens on sign-out; ``GET <SUPABASE_URL>/auth/v1/user`` answers
200 only while the session is live (and the user exists and is not banned). Off by default: it
costs a network round trip to the project's region on every exchange.
"""

from __future__ import annotations

from .errors import DependencyUnavailableError, InvalidTokenError, Reason
from .http import HttpClient, check_url

ENDED = frozenset({401, 403, 404})


class SupabaseSessionCheck:
    def __init__(self, supabase_url: str, api_key: str, http: HttpClient | None = None) -> None:
        self.url = check_url(f"{supabase_url}/auth/v1/user", "SUPABASE_URL")
        self._api_key = api_key
        self._http = http or HttpClient()

    def check(self, token: str) -> None:
        """Return if the session is live; InvalidTokenError if it has ended;
        DependencyUnavailableError if Supabase cannot tell us."""
        headers = {"apikey": self._api_key, "Authorization": f"Bearer {token}"}
        answer = self._http.get(self.url, headers, "session_check_unavailable")
        if answer.status == 200:
            return
        if answer.status in ENDED:
            raise InvalidTokenError(Reason.SESSION_ENDED, "the Supabase session has ended")
        raise DependencyUnavailableError("session_check_unavailable", f"status {answer.status}")
