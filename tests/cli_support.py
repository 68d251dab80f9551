"""Running the ``tokengate`` command line against the local stack and the Supabase stand-in.

The CLI runs as real subprocesses (as a user runs it), with a clean environment: its own
``TOKENGATE_HOME``, the API and Supabase URLs, nothing inherited from the stack's in-process
environment. Every wait is bounded.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.moto_aws import free_port
from devstack.stack import LocalStack
from devstack.supabase_auth import SupabaseAuthStandIn
from devstack.supabase_dev import LOCAL_JWT_SECRET

TIMEOUT = 60
KEPT_VARIABLES = ("PATH", "LANG", "LC_ALL", "SYSTEMROOT", "TMPDIR")


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


class Cli:
    def __init__(self, home: Path, stack: LocalStack, stand_in: SupabaseAuthStandIn) -> None:
        self.home = home
        self.env = {k: os.environ[k] for k in KEPT_VARIABLES if k in os.environ}
        self.env.update(
            HOME=str(home.parent),
            TOKENGATE_HOME=str(home),
            TOKENGATE_API_URL=stack.base_url,
            SUPABASE_URL=stand_in.url,
            SUPABASE_ANON_KEY=stand_in.anon_key,
            PYTHONDONTWRITEBYTECODE="1",
        )

    @property
    def state(self) -> Path:
        """The default profile's directory, where its config, session and tokens live."""
        return self.home / "profiles" / "default"

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "tokengate_cli", *args]

    def run(self, *args: str, input: str | None = None, **env: str) -> Result:
        done = subprocess.run(
            self.command(*args),
            input=input,
            capture_output=True,
            text=True,
            env=self.env | env,
            timeout=TIMEOUT,
            check=False,
        )
        return Result(done.returncode, done.stdout, done.stderr)

    def popen(self, *args: str, **env: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.command(*args),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env | env,
        )


def one_line_error(result: Result) -> str:
    """The error a failed command printed: exactly one line, no traceback."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


class ExchangeCounter:
    """Counts the token exchanges the stack's exchange function handles (stack side)."""

    def __init__(self, stack: LocalStack, function: str = "TokenExchangeFunction") -> None:
        assert stack.gateway is not None
        self.count = 0
        self._lock = threading.Lock()
        handlers = stack.gateway.handlers
        inner: Callable[..., Any] = handlers[function]

        def counting(event: dict[str, Any], context: Any) -> Any:
            with self._lock:
                self.count += 1
            return inner(event, context)

        handlers[function] = counting


@contextmanager
def token_lifetime(stand_in: SupabaseAuthStandIn, seconds: int) -> Iterator[None]:
    saved = stand_in.access_token_lifetime
    stand_in.access_token_lifetime = seconds
    try:
        yield
    finally:
        stand_in.access_token_lifetime = saved


def serve_stand_in() -> Iterator[SupabaseAuthStandIn]:
    """The development Supabase Auth stand-in, for a module's fixture."""
    with SupabaseAuthStandIn(LOCAL_JWT_SECRET) as running:
        yield running


def serve_stack(stand_in: SupabaseAuthStandIn) -> Iterator[LocalStack]:
    """A local stack trusting the stand-in (audiences api and other), for a module's fixture;
    the environment the stack writes is restored after it."""
    saved = dict(os.environ)
    running = LocalStack(
        free_port(), stand_in.url, LOCAL_JWT_SECRET, parameters={"Audiences": "api,other"}
    ).start()
    yield running
    running.stop()
    os.environ.clear()
    os.environ.update(saved)
