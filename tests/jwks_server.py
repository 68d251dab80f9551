"""A Supabase stand-in on loopback that serves a JWKS, and misbehaves on request."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from devstack import STOP_POLL_SECONDS


class JwksServer:
    """``mode``: ok, error, redirect, hang, huge, invalid, trickle."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.raw: dict[str, bytes] = {}  # other documents, served as they are at their path
        self.mode = "ok"
        self.user_status = 200  # what GET /auth/v1/user answers (the session check)
        self.user_requests: list[dict[str, str]] = []
        self.requests = 0
        self.paths: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/auth/v1/user":
                    outer.user_requests.append({k.lower(): v for k, v in self.headers.items()})
                    if outer.mode == "hang":
                        time.sleep(6)
                    body = b'{"id":"user"}' if outer.user_status == 200 else b'{"msg":"no"}'
                    self.send_response(outer.user_status)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                if self.path in outer.raw:
                    raw = outer.raw[self.path]
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(raw)))
                    self.end_headers()
                    self.wfile.write(raw)
                    return
                outer.requests += 1
                outer.paths.append(self.path)
                mode = outer.mode
                if mode == "hang":
                    time.sleep(6)
                if mode == "error":
                    self.send_response(500)
                    self.end_headers()
                    return
                if mode == "redirect":
                    self.send_response(302)
                    self.send_header("Location", "http://127.0.0.1:1/elsewhere")
                    self.end_headers()
                    return
                bodies: dict[str, Callable[[], bytes]] = {
                    "huge": lambda: b" " * (1024 * 1024) + json.dumps(outer.document).encode(),
                    "invalid": lambda: b"{not json",
                }
                body = bodies.get(mode, lambda: json.dumps(outer.document).encode())()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if mode == "trickle":
                    for byte in body:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(0.05)
                    return
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.jwks_url = f"{self.base_url}/auth/v1/.well-known/jwks.json"

    def __enter__(self) -> JwksServer:
        threading.Thread(
            target=self._server.serve_forever, args=(STOP_POLL_SECONDS,), daemon=True
        ).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
