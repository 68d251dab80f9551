"""Where the client keeps its state: a directory of its own, one sub-directory per profile, and
secrets in a keyring or files.

The state directory (``TOKENGATE_HOME``, else the user's config directory) holds
``profiles/<name>/`` for each profile (``--profile NAME`` / ``TOKENGATE_PROFILE``, ``default``
when unset). A profile's directory holds ``config.json`` (public settings: the API and Supabase
URLs, the publishable key, which secret store is in use; it survives ``logout``), ``lock`` (the
profile's cross-process lock), ``tokens.json`` (the cached API tokens: short-lived, always a file,
so that a cached ``tokengate token`` never loads a keyring) and the Supabase session: in the OS
keyring when a real backend exists, else ``session.json``. Directories are 0700, files 0600,
written atomically (write a temporary file, fsync, rename). With ``TOKENGATE_HOME`` set the file
store is always used, so tests and CI never touch a keyring.

State written before profiles existed (``config.json``, ``session.json`` and ``tokens.json`` at
the top of the state directory) is moved into ``profiles/default/`` the first time it is seen.

This module is on the fast path of ``tokengate token``: it imports nothing beyond the standard
library until a keyring is actually needed.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from .errors import ClientError, UsageError
from .state import (
    DEFAULT_PROFILE,
    MAX_PROFILE_NAME,
    make_private_dirs,
    read_state,
    valid_profile_name,
)

APP_NAME = "tokengate"
CONFIG_FILE = "config.json"
LOCK_FILE = "lock"
SECRET_NAMES = ("session", "tokens")
KEYRING_SERVICE = "tokengate"
PROFILES_DIR = "profiles"


def default_home() -> Path:
    configured = os.environ.get("TOKENGATE_HOME")
    if configured:
        return Path(configured).expanduser()
    from platformdirs import user_config_dir

    return Path(user_config_dir(APP_NAME, appauthor=False))


def check_own_home(path: Path) -> Path:
    """Refuse a state directory that another user owns or may write to: its ``config.json``
    could name their Supabase project (where ``login`` would send the password) or their API,
    and its session could be theirs. Checked before anything in it is read."""
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return path  # created 0700 by the first write
    if not hasattr(os, "geteuid"):
        return path  # Windows: the user's profile directory is private by ACL
    if info.st_uid != os.geteuid():
        raise UsageError(
            f"the state directory {path} belongs to another user; "
            "set TOKENGATE_HOME to a directory of your own"
        )
    if info.st_mode & 0o022:
        raise UsageError(
            f"others can write to the state directory {path}: run chmod 700 on it, "
            "or set TOKENGATE_HOME to a private directory"
        )
    return path


def profile_name(explicit: str | None = None) -> str:
    """The profile in use: ``--profile``, else ``TOKENGATE_PROFILE``, else ``default``. A name is
    a directory name: letters, digits, ``_ . -``, not starting with a dot."""
    name = explicit or os.environ.get("TOKENGATE_PROFILE") or DEFAULT_PROFILE
    if not valid_profile_name(name):
        raise UsageError(
            f"not a profile name: {name!r} (letters, digits, _ . -; at most "
            f"{MAX_PROFILE_NAME} characters, not starting with a dot)"
        )
    return name


def profile_dir(home: Path, name: str) -> Path:
    return home / PROFILES_DIR / name


def migrate_single_profile(home: Path) -> None:
    """Move state written before profiles existed into ``profiles/default/``, keeping the
    session (a file, or a keyring entry keyed by the old directory). Safe to race: each file
    is moved by one rename, and a file already in the profile is never overwritten."""
    old = [name for name in (CONFIG_FILE, "session.json", "tokens.json") if (home / name).is_file()]
    if not old:
        return
    target = profile_dir(home, DEFAULT_PROFILE)
    make_private_dirs(target)
    config = read_state(home / CONFIG_FILE) or {}
    for name in old:
        if not (target / name).exists():
            with contextlib.suppress(FileNotFoundError):  # another process moved it first
                os.replace(home / name, target / name)
        else:
            with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                (home / name).unlink()
    if config.get("store") == "keyring" and not os.environ.get("TOKENGATE_HOME"):
        before, after = KeyringStore(home), KeyringStore(target)
        session = before.get("session")
        if session is not None and after.get("session") is None:
            after.put("session", session)
        before.delete("session")
        before.delete("tokens")  # a cache: exchanged again when needed


def ensure_private_dir(path: Path) -> Path:
    return make_private_dirs(path)


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` as 0600, atomically: readers see the old or the new file."""
    import tempfile  # not on the cached-token path, which only reads

    if path.is_dir():
        raise UsageError(f"{path} is a directory where tokengate keeps a file: remove it")
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        if hasattr(os, "fchmod"):  # mkstemp makes it 0600 already; say so where modes exist
            os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def read_json(path: Path, *, secret: bool = False) -> dict[str, Any] | None:
    """A state file's JSON object; anything damaged counts as absent (:func:`read_state`)."""
    return read_state(path, secret=secret)


class SecretStore(Protocol):
    kind: str

    def get(self, name: str) -> dict[str, Any] | None: ...

    def put(self, name: str, value: dict[str, Any]) -> None: ...

    def delete(self, name: str) -> None: ...


class FileStore:
    """Secrets as 0600 JSON files in the 0700 state directory."""

    kind = "file"

    def __init__(self, home: Path) -> None:
        self.home = home

    def get(self, name: str) -> dict[str, Any] | None:
        return read_json(self.home / f"{name}.json", secret=True)

    def put(self, name: str, value: dict[str, Any]) -> None:
        ensure_private_dir(self.home)
        atomic_write(self.home / f"{name}.json", json.dumps(value, separators=(",", ":")))

    def delete(self, name: str) -> None:
        path = self.home / f"{name}.json"
        if path.is_dir():
            return  # not a file of the client's: never a secret, left for the user
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


class KeyringStore:
    """Secrets in the OS keyring (macOS Keychain, Windows Credential Locker, Secret Service),
    one entry per secret, keyed by the state directory so two homes never share entries."""

    kind = "keyring"

    def __init__(self, home: Path) -> None:
        import keyring

        self._keyring = keyring
        self._prefix = f"{home.resolve()}:"

    def get(self, name: str) -> dict[str, Any] | None:
        with keyring_errors():
            text = self._keyring.get_password(KEYRING_SERVICE, self._prefix + name)
        if not text:
            return None
        try:
            value = json.loads(text)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def put(self, name: str, value: dict[str, Any]) -> None:
        with keyring_errors():
            self._keyring.set_password(
                KEYRING_SERVICE, self._prefix + name, json.dumps(value, separators=(",", ":"))
            )

    def delete(self, name: str) -> None:
        from keyring.errors import PasswordDeleteError

        with keyring_errors(), contextlib.suppress(PasswordDeleteError):
            self._keyring.delete_password(KEYRING_SERVICE, self._prefix + name)


@contextlib.contextmanager
def keyring_errors() -> Iterator[None]:
    """A keyring failure (locked, no D-Bus session, denied) is one line, with the way out."""
    from keyring.errors import KeyringError

    try:
        yield
    except KeyringError as exc:
        raise ClientError(
            f"the OS keyring refused ({type(exc).__name__}: {exc}); "
            "set TOKENGATE_HOME to keep state in files instead"
        ) from exc


def keyring_available() -> bool:
    """True when a real keyring backend is configured: not the ``fail`` or ``null`` backends,
    nor a chainer with nothing behind it, nor the plaintext backends of keyrings.alt."""
    if os.environ.get("TOKENGATE_HOME"):
        return False
    try:
        import keyring
        from keyring.backends import chainer, fail

        backend = keyring.get_keyring()
    except Exception:  # noqa: BLE001 - any failure to load a keyring means: use files
        return False
    if isinstance(backend, fail.Keyring) or type(backend).__module__.startswith(
        ("keyring.backends.null", "keyrings.alt")
    ):
        return False
    if isinstance(backend, chainer.ChainerBackend) and not backend.backends:
        return False
    return float(getattr(backend, "priority", 0)) > 0


def choose_store_kind() -> str:
    return "keyring" if keyring_available() else "file"


def open_store(home: Path, kind: str) -> SecretStore:
    if kind == "keyring" and not os.environ.get("TOKENGATE_HOME"):
        return KeyringStore(home)
    return FileStore(home)
