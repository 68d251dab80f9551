"""The client's errors, one class per exit code.

::

    ClientError                 exit_code, one-line message (never a token)
    ├── ApiError            1   the API answered an error (``call``)
    ├── UsageError          2   bad flags or configuration
    ├── NotSignedIn         3   no session, or Supabase refused a sign-in
    │   ├── SessionEnded    3   the session ended at Supabase (revoked, signed out): sign in again
    │   └── SessionRefused  3   the API refuses the session's token, refreshed too: sign in again
    ├── Unreachable         4   the API or Supabase could not be reached (or answered 5xx)
    └── ExchangeRefused     5   the token endpoint refused the exchange (``error`` inside)

Lower libraries' exceptions (urllib, httpx, supabase-auth) are translated into these where they
are caught, with ``raise ... from exc``; the command line prints ``message`` and exits with
``exit_code``.
"""

from __future__ import annotations

SIGN_IN_AGAIN = "sign in again: tokengate login"


class ClientError(Exception):
    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ApiError(ClientError):
    exit_code = 1


class UsageError(ClientError):
    exit_code = 2


class NotSignedIn(ClientError):
    exit_code = 3


class SessionEnded(NotSignedIn):
    """Supabase says the session is over: the local copy is deleted."""


class SessionRefused(NotSignedIn):
    """The token endpoint refuses the session's own Supabase token, freshly refreshed too
    (``invalid_request``, the subject token not acceptable): the session was revoked at the API
    (``/revoke``, ``make revoke``), or the sign-in is not one its policy accepts. The Supabase
    session may live on; a new sign-in is a new session."""


class Unreachable(ClientError):
    exit_code = 4


class ExchangeRefused(ClientError):
    exit_code = 5

    def __init__(self, error: str, description: str) -> None:
        text = f"the API refused the exchange: {error}"
        super().__init__(f"{text}: {description}" if description else text)
        self.error = error
        self.description = description
