"""``tokengate token`` with a valid cached token, before argparse or anything heavy is imported.

It runs inside people's pipelines (``curl -H "Authorization: Bearer $(tokengate token)"``), so
this path reads the profile's ``config.json`` and ``tokens.json`` with the one state reader and
prints the token, importing nothing beyond the standard library modules the interpreter has
mostly loaded already. Anything it does not handle exactly as the full command line would (an
option it does not know, a value it would have to judge, no cached token, state to migrate or
to refuse) makes it step aside: :func:`cached_token` returns None and the full command runs.

The rules shared with the full path live here, once: the cache key, how settings are chosen.
"""

from __future__ import annotations

import json
import os
import sys
import time

from .state import DEFAULT_PROFILE, read_state, valid_profile_name

DEFAULT_MIN_TTL = 60
MAX_MIN_TTL = 3600
TYPE_CHECKING = False  # not typing's: this path never imports typing
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

VALUE_OPTIONS = frozenset({"--scope", "--audience", "--resource", "--min-ttl", "--api"})


def normalize_scope(scope: str | None) -> str:
    return " ".join(sorted(set((scope or "").split())))


def cache_key(api_url: str, audience: str | None, resource: str | None, scope: str | None) -> str:
    return json.dumps([api_url, audience or "", resource or "", normalize_scope(scope)])


def first_setting(*values: Any) -> str | None:
    """The first non-blank value (a flag, then the environment, then what login saved); a URL
    loses its trailing slashes."""
    for value in values:
        if isinstance(value, str) and value.strip():
            return value.strip().rstrip("/") if "://" in value else value.strip()
    return None


def is_time(value: Any) -> bool:
    """A finite epoch time (JSON also allows NaN and Infinity, and true is an int)."""
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and value == value
        and abs(value) != float("inf")
    )


def token_json(entry: Mapping[str, Any]) -> str:
    """``tokengate token --json``: the token with what a script needs to schedule the next."""
    return json.dumps(
        {
            "access_token": entry["access_token"],
            "token_type": "Bearer",
            "expires_at": int(entry["expires_at"]),
            "scope": entry.get("scope") or "",
            "audience": entry.get("resource") or token_audience(str(entry["access_token"])),
        }
    )


def token_audience(token: str) -> str | list[str] | None:
    """The ``aud`` the API put in its own token (read, not verified: it is for display)."""
    import base64

    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        audience = claims.get("aud")
    except (IndexError, ValueError, AttributeError):
        return None
    if isinstance(audience, str) or (
        isinstance(audience, list) and all(isinstance(a, str) for a in audience)
    ):
        return audience
    return None


def _parse(argv: Sequence[str]) -> tuple[dict[str, str], bool] | None:
    options: dict[str, str] = {}
    as_json = False
    command = False
    index = 0
    while index < len(argv):
        argument = argv[index]
        name, equals, value = argument.partition("=")
        if argument == "token" and not command:
            command = True
        elif argument == "--json" and command and not as_json:
            as_json = True
        elif name == "--profile" or (command and name in VALUE_OPTIONS):
            if not equals:
                index += 1
                if index == len(argv):
                    return None
                value = argv[index]
            if name in options or value.startswith("-"):
                return None
            options[name] = value
        else:
            return None
        index += 1
    if not command or ("--audience" in options and "--resource" in options):
        return None
    return options, as_json


def _default_home(env: Mapping[str, str]) -> str | None:
    configured = env.get("TOKENGATE_HOME")
    if configured:
        return os.path.expanduser(configured)
    if sys.platform != "linux" or "ANDROID_DATA" in env:
        return None  # platformdirs knows this platform's config directory
    base = env.get("XDG_CONFIG_HOME", "")
    if not base.strip():
        base = os.path.expanduser("~/.config")
    return os.path.join(base, "tokengate")


def _private_dir(path: str) -> bool:
    try:
        info = os.stat(path)
    except OSError:
        return False
    owned = not hasattr(os, "geteuid") or info.st_uid == os.geteuid()
    return owned and not info.st_mode & 0o022 and os.path.isdir(path)


def cached_token(argv: Sequence[str], env: Mapping[str, str] = os.environ) -> int | None:
    """Print a cached token that has at least ``--min-ttl`` left and return 0; None when the
    full command line has to decide."""
    parsed = _parse(argv)
    if parsed is None or env.get("TOKENGATE_DEBUG"):
        return None
    options, as_json = parsed
    ttl = options.get("--min-ttl", str(DEFAULT_MIN_TTL))
    if not (ttl.isascii() and ttl.isdigit()) or int(ttl) > MAX_MIN_TTL:
        return None
    home = _default_home(env)
    profile = options.get("--profile") or env.get("TOKENGATE_PROFILE") or DEFAULT_PROFILE
    if home is None or not valid_profile_name(profile):
        return None
    directory = os.path.join(home, "profiles", profile)
    if not (_private_dir(home) and _private_dir(directory)):
        return None
    if os.path.isfile(os.path.join(home, "session.json")):
        return None  # state from before profiles: the full path moves it
    saved = read_state(os.path.join(directory, "config.json")) or {}
    api = first_setting(options.get("--api"), env.get("TOKENGATE_API_URL"), saved.get("api_url"))
    if api is None:
        return None
    key = cache_key(
        api, options.get("--audience"), options.get("--resource"), options.get("--scope")
    )
    tokens = read_state(os.path.join(directory, "tokens.json"), secret=True) or {}
    entry = tokens.get(key)
    if (
        not isinstance(entry, dict)
        or not isinstance(entry.get("access_token"), str)
        or not is_time(entry.get("expires_at"))
        or float(entry["expires_at"]) - time.time() < int(ttl)
    ):
        return None
    try:
        sys.stdout.write((token_json(entry) if as_json else entry["access_token"]) + "\n")
        sys.stdout.flush()
    except OSError:  # a closed pipe: the reader has gone
        return 1
    return 0
