"""The loopback redirect of a browser sign-in (RFC 8252 §7.3): a one-shot HTTP listener on
127.0.0.1 with a random port, which receives ``?code=`` (or ``?error_description=``)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .errors import NotSignedIn

PAGE = (
    b"<!doctype html><meta charset=utf-8><title>tokengate</title>"
    b"<p>%s You can close this tab and return to the terminal.</p>"
)


class LoopbackRedirect:
    def __init__(self) -> None:
        self._result: dict[str, str] = {}
        self._done = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if parts.path != "/callback":
                    self.send_error(404)
                    return
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                ok = "code" in query
                message = b"Signed in." if ok else b"Sign-in failed."
                self.send_response(200 if ok else 400)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.end_headers()
                self.wfile.write(PAGE % message)
                if not outer._done.is_set():
                    outer._result = query
                    outer._done.set()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the query carries the authorization code

        self._server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/callback"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> LoopbackRedirect:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def wait(self, timeout: float) -> str:
        if not self._done.wait(timeout):
            raise NotSignedIn(f"no sign-in came back within {timeout:.0f} s")
        if "code" not in self._result:
            reason = self._result.get("error_description") or self._result.get("error") or "?"
            raise NotSignedIn(f"the provider refused the sign-in: {reason}")
        return self._result["code"]
