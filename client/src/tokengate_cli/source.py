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

The fast path (a valid cached token) reads two small files and imports nothing heavy; the
console script takes it before even argparse is loaded (:mod:`tokengate_cli.fast`).
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

from tokengate.errors import INVALID_SUBJECT

from .errors import (
    SIGN_IN_AGAIN,
    ExchangeRefused,
    NotSignedIn,
    SessionEnded,
    SessionRefused,
    Unreachable,
    UsageError,
)
from .fast import DEFAULT_MIN_TTL, MAX_MIN_TTL, cache_key, first_setting, is_time, normalize_scope
from .state import make_private_dirs
from .store import (
    CONFIG_FILE,
    LOCK_FILE,
    FileStore,
    SecretStore,
    atomic_write,
    check_own_home,
    default_home,
    migrate_single_profile,
    open_store,
    profile_dir,
    profile_name,
    read_json,
)

# An API answers with its API token's ``expires_in``: how long the token works at its gateway,
# which may end up to this long before the Supabase token it came from expires (an authorizer
# allows a token only while it outlives its cached answer). The session is refreshed this much
# earlier, so an exchange never gets a subject token too close to its end to be usable.
GATEWAY_MARGIN = 30

__all__ = ["DEFAULT_MIN_TTL", "TokenSource", "cache_key", "normalize_scope", "remaining"]

LOCK_TIMEOUT_SECONDS = 60.0
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
SIGN_IN_FIRST = "not signed in; run: tokengate login"
# Product-specific discovery members an API may add to advertise its Supabase project.
DISCOVERY_SUPABASE_URL = "tokengate_supabase_url"
DISCOVERY_SUPABASE_KEY = "tokengate_supabase_publishable_key"

Clock = Callable[[], float]


class _SubjectRefused(ExchangeRefused):
    """The token endpoint refused the session's own Supabase token (``invalid_request``, the one
    description of every refused subject token: the reason is in the API's logs only)."""

    def ended(self) -> SessionRefused:
        return SessionRefused(
            f"the API refuses this session's token ({self.error}: {self.description}): the "
            f"session was revoked there, or the sign-in is not one it accepts; {SIGN_IN_AGAIN}"
        )


def checked_min_ttl(value: int) -> int:
    if not 0 <= value <= MAX_MIN_TTL:
        raise UsageError(f"--min-ttl must be within 0-{MAX_MIN_TTL} seconds")
    return value


class TokenSource:
    """API tokens for one API, from one signed-in Supabase session.

    Settings come from the arguments, else the environment (``TOKENGATE_API_URL``,
    ``SUPABASE_URL``, ``SUPABASE_ANON_KEY`` or ``SUPABASE_PUBLISHABLE_KEY``), else what
    ``tokengate login`` saved in the profile. ``home`` (default ``TOKENGATE_HOME`` or the user
    config dir) holds the state, one directory per ``profile`` (default ``TOKENGATE_PROFILE``,
    else ``default``); sign in with the ``tokengate login`` command first.
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
        profile: str | None = None,
    ) -> None:
        self.home = check_own_home(Path(home) if home is not None else default_home())
        self.profile = profile_name(profile)
        migrate_single_profile(self.home)
        self.dir = check_own_home(profile_dir(self.home, self.profile))
        saved = read_json(self.dir / CONFIG_FILE) or {}
        env = os.environ
        self.api_url = first_setting(api_url, env.get("TOKENGATE_API_URL"), saved.get("api_url"))
        self.supabase_url = first_setting(
            supabase_url, env.get("SUPABASE_URL"), saved.get("supabase_url")
        )
        self.supabase_key = first_setting(
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
        # Cached API tokens live in a 0600 file even when the session is in a keyring: they
        # are short-lived, and a cached `tokengate token` must not pay for loading a keyring.
        self.token_store = FileStore(self.dir)

    # -- state ----------------------------------------------------------------------------

    @property
    def store(self) -> SecretStore:
        """Where the session is kept (the OS keyring, or a file)."""
        if self._store is None:
            self._store = open_store(self.dir, self.store_kind)
        return self._store

    @contextmanager
    def locked(self) -> Iterator[None]:
        """The one cross-process lock every state change of this profile takes."""
        from filelock import FileLock, Timeout

        make_private_dirs(self.dir, self.home)
        path = self.dir / LOCK_FILE
        if path.is_dir():
            raise UsageError(f"{path} is a directory where tokengate keeps its lock: remove it")
        lock = FileLock(str(path), timeout=LOCK_TIMEOUT_SECONDS, mode=0o600)
        try:
            with lock:
                yield
        except Timeout as exc:
            raise Unreachable(
                f"another tokengate process has held {path} for {LOCK_TIMEOUT_SECONDS:.0f} s"
            ) from exc

    def save_config(self, **values: Any) -> None:
        make_private_dirs(self.dir, self.home)
        config = read_json(self.dir / CONFIG_FILE) or {}
        config.update({k: v for k, v in values.items() if v is not None})
        atomic_write(self.dir / CONFIG_FILE, json.dumps(config, indent=2) + "\n")

    def session(self) -> dict[str, Any] | None:
        """The stored Supabase session; a damaged record (edited, truncated, from another
        version) counts as no session, so every command can still say "sign in" or clean up."""
        session = self.store.get("session")
        if session is None or not _is_session(session):
            return None
        return session

    def cached_tokens(self) -> dict[str, dict[str, Any]]:
        """The cached API tokens by cache key; damaged entries are skipped."""
        tokens = self.token_store.get("tokens") or {}
        return {
            key: entry
            for key, entry in tokens.items()
            if isinstance(entry, dict)
            and isinstance(entry.get("access_token"), str)
            and is_time(entry.get("expires_at"))
        }

    def forget(self) -> None:
        """Delete every secret (the caller holds the lock). The profile's public settings (the
        API and the Supabase project) stay, so that ``tokengate login`` signs in again with no
        flags and a signed-out ``token`` says "sign in" (exit 3), not "no API URL"."""
        self.store.delete("session")
        self.token_store.delete("tokens")

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
        entry = self.token_entry(
            scope, audience=audience, resource=resource, min_ttl=min_ttl, replacing=replacing
        )
        return str(entry["access_token"])

    def token_entry(
        self,
        scope: str | None = None,
        *,
        audience: str | None = None,
        resource: str | None = None,
        min_ttl: int | None = None,
        replacing: str | None = None,
    ) -> dict[str, Any]:
        """:meth:`token` with what is known of it: ``access_token``, ``expires_at``, ``scope``,
        ``audience``, ``resource``."""
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
            session, refreshed = self._live_session(ttl)
            while True:
                try:
                    entry = self._exchange(api, session, scope, audience, resource)
                    break
                except _SubjectRefused as refused:
                    # The session's own Supabase token refused. A token this client judged
                    # fresh by its own clock may be expired by the API's (clock skew), or signed
                    # by a key the API is still fetching: a refreshed token is tried once.
                    # Refused again, the session is one the API no longer accepts (revoked
                    # there) or a sign-in it never does (another project, an anonymous or too
                    # weak sign-in): sign in again.
                    if refreshed:
                        raise refused.ended() from None
                    session, refreshed = self._refreshed(session), True
            tokens = self.cached_tokens()
            now = self._clock()
            tokens = {k: v for k, v in tokens.items() if v.get("expires_at", 0) > now}
            tokens[key] = entry
            self.token_store.put("tokens", tokens)
            return entry

    def _fresh(self, key: str, min_ttl: int, replacing: str | None) -> dict[str, Any] | None:
        entry = self.cached_tokens().get(key)
        if not entry or entry.get("access_token") == replacing:
            return None
        if float(entry.get("expires_at", 0)) - self._clock() < min_ttl:
            return None
        return entry

    def _live_session(self, min_ttl: int) -> tuple[dict[str, Any], bool]:
        """The Supabase session, refreshed first if its access token is the one running out
        (the caller holds the lock), and whether it was."""
        session = self.session()
        if not session:
            raise NotSignedIn(SIGN_IN_FIRST)
        if float(session.get("expires_at", 0)) - self._clock() >= min_ttl + GATEWAY_MARGIN:
            return session, False
        return self._refreshed(session), True

    def _refreshed(self, session: dict[str, Any]) -> dict[str, Any]:
        from . import supabase

        try:
            session = supabase.refresh(session)
        except SessionEnded:
            self.store.delete("session")
            self.token_store.delete("tokens")
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
            if (answer.status, error, description) == (400, "invalid_request", INVALID_SUBJECT):
                raise _SubjectRefused(error, description)
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

    def revoke(self, session: dict[str, Any] | None) -> str:
        """Revoke this profile's session at the API (RFC 7009: the API ends the whole session
        the token belongs to, so the API tokens cached here stop working too). Sends the
        session's Supabase access token, else a cached API token. Returns what happened, in
        words; raises :class:`Unreachable` when the API cannot be reached, :class:`ApiError`
        when it refuses every token."""
        from .errors import ApiError
        from .http import check_url, request

        api = self.require_api()
        endpoint = self.discovery(api).get("revocation_endpoint")
        if not isinstance(endpoint, str):
            return "the API offers no revocation_endpoint"
        endpoint = check_url(endpoint, "the revocation endpoint")
        candidates = []
        if session and float(session["expires_at"]) > self._clock():
            candidates.append(str(session["access_token"]))
        now = self._clock()
        candidates += [
            str(entry["access_token"])
            for entry in self.cached_tokens().values()
            if float(entry["expires_at"]) > now
        ]
        if not candidates:
            return "nothing left to revoke (the session and tokens had expired)"
        refusal = ""
        for token in dict.fromkeys(candidates):
            answer = request(
                "POST",
                endpoint,
                headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "Accept": "application/json",
                },
                body=urlencode({"token": token, "token_type_hint": "access_token"}).encode(),
            )
            if answer.status == 200:
                return "revoked at the API"
            if answer.status >= 500:
                raise Unreachable(f"the API's revocation endpoint answered {answer.status}")
            document = answer.json() or {}
            refusal = str(document.get("error") or f"HTTP {answer.status}")
        raise ApiError(f"the API refused to revoke the session ({refusal})")

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


def _is_session(session: dict[str, Any]) -> bool:
    strings = ("access_token", "refresh_token", "supabase_url", "supabase_key")
    return (
        all(isinstance(session.get(name), str) and session[name] for name in strings)
        and is_time(session.get("expires_at"))
        and isinstance(session.get("user"), dict)
    )


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
