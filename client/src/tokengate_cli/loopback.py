"""Where a browser sign-in comes back: the loopback redirect (RFC 8252 §7.3), a one-shot HTTP
listener on 127.0.0.1 with a random port, which receives ``?code=`` (or ``?error=``); or, when
the browser ran on another machine (over SSH, say), the same URL pasted back by the user.

The redirect URL carries a random ``state`` of this sign-in; an answer without it (a stray
request, a URL from another sign-in) is refused. The code is worth nothing without the PKCE
verifier this process holds.
"""

from __future__ import annotations

import re
import secrets
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import IO, Any
from urllib.parse import parse_qs, urlsplit

from .errors import NotSignedIn, UsageError

PAGE = (
    b"<!doctype html><meta charset=utf-8><title>tokengate</title>"
    b"<p>%s You can close this tab and return to the terminal.</p>"
)
CALLBACK_PATH = "/callback"
BARE_CODE = re.compile(r"[A-Za-z0-9._~-]{8,512}")


class LoopbackRedirect:
    def __init__(self) -> None:
        self.state = secrets.token_urlsafe(18)
        self._result: dict[str, str] = {}
        self._failure: Exception | None = None
        self._done = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                if parts.path != CALLBACK_PATH:
                    self.send_error(404)
                    return
                if not secrets.compare_digest(query.get("state", ""), outer.state):
                    self.send_error(400, "not the sign-in this listener waits for")
                    return
                ok = "code" in query
                message = b"Signed in." if ok else b"Sign-in failed."
                self.send_response(200 if ok else 400)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.end_headers()
                self.wfile.write(PAGE % message)
                outer._finish(query)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the query carries the authorization code

        self._server = HTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self._server.server_address[1])
        self.base_url = f"http://127.0.0.1:{self.port}{CALLBACK_PATH}"
        self.url = f"{self.base_url}?state={self.state}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> LoopbackRedirect:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _finish(self, query: dict[str, str] | None, failure: Exception | None = None) -> None:
        if not self._done.is_set():
            self._result = query or {}
            self._failure = failure
            self._done.set()

    def pasted(self, text: str) -> dict[str, str]:
        """What the user pasted: the URL the browser was sent to (checked: this listener's
        address and path, this sign-in's state), or the bare code."""
        text = text.strip()
        if "://" not in text and BARE_CODE.fullmatch(text):
            return {"code": text}
        try:
            parts = urlsplit(text)
            where = (parts.scheme, parts.hostname, parts.port, parts.path)
        except ValueError:
            where = None
        if where != ("http", "127.0.0.1", self.port, CALLBACK_PATH):
            raise UsageError(
                f"paste the whole address the browser was sent to ({self.base_url}?…), "
                "or only its code"
            )
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if not secrets.compare_digest(query.get("state", ""), self.state):
            raise UsageError(
                "the pasted address is from another sign-in (its state is not this one's)"
            )
        if "code" in query and not BARE_CODE.fullmatch(query["code"]):
            raise UsageError("the pasted address carries a malformed code")
        return query

    def wait(self, timeout: float, paste: PastedAnswer | None = None) -> str:
        if paste is not None:
            paste.start(self)
        if not self._done.wait(timeout):
            raise NotSignedIn(f"no sign-in came back within {timeout:.0f} s")
        if self._failure is not None:
            raise self._failure
        if "code" not in self._result:
            reason = self._result.get("error_description") or self._result.get("error") or "?"
            raise NotSignedIn(f"the provider refused the sign-in: {reason}")
        return self._result["code"]


class PastedAnswer:
    """One line from standard input, read on a thread so that the loopback listener can still
    answer first (the browser ran on this machine after all). End of input is no answer."""

    def __init__(self, stream: IO[str], limit: int) -> None:
        self._stream = stream
        self._limit = limit

    def start(self, redirect: LoopbackRedirect) -> None:
        def read() -> None:
            try:
                line = self._stream.readline(self._limit + 1)
                if not line.strip():
                    return  # closed: wait for the listener
                if len(line) > self._limit:
                    raise UsageError(f"an answer longer than {self._limit} characters")
                redirect._finish(redirect.pasted(line))
            except UsageError as exc:
                redirect._finish(None, exc)
            except (OSError, ValueError):  # standard input unreadable, or not UTF-8
                redirect._finish(None, UsageError("the pasted answer is not readable text"))

        threading.Thread(target=read, daemon=True).start()
