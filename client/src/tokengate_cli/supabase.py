"""Sessions with Supabase Auth, through Supabase's own Python client (``supabase-auth``).

The client is used without its session persistence or auto-refresh timer: the CLI keeps the
session itself (so one cross-process lock can guard every refresh) and hands each call the
tokens it needs. Imported only when a sign-in, refresh or sign-out is actually needed: it pulls
in httpx and pydantic, which ``tokengate token`` with a valid cached token never pays for.

A session record is a small dict: ``access_token``, ``refresh_token``, ``expires_at``, ``user``
(``id``, ``email``), and the project it belongs to (``supabase_url``, ``supabase_key``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
from supabase_auth import SyncGoTrueClient
from supabase_auth.errors import AuthApiError, AuthError, AuthRetryableError

from . import trace
from .errors import SIGN_IN_AGAIN, ClientError, NotSignedIn, SessionEnded, Unreachable

# Refresh answers that mean the session is over (signed out elsewhere, revoked, reused token).
SESSION_ENDED = frozenset(
    {
        "refresh_token_not_found",
        "refresh_token_already_used",
        "session_not_found",
        "session_expired",
        "user_not_found",
        "user_banned",
        "bad_jwt",
    }
)

T = TypeVar("T")


def auth_client(supabase_url: str, supabase_key: str, *, pkce: bool = False) -> SyncGoTrueClient:
    return SyncGoTrueClient(
        url=f"{supabase_url}/auth/v1",
        headers={"apikey": supabase_key},
        auto_refresh_token=False,
        persist_session=False,
        flow_type="pkce" if pkce else "implicit",
        http_client=traced_http_client() if trace.enabled() else None,
    )


def traced_http_client() -> httpx.Client:
    """The HTTP client supabase-auth would make, with ``--verbose``'s one line per request."""

    def started(request: httpx.Request) -> None:
        request.extensions["tokengate_started"] = time.perf_counter()

    def answered(response: httpx.Response) -> None:
        request = response.request
        began = float(request.extensions.get("tokengate_started", time.perf_counter()))
        trace.request_line(
            request.method, str(request.url), response.status_code, time.perf_counter() - began
        )

    return httpx.Client(
        follow_redirects=True, event_hooks={"request": [started], "response": [answered]}
    )


@contextlib.contextmanager
def translated(supabase_url: str, ending: str = "") -> Iterator[None]:
    """Supabase client errors → the CLI's errors (one line, exit code by cause)."""
    host = urlsplit(supabase_url).netloc
    try:
        yield
    except AuthRetryableError as exc:
        raise Unreachable(f"Supabase at {host} could not be reached ({exc.message})") from exc
    except AuthApiError as exc:
        if exc.status >= 500:
            raise Unreachable(f"Supabase at {host} answered {exc.status}") from exc
        if exc.status == 429:
            raise Unreachable(
                f"Supabase at {host} is rate-limiting ({exc.code}); retry shortly"
            ) from exc
        if ending and exc.code in SESSION_ENDED:
            raise SessionEnded(f"{ending} ({exc.code}); {SIGN_IN_AGAIN}") from exc
        raise NotSignedIn(f"Supabase refused: {exc.message} ({exc.code or exc.status})") from exc
    except AuthError as exc:
        raise NotSignedIn(f"Supabase: {exc.message}") from exc
    except ClientError:
        raise
    except OSError as exc:  # transport errors httpx did not wrap
        raise Unreachable(f"Supabase at {host} could not be reached ({exc})") from exc


def record(session: Any, supabase_url: str, supabase_key: str) -> dict[str, Any]:
    user = session.user
    # Counted on this machine's clock from expires_in, so a skewed clock cannot make a dying
    # access token look fresh (or a fresh one look dead).
    expires_at = int(time.time()) + int(session.expires_in) if session.expires_in else 0
    return {
        "access_token": session.access_token,
        "refresh_token": session.refresh_token,
        "expires_at": expires_at or int(session.expires_at or 0),
        "user": {"id": str(user.id) if user else "", "email": (user.email if user else "") or ""},
        "supabase_url": supabase_url,
        "supabase_key": supabase_key,
    }


def _session_of(response: Any, supabase_url: str) -> Any:
    if response is None or response.session is None:
        raise NotSignedIn(f"Supabase at {urlsplit(supabase_url).netloc} returned no session")
    return response.session


def _call(supabase_url: str, supabase_key: str, action: Callable[[SyncGoTrueClient], T]) -> T:
    with auth_client(supabase_url, supabase_key) as client, translated(supabase_url):
        return action(client)


def sign_in_with_password(
    supabase_url: str, supabase_key: str, email: str, password: str
) -> dict[str, Any]:
    response = _call(
        supabase_url,
        supabase_key,
        lambda c: c.sign_in_with_password({"email": email, "password": password}),
    )
    return record(_session_of(response, supabase_url), supabase_url, supabase_key)


def send_otp(supabase_url: str, supabase_key: str, email: str) -> None:
    _call(
        supabase_url,
        supabase_key,
        lambda c: c.sign_in_with_otp({"email": email, "options": {"should_create_user": False}}),
    )


def verify_otp(supabase_url: str, supabase_key: str, email: str, code: str) -> dict[str, Any]:
    response = _call(
        supabase_url,
        supabase_key,
        lambda c: c.verify_otp({"email": email, "token": code, "type": "email"}),
    )
    return record(_session_of(response, supabase_url), supabase_url, supabase_key)


class ProviderSignIn:
    """OAuth provider sign-in with PKCE: ``url`` to open, then ``finish(code)``."""

    def __init__(self, supabase_url: str, supabase_key: str, provider: str, redirect_to: str):
        self._supabase_url = supabase_url
        self._supabase_key = supabase_key
        self._redirect_to = redirect_to
        self._client = auth_client(supabase_url, supabase_key, pkce=True)
        with translated(supabase_url):
            self.url = self._client.sign_in_with_oauth(
                {"provider": provider, "options": {"redirect_to": redirect_to}}  # type: ignore[typeddict-item]
            ).url

    def finish(self, auth_code: str) -> dict[str, Any]:
        with self._client, translated(self._supabase_url):
            response = self._client.exchange_code_for_session(
                {"auth_code": auth_code, "redirect_to": self._redirect_to}
            )
        return record(
            _session_of(response, self._supabase_url), self._supabase_url, self._supabase_key
        )


def refresh(session: dict[str, Any]) -> dict[str, Any]:
    url, key = session["supabase_url"], session["supabase_key"]
    with auth_client(url, key) as client, translated(url, "the Supabase session has ended"):
        response = client.refresh_session(session["refresh_token"])
    return record(_session_of(response, url), url, key)


def sign_out(session: dict[str, Any]) -> None:
    """End this session at Supabase (scope ``local``: other devices stay signed in). A session
    that has already ended counts as signed out."""
    url, key = session["supabase_url"], session["supabase_key"]
    with auth_client(url, key) as client, translated(url):
        try:
            client.admin.sign_out(session["access_token"], "local")
        except AuthApiError as exc:
            if exc.status not in (401, 403, 404):
                raise


def get_user(session: dict[str, Any]) -> dict[str, Any]:
    """The user behind a live session; NotSignedIn once the session has ended."""
    url, key = session["supabase_url"], session["supabase_key"]
    with auth_client(url, key) as client, translated(url, "the Supabase session has ended"):
        response = client.get_user(session["access_token"])
    user = response.user if response else None
    return {"id": str(user.id), "email": user.email or ""} if user else {}
