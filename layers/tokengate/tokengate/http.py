"""Outbound HTTP with a wall-clock deadline: the JWKS fetches, the session check and the AWS calls.

``http.client`` speaks the protocol; every socket operation under it is given at most what is left
before the call's deadline: name resolution, connect, the TLS handshake, each send and each
receive (status line, headers and body alike). No operation starts after the deadline, so a
server that trickles its headers one line every 2 s, hangs after connecting or sends an endless
body gives up the call when its deadline passes, not when it stops sending.

https only (plain http only to a loopback host, for local development), redirects never followed
(a 3xx is just a status), a size cap on bodies, idle keep-alive connections reused. Every
transport failure is one :class:`DependencyUnavailableError` carrying the caller's reason.
``http.client`` and ``ssl`` are imported on first use, off the import path of a cold start.
"""

import io
import socket
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlsplit

from .budget import Budget, Deadline
from .errors import ConfigurationError, DependencyUnavailableError
from .net import MAX_TIMEOUT_SECONDS, check_url, is_loopback_host, op_timeout, resolve

if TYPE_CHECKING:
    import http.client
    import ssl

__all__ = ["MAX_TIMEOUT_SECONDS", "HttpAnswer", "HttpClient", "check_url", "is_loopback_host"]

MAX_IDLE_CONNECTIONS = 4


class HttpAnswer(NamedTuple):
    status: int
    body: bytes
    headers: Mapping[str, str] = {}


class _DeadlineSocket:
    """A connected socket (plain or TLS) whose every send and receive gets min(cap, time left)."""

    def __init__(self, sock: socket.socket, connection: "_Connection") -> None:
        self._sock = sock
        self._connection = connection
        # Like socket.socket: http.client closes the connection once a response that ends with
        # the connection is under way; the socket stays open until its reader is closed too.
        self._readers = 0
        self._closing = False

    def _arm(self) -> None:
        self._sock.settimeout(op_timeout(self._connection.deadline, self._connection.op_cap))

    def sendall(self, data: bytes) -> None:
        self._arm()
        self._sock.sendall(data)  # the timeout bounds the whole sendall, not each chunk

    def recv_into(self, buffer: Any) -> int:
        self._arm()
        return self._sock.recv_into(buffer)

    def makefile(self, mode: str = "rb", *args: Any, **kwargs: Any) -> io.BufferedReader:
        self._readers += 1
        return io.BufferedReader(_SocketReader(self))

    def reader_closed(self) -> None:
        self._readers -= 1
        if self._closing and self._readers <= 0:
            self._sock.close()

    def close(self) -> None:
        self._closing = True
        if self._readers <= 0:
            self._sock.close()


class _SocketReader(io.RawIOBase):
    def __init__(self, sock: _DeadlineSocket) -> None:
        self._sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self._sock.recv_into(buffer)

    def close(self) -> None:
        if not self.closed:
            self._sock.reader_closed()
        super().close()


def _connection_class() -> type[Any]:
    """``http.client.HTTPConnection`` whose socket is a :class:`_DeadlineSocket` (made once)."""
    global _CONNECTION
    if _CONNECTION is not None:
        return _CONNECTION
    import http.client

    class Connection(http.client.HTTPConnection):
        def __init__(
            self, host: str, port: int, tls: "ssl.SSLContext | None", op_cap: float
        ) -> None:
            super().__init__(host, port)
            self.tls = tls
            self.op_cap = op_cap
            self.deadline = Deadline(float("-inf"))

        def connect(self) -> None:
            error: OSError = OSError("no address")
            for family, kind, proto, _, address in resolve(
                self.host, self.port, self.deadline, self.op_cap
            ):
                sock = socket.socket(family, kind, proto)
                try:
                    sock.settimeout(op_timeout(self.deadline, self.op_cap))
                    sock.connect(address)
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    if self.tls is not None:
                        sock = self.tls.wrap_socket(
                            sock, server_hostname=self.host, do_handshake_on_connect=False
                        )
                        # CPython bounds the whole handshake by one timeout, not each record.
                        sock.settimeout(op_timeout(self.deadline, self.op_cap))
                        sock.do_handshake()
                except OSError as exc:
                    sock.close()
                    error = exc
                    continue
                self.sock = _DeadlineSocket(sock, self)
                return
            raise error

    _CONNECTION = Connection
    return Connection


_CONNECTION: type[Any] | None = None
_Connection = Any  # an instance of _connection_class()


class HttpClient:
    """Requests bounded by the current budget and by ``timeout`` per call, whichever ends first."""

    def __init__(
        self,
        budget: Budget | None = None,
        timeout: float = MAX_TIMEOUT_SECONDS,
        max_bytes: int = 64 * 1024,
    ) -> None:
        if not 0 < timeout <= MAX_TIMEOUT_SECONDS:
            raise ConfigurationError("outbound timeouts must be within (0, 3] seconds")
        self.budget = budget or Budget()
        self.timeout = timeout
        self.max_bytes = max_bytes
        self._tls: ssl.SSLContext | None = None
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._lock = threading.Lock()

    def get(self, url: str, headers: Mapping[str, str], reason: str) -> HttpAnswer:
        return self.request("GET", url, headers, None, reason)

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        reason: str,
        deadline: Deadline | None = None,
    ) -> HttpAnswer:
        """The status, headers and body (any status; 3xx never followed);
        DependencyUnavailableError(reason) when the transport fails, the deadline passes or the
        body is too large."""
        import http.client

        deadline = (deadline or self.budget.deadline()).earlier(self.timeout)
        parts = urlsplit(url)
        scheme, host = parts.scheme, parts.hostname or ""
        key = (scheme, host, parts.port or (443 if scheme == "https" else 80))
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection = self._take(key)
        if connection is not None:
            try:
                return self._send(key, connection, method, target, headers, body, deadline)
            except (http.client.RemoteDisconnected, ConnectionError):
                pass  # the server closed an idle connection: one fresh attempt
            except DependencyUnavailableError as exc:
                raise DependencyUnavailableError(reason, exc.detail) from exc
            except (OSError, http.client.HTTPException) as exc:
                raise DependencyUnavailableError(reason, type(exc).__name__) from exc
        try:
            connection = self._connect(key)
            return self._send(key, connection, method, target, headers, body, deadline)
        except DependencyUnavailableError as exc:
            raise DependencyUnavailableError(reason, exc.detail) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise DependencyUnavailableError(reason, type(exc).__name__) from exc

    def _connect(self, key: tuple[str, str, int]) -> _Connection:
        scheme, host, port = key
        tls = None
        if scheme == "https":
            if self._tls is None:
                import ssl

                self._tls = ssl.create_default_context()
            tls = self._tls
        return _connection_class()(host, port, tls, self.timeout)

    def _send(
        self,
        key: tuple[str, str, int],
        connection: _Connection,
        method: str,
        target: str,
        headers: Mapping[str, str],
        body: bytes | None,
        deadline: Deadline,
    ) -> HttpAnswer:
        connection.deadline = deadline
        response: http.client.HTTPResponse | None = None
        try:
            connection.request(method, target, body=body, headers=dict(headers))
            response = connection.getresponse()
            data = response.read(self.max_bytes + 1)
            if len(data) > self.max_bytes:
                raise DependencyUnavailableError("http", "response too large")
            answer = HttpAnswer(
                response.status, data, {k.lower(): v for k, v in response.getheaders()}
            )
        except BaseException:
            if response is not None:
                response.close()
            connection.close()
            raise
        if response.isclosed() and not response.will_close:
            self._keep(key, connection)
        else:
            response.close()
            connection.close()
        return answer

    def close(self) -> None:
        """Close the idle connections (a process ends them anyway; tests and scripts tidy up)."""
        with self._lock:
            idle = [c for connections in self._idle.values() for c in connections]
            self._idle.clear()
        for connection in idle:
            connection.close()

    def __del__(self) -> None:
        for connections in getattr(self, "_idle", {}).values():
            for connection in connections:
                connection.close()

    def _take(self, key: tuple[str, str, int]) -> _Connection | None:
        with self._lock:
            idle = self._idle.get(key)
            return idle.pop() if idle else None

    def _keep(self, key: tuple[str, str, int], connection: _Connection) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < MAX_IDLE_CONNECTIONS:
                idle.append(connection)
                return
        connection.close()
