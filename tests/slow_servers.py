"""Hostile HTTP upstreams on loopback, for the deadline tests, and a Lambda-like context.

:class:`SlowServer` accepts connections and misbehaves at the socket level: it trickles the status
line, the headers or the body, hangs after connecting, sends an endless body or redirects. Each
connection is served by a thread that stops when the server stops (every wait is bounded).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

MODES = ("trickle-status", "trickle-headers", "trickle-body", "hang", "endless", "redirect")


class ShortLivedContext:
    """The part of the Lambda context the handlers read: time left before the function's timeout,
    counting down from ``millis`` on the monotonic clock."""

    def __init__(self, millis: int) -> None:
        self.deadline = time.monotonic() + millis / 1000.0
        self.function_name = "test"
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = 1024
        self.invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:test"
        self.aws_request_id = "00000000-0000-0000-0000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))

    def answered_in_time(self) -> bool:
        return time.monotonic() < self.deadline


class SlowServer:
    """``mode`` picks the misbehaviour; ``interval`` is the pause between trickled pieces (the
    server would keep trickling for ``lifetime`` seconds, as long as a caller waits)."""

    def __init__(self, mode: str, interval: float = 0.2, lifetime: float = 60.0) -> None:
        assert mode in MODES, mode
        self.mode = mode
        self.interval = interval
        self.lifetime = lifetime
        self.connections = 0
        self._stop = threading.Event()
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._listener.settimeout(0.1)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/jwks.json"
        self._threads: list[threading.Thread] = []

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                continue
            self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _pieces(self) -> Iterator[bytes]:
        if self.mode == "trickle-status":
            yield from (bytes([b]) for b in b"HTTP/1.1 200 OK\r\n")
            yield from (b"X-Filler: x\r\n" for _ in range(100_000))
        elif self.mode == "trickle-headers":
            yield b"HTTP/1.1 200 OK\r\n"
            yield from (b"X-Filler: %d\r\n" % i for i in range(100_000))
        elif self.mode == "trickle-body":
            yield b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n\r\n"
            yield from (b" " for _ in range(60_000))
        elif self.mode == "redirect":
            yield b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/x\r\nContent-Length: 0\r\n\r\n"

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(0.1)
            with contextlib.suppress(OSError):
                conn.recv(65536)  # the request
            ends = time.monotonic() + self.lifetime
            if self.mode == "hang":
                self._stop.wait(self.lifetime)
                return
            if self.mode == "endless":
                try:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n")
                    while not self._stop.is_set() and time.monotonic() < ends:
                        conn.sendall(b" " * 65536)
                except OSError:
                    pass
                return
            for piece in self._pieces():
                if self._stop.is_set() or time.monotonic() > ends:
                    return
                try:
                    conn.sendall(piece)
                except OSError:
                    return
                if self.mode != "redirect":
                    self._stop.wait(self.interval)

    @contextmanager
    def running(self) -> Iterator[SlowServer]:
        acceptor = threading.Thread(target=self._accept, daemon=True)
        acceptor.start()
        try:
            yield self
        finally:
            self._stop.set()
            acceptor.join(5)
            for thread in self._threads:
                thread.join(5)
            self._listener.close()


def refused_url() -> str:
    """A loopback URL nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/jwks.json"
