"""A loopback server answering fixed JSON documents by path (404 otherwise)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from devstack import STOP_POLL_SECONDS


class JsonServer:
    """Serves ``documents`` (path -> JSON document) on 127.0.0.1 from construction until
    ``close`` (or the end of its ``with`` block); a path with no document answers 404."""

    def __init__(self) -> None:
        self.documents: dict[str, Any] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                document = outer.documents.get(self.path)
                body = json.dumps(document if document is not None else {"error": "x"}).encode()
                self.send_response(200 if document is not None else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(
            target=self.server.serve_forever, args=(STOP_POLL_SECONDS,), daemon=True
        ).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> JsonServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
