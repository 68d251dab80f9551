"""``TokenSource``: a currently valid API token, exchanged, cached and refreshed as needed.

The life of a token::

    cached API token with >= min_ttl left ──────────────────────────────► use it (no lock)
    otherwise, under the cross-process lock:
        read the cache again (another process may have just done the work)
        Supabase access token with < min_ttl ──────► refresh the session (single-use refresh
        + GATEWAY_MARGIN left                         token: only ever one refresher at a time)
        exchange it at the API's token_endpoint (from discovery) ──► cache ──► use it

An API token never outlives the Supabase access token it came from (the exchange cuts it short),
which is why the session is refreshed first when it is the one running out. Every state change
(sign-in, refresh, exchange, sign-out) happens under one lock file in the state directory, so N
concurrent processes cause one refresh and one exchange, never a refresh-token reuse that would
end the session.

The fast path (a valid cached token) reads two small files and imports nothing heavy.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from .errors import (
    ExchangeRefused,
    NotSignedIn,
    SessionEnded,
    Unreachable,
    UsageError,
)
from .store import (
    CONFIG_FILE,
    LOCK_FILE,
    SecretStore,
    atomic_write,
    check_own_home,
    default_home,
    ensure_private_dir,
    open_store,
    read_json,
)

DEFAULT_MIN_TTL = 60
# An API answers with its API token's ``expires_in``: how long the token works at its gateway,
# which may end up to this long before the Supabase token it came from expires (an authorizer
# allows a token only while it outlives its cached answer). The session is refreshed this much
# earlier, so an exchange never gets a subject token too close to its end to be usable.
GATEWAY_MARGIN = 30
MAX_MIN_TTL = 3600
LOCK_TIMEOUT_SECONDS = 60.0
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
SIGN_IN_FIRST = "not signed in; run: tokengate login"
# Product-specific discovery members an API may add to advertise its Supabase project.
DISCOVERY_SUPABASE_URL = "tokengate_supabase_url"
DISCOVERY_SUPABASE_KEY = "tokengate_supabase_publishable_key"

Clock = Callable[[], float]


def normalize_scope(scope: str | None) -> str:
    return " ".join(sorted(set((scope or "").split())))


def cache_key(api_url: str, audience: str | None, resource: str | None, scope: str | None) -> str:
    return json.dumps([api_url, audience or "", resource or "", normalize_scope(scope)])


def checked_min_ttl(value: int) -> int:
    if not 0 <= value <= MAX_MIN_TTL:
        raise UsageError(f"--min-ttl must be within 0-{MAX_MIN_TTL} seconds")
    return value


class TokenSource:
    """API tokens for one API, from one signed-in Supabase session.

    Settings come from the arguments, else the environment (``TOKENGATE_API_URL``,
    ``SUPABASE_URL``, ``SUPABASE_ANON_KEY`` or ``SUPABASE_PUBLISHABLE_KEY``), else what
    ``tokengate login`` saved. ``home`` (default ``TOKENGATE_HOME`` or the user config dir)
    holds the state; sign in with the ``tokengate login`` command first.
    """

    def __init__(
        self,
        api_url: str | None = None,
        supabase_url: str | None = None,
        supabase_key: str | None = None,
        *,
        home: str | os.PathLike[str] | None = None,
        scope: str | None = None,
        audience: str | None = None,
        resource: str | None = None,
        min_ttl: int = DEFAULT_MIN_TTL,
        clock: Clock = time.time,
    ) -> None:
        self.home = check_own_home(Path(home) if home is not None else default_home())
        saved = read_json(self.home / CONFIG_FILE) or {}
        env = os.environ
        self.api_url = _first(api_url, env.get("TOKENGATE_API_URL"), saved.get("api_url"))
        self.supabase_url = _first(supabase_url, env.get("SUPABASE_URL"), saved.get("supabase_url"))
        self.supabase_key = _first(
            supabase_key,
            env.get("SUPABASE_ANON_KEY"),
            env.get("SUPABASE_PUBLISHABLE_KEY"),
            saved.get("supabase_key"),
        )
        self.store_kind = str(saved.get("store") or "file")
        self.scope = scope
        self.audience = audience
        self.resource = resource
        self.min_ttl = checked_min_ttl(min_ttl)
        self._clock = clock
        self._store: SecretStore | None = None

    # -- state ----------------------------------------------------------------------------

    @property
    def store(self) -> SecretStore:
        if self._store is None:
            self._store = open_store(self.home, self.store_kind)
        return self._store

    @contextmanager
    def locked(self) -> Iterator[None]:
        """The one cross-process lock every state change takes."""
        from filelock import FileLock, Timeout

        ensure_private_dir(self.home)
        lock = FileLock(str(self.home / LOCK_FILE), timeout=LOCK_TIMEOUT_SECONDS, mode=0o600)
        try:
            with lock:
                yield
        except Timeout as exc:
            raise Unreachable(
                f"another tokengate process has held {self.home / LOCK_FILE} for "
                f"{LOCK_TIMEOUT_SECONDS:.0f} s"
            ) from exc

    def save_config(self, **values: Any) -> None:
        ensure_private_dir(self.home)
        config = read_json(self.home / CONFIG_FILE) or {}
        config.update({k: v for k, v in values.items() if v is not None})
        atomic_write(self.home / CONFIG_FILE, json.dumps(config, indent=2) + "\n")

    def session(self) -> dict[str, Any] | None:
        """The stored Supabase session; a damaged record (edited, truncated, from another
        version) counts as no session, so every command can still say "sign in" or clean up."""
        session = self.store.get("session")
        if session is None or not _is_session(session):
            return None
        return session

    def cached_tokens(self) -> dict[str, dict[str, Any]]:
        """The cached API tokens by cache key; damaged entries are skipped."""
        tokens = self.store.get("tokens") or {}
        return {
            key: entry
            for key, entry in tokens.items()
            if isinstance(entry, dict)
            and isinstance(entry.get("access_token"), str)
            and _is_time(entry.get("expires_at"))
        }

    def forget(self) -> None:
        """Delete every secret and the saved settings (the caller holds the lock)."""
        self.store.delete("session")
        self.store.delete("tokens")
        config = self.home / CONFIG_FILE
        if config.exists():
            config.unlink()

    # -- settings -------------------------------------------------------------------------

    def require_api(self) -> str:
        if not self.api_url:
            raise UsageError("no API URL: pass --api URL or set TOKENGATE_API_URL (login saves it)")
        from .urls import check_url

        return check_url(self.api_url, "the API URL")

    def require_supabase(self) -> tuple[str, str]:
        """The Supabase project: configured, else advertised by the API's discovery document
        (``tokengate_supabase_url``, ``tokengate_supabase_publishable_key``: both public), so that
        ``tokengate login --api URL`` can need nothing else."""
        from .http import check_url

        if (not self.supabase_url or not self.supabase_key) and self.api_url:
            advertised = self.discovery(self.require_api())
            url, key = (
                advertised.get(DISCOVERY_SUPABASE_URL),
                advertised.get(DISCOVERY_SUPABASE_KEY),
            )
            if not self.supabase_url and isinstance(url, str):
                self.supabase_url = url.rstrip("/")
            if not self.supabase_key and isinstance(key, str):
                self.supabase_key = key
        if not self.supabase_url or not self.supabase_key:
            raise UsageError(
                "no Supabase project: pass --supabase-url and --supabase-key, or set "
                "SUPABASE_URL and SUPABASE_ANON_KEY"
            )
        return check_url(self.supabase_url, "the Supabase URL"), self.supabase_key

    # -- tokens ---------------------------------------------------------------------------

    def token(
        self,
        scope: str | None = None,
        *,
        audience: str | None = None,
        resource: str | None = None,
        min_ttl: int | None = None,
        replacing: str | None = None,
    ) -> str:
        """A currently valid API token. ``replacing``: a token the API just refused (401);
        it is not handed out again."""
        api = self.require_api()
        scope = scope if scope is not None else self.scope
        audience = audience if audience is not None else self.audience
        resource = resource if resource is not None else self.resource
        ttl = checked_min_ttl(min_ttl if min_ttl is not None else self.min_ttl)
        key = cache_key(api, audience, resource, scope)
        fresh = self._fresh(key, ttl, replacing)
        if fresh is not None:
            return fresh
        with self.locked():
            fresh = self._fresh(key, ttl, replacing)
            if fresh is not None:
                return fresh
            session = self._live_session(ttl)
            entry = self._exchange(api, session, scope, audience, resource)
            tokens = self.cached_tokens()
            now = self._clock()
            tokens = {k: v for k, v in tokens.items() if v.get("expires_at", 0) > now}
            tokens[key] = entry
            self.store.put("tokens", tokens)
            return str(entry["access_token"])

    def _fresh(self, key: str, min_ttl: int, replacing: str | None) -> str | None:
        entry = self.cached_tokens().get(key)
        if not entry or entry.get("access_token") == replacing:
            return None
        if float(entry.get("expires_at", 0)) - self._clock() < min_ttl:
            return None
        return str(entry["access_token"])

    def _live_session(self, min_ttl: int) -> dict[str, Any]:
        """The Supabase session, refreshed first if its access token is the one running out
        (the caller holds the lock)."""
        session = self.session()
        if not session:
            raise NotSignedIn(SIGN_IN_FIRST)
        if float(session.get("expires_at", 0)) - self._clock() >= min_ttl + GATEWAY_MARGIN:
            return session
        from . import supabase

        try:
            session = supabase.refresh(session)
        except SessionEnded:
            self.store.delete("session")
            self.store.delete("tokens")
            raise
        self.store.put("session", session)
        return session

    def _exchange(
        self,
        api: str,
        session: dict[str, Any],
        scope: str | None,
        audience: str | None,
        resource: str | None,
    ) -> dict[str, Any]:
        from .http import request

        endpoint = self.token_endpoint(api)
        form = {
            "grant_type": GRANT_TYPE,
            "subject_token": session["access_token"],
            "subject_token_type": ACCESS_TOKEN_TYPE,
        }
        if scope:
            form["scope"] = normalize_scope(scope)
        if audience:
            form["audience"] = audience
        if resource:
            form["resource"] = resource
        answer = request(
            "POST",
            endpoint,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
            },
            body=urlencode(form).encode(),
        )
        document = answer.json() or {}
        if answer.status >= 500:
            raise Unreachable(
                f"the API's token endpoint answered {answer.status} "
                f"{document.get('error') or answer.reason}".rstrip()
            )
        if answer.status != 200 or not isinstance(document.get("access_token"), str):
            error = str(document.get("error") or f"HTTP {answer.status}")
            description = str(document.get("error_description") or "")
            raise ExchangeRefused(error, description)
        expires_in = document.get("expires_in")
        if isinstance(expires_in, bool) or not isinstance(expires_in, int) or expires_in <= 0:
            raise ExchangeRefused("invalid_response", "the token endpoint gave no expires_in")
        return {
            "access_token": document["access_token"],
            "expires_at": int(self._clock()) + expires_in,
            "scope": str(document.get("scope") or normalize_scope(scope)),
            "audience": audience or "",
            "resource": resource or "",
            "api_url": api,
        }

    def discovery(self, api: str) -> dict[str, Any]:
        """The API's discovery document; its ``issuer`` must be the API's URL exactly."""
        from .http import request

        url = f"{api}/.well-known/openid-configuration"
        answer = request("GET", url, headers={"Accept": "application/json"})
        if answer.status >= 500:
            raise Unreachable(f"the API at {urlsplit(api).netloc} answered {answer.status}")
        document = answer.json() if answer.status == 200 else None
        if document is None or not isinstance(document.get("token_endpoint"), str):
            raise UsageError(
                f"{api} serves no discovery document (HTTP {answer.status}); "
                "is it the API's base URL?"
            )
        issuer = document.get("issuer")
        if issuer != api:
            raise UsageError(f"the API at {api} names its issuer {issuer!r}: use --api {issuer}")
        return document

    def token_endpoint(self, api: str) -> str:
        """The API's ``token_endpoint``, read from its discovery document."""
        from .http import check_url

        return check_url(self.discovery(api)["token_endpoint"], "the token endpoint")

    # -- adapters for HTTP libraries --------------------------------------------------------

    def httpx_auth(self, scope: str | None = None) -> Any:
        """An ``httpx.Auth`` that injects the token and re-exchanges once on a 401."""
        from .adapters import HttpxAuth

        return HttpxAuth(self, scope)

    def requests_auth(self, scope: str | None = None) -> Any:
        """A ``requests`` auth that injects the token and re-exchanges once on a 401."""
        from .requests_auth import RequestsAuth

        return RequestsAuth(self, scope)


def _is_time(value: Any) -> bool:
    """A finite epoch time (JSON also allows NaN and Infinity, and true is an int)."""
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and value == value
        and abs(value) != float("inf")
    )


def _is_session(session: dict[str, Any]) -> bool:
    strings = ("access_token", "refresh_token", "supabase_url", "supabase_key")
    return (
        all(isinstance(session.get(name), str) and session[name] for name in strings)
        and _is_time(session.get("expires_at"))
        and isinstance(session.get("user"), dict)
    )


def _first(*values: Any) -> str | None:
    for value in values:
        if isinstance(value, str) and value.strip():
            return value.strip().rstrip("/") if "://" in value else value.strip()
    return None


def remaining(expires_at: float, now: float) -> str:
    """A human duration: "14m 3s", "expired 2m ago"."""
    seconds = int(expires_at - now)
    text = _duration(abs(seconds))
    return f"in {text}" if seconds >= 0 else f"expired {text} ago"


def _duration(seconds: int) -> str:
    if seconds >= 3600:
        return f"{seconds // 3600}h {seconds % 3600 // 60}m"
    if seconds >= 60:
        return f"{seconds // 60}m {seconds % 60}s"
    return f"{seconds}s"


def host_of(url: str) -> str:
    return urlsplit(url).netloc
