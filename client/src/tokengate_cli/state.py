"""The one reader of the client's state files, and the rules its writers keep.

Reading: a state file that is missing, a directory or anything but a regular file, another
user's, too large, truncated, not UTF-8, not JSON or not a JSON object counts as *absent* (the
command then says "sign in" or starts afresh; the next write replaces the file). A secret file
that others may read (say a ``session.json`` the user widened to 0644) is tightened back to 0600,
and the command says so on standard error.

Writing: every directory the client creates is 0700 and every file 0600, whatever the umask
(modes are set explicitly after creation, not left to ``umask``).

This module is on the path of ``tokengate token`` with a cached token: standard library only.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import sys

TYPE_CHECKING = False  # not typing's: this path never imports typing
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

MAX_STATE_BYTES = 1024 * 1024
PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700
DEFAULT_PROFILE = "default"
MAX_PROFILE_NAME = 64
PROFILE_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def valid_profile_name(name: str) -> bool:
    """A profile is a directory: letters, digits, ``_ . -``, not starting with a dot."""
    return (
        0 < len(name) <= MAX_PROFILE_NAME
        and not name.startswith(".")
        and set(name) <= PROFILE_CHARACTERS
    )


def warn(message: str) -> None:
    sys.stderr.write(f"tokengate: warning: {message}\n")


def read_state(path: str | os.PathLike[str], *, secret: bool = False) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None for anything absent or damaged (see the module).
    ``secret``: tighten a file that others may read to 0600, saying so."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except (OSError, ValueError):  # missing, unreadable, a NUL in the name
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_STATE_BYTES:
            return None
        if hasattr(os, "geteuid") and info.st_uid != os.geteuid():
            return None  # not the user's own: never trusted, replaced by the next write
        if secret and info.st_mode & 0o077 and hasattr(os, "fchmod"):
            os.fchmod(fd, PRIVATE_FILE)
            warn(
                f"{os.fspath(path)} was readable by others (mode {stat.S_IMODE(info.st_mode):04o});"
                " it is 0600 again. If someone else may have read it, run: tokengate logout"
            )
        chunks = []
        size = 0
        while size <= MAX_STATE_BYTES:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError:
        return None
    finally:
        os.close(fd)
    try:
        value = json.loads(b"".join(chunks).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def make_private_dirs(path: Path, top: Path | None = None) -> Path:
    """Create ``path`` and any missing parents as 0700 (whatever the umask); tighten ``path``,
    and its parents up to ``top``, when they exist wider. Other parents that already exist are
    left as they are (``~/.config`` is not the client's)."""
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it first
            os.mkdir(directory, PRIVATE_DIR)
        os.chmod(directory, PRIVATE_DIR)  # mkdir's mode is masked by the umask, chmod's is not
    current = path
    while hasattr(os, "geteuid"):
        if current.stat().st_mode & 0o077:
            current.chmod(PRIVATE_DIR)
        if top is None or current == top or current.parent == current:
            break
        current = current.parent
    return path
