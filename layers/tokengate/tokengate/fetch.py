"""Public documents by GET: the key sets (JWKS) the authorizers verify with, and any other public
document they read the same way, one fetch path for all.

A minimal HTTP/1.1 client over ``socket`` and ``ssl``, rather than ``http.client``, for the
authorizers' cold start: ``http.client`` imports the ``email`` package to parse headers, about as
much work again as importing ``ssl`` itself, on the path of the first decision of a function in
front of every API call (docs/performance.md). What it does is narrow, so it is short:

* https only, with the default certificate checks (plain http only to a loopback host, for local
  development); a redirect is a status like any other, never followed;
* a later https connection to the same host resumes the TLS session of the last one (a session
  ticket, checked by OpenSSL; a server that does not take it gets a full handshake);
* the answer is framed by ``Content-Length``, ``Transfer-Encoding: chunked`` or the end of the
  connection, and anything else (both headers, another transfer coding, a content coding, a bad
  length) is refused;
* a connection is kept for the next document from the same origin for up to ``IDLE_SECONDS``
  (HTTP/1.1 persistence): a start reads its documents back to back (the API's key set and its
  status list share a host), so the second one costs no new connection and handshake. Only an
  answer framed by its length or chunks, with nothing after it and no ``Connection: close``,
  leaves its connection reusable; a kept connection that fails before the first byte of its
  answer (the server closed it while idle) is replaced by a new one, once. Refreshes, minutes
  apart, find nothing kept and connect afresh;
* every socket operation (name resolution, connect, the TLS handshake, the send, each receive)
  gets at most what is left before the call's deadline, so a server that trickles gives up the
  call when the deadline passes; the status line and headers are capped at 16 KiB and 100 lines,
  the body at the fetcher's ``max_bytes``;
* several documents can be fetched at once (:meth:`DocumentFetcher.fetch_all`), each on its own
  connection, within the same deadline.

Every failure is one :class:`DependencyUnavailableError` carrying the caller's reason.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .budget import Budget, Deadline
from .errors import ConfigurationError, DependencyUnavailableError
from .net import MAX_TIMEOUT_SECONDS, Url, checked_url, op_timeout, resolve

if TYPE_CHECKING:
    import ssl

MAX_HEAD_BYTES = 16 * 1024
MAX_HEADER_LINES = 100
DEFAULT_MAX_BYTES = 64 * 1024
_RECV_BYTES = 16 * 1024
# The trust store's context, made by the first https fetch of the process and shared by every
# fetcher that is not given its own (creating one reads the CA bundle: ~1.5 ms here, more with a
# full system bundle), with the TLS sessions to resume, which belong to that context.
_shared_tls: ssl.SSLContext | None = None
_SHARED_TLS_LOCK = threading.Lock()
_SHARED_SESSIONS: dict[tuple[str, int], ssl.SSLSession] = {}

# How long a connection is kept for the next document from the same origin: long enough for the
# documents of one start, read back to back; far shorter than servers' idle timeouts.
IDLE_SECONDS = 1.0
_HEX = frozenset(b"0123456789abcdefABCDEF")
_FRAMING = ("content-length", "transfer-encoding", "content-encoding")


class FetchError(Exception):
    """A transport or framing failure (its text says which; never the body)."""


class _Stale(Exception):
    """A kept connection failed before its answer began: the server closed it while idle."""


class Answer:
    """A parsed answer: the status, the lowercased headers that matter here, the body, and
    whether its connection may carry another request (see :func:`read_answer`)."""

    __slots__ = ("body", "headers", "reusable", "status")

    def __init__(
        self, status: int, headers: dict[str, str], body: bytes, reusable: bool = False
    ) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.reusable = reusable


class _Reader:
    """Bytes from ``recv`` with a look-ahead buffer; every read bounded by the caller's cap."""

    __slots__ = ("_buffer", "_eof", "_recv")

    def __init__(self, recv: Callable[[], bytes]) -> None:
        self._recv = recv
        self._buffer = bytearray()
        self._eof = False

    def _fill(self) -> bool:
        if self._eof:
            return False
        data = self._recv()
        if not data:
            self._eof = True
            return False
        self._buffer += data
        return True

    def line(self, cap: int) -> bytes:
        """One CRLF-terminated line without its CRLF (a bare LF is accepted, as RFC 9112 allows)."""
        start = 0
        while True:
            end = self._buffer.find(b"\n", start)
            if end >= 0:
                if end > cap:
                    raise FetchError("line too long")
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 1]
                return line[:-1] if line.endswith(b"\r") else line
            if len(self._buffer) > cap:
                raise FetchError("line too long")
            start = len(self._buffer)
            if not self._fill():
                raise FetchError("connection closed mid-answer")

    def exactly(self, count: int) -> bytes:
        while len(self._buffer) < count:
            if not self._fill():
                raise FetchError("connection closed mid-body")
        data = bytes(self._buffer[:count])
        del self._buffer[:count]
        return data

    def drained(self) -> bool:
        """Nothing received beyond what was read (so the next answer starts on a clean line)."""
        return not self._buffer

    def rest(self, cap: int) -> bytes:
        """Everything until the peer closes, refused past ``cap`` bytes."""
        while len(self._buffer) <= cap and self._fill():
            pass
        if len(self._buffer) > cap:
            raise FetchError("response too large")
        data = bytes(self._buffer)
        self._buffer.clear()
        return data


def _length(value: bytes, cap: int, what: str) -> int:
    if not value or len(value) > 16 or not value.isdigit():
        raise FetchError(f"bad {what}")
    length = int(value)
    if length > cap:
        raise FetchError("response too large")
    return length


def read_answer(recv: Callable[[], bytes], max_bytes: int) -> Answer:
    """Parse one HTTP/1.x answer from ``recv`` (which returns b"" at the end of the connection).

    ``reusable``: an HTTP/1.1 answer framed by its length or its chunks, with no ``Connection:
    close`` and no byte after its end (RFC 9112 §9.3); 1xx, 204 and 304 answers have no body
    (RFC 9112 §6.3) and leave the connection closed."""
    reader = _Reader(recv)
    head_left = MAX_HEAD_BYTES
    status_line = reader.line(head_left)
    head_left -= len(status_line) + 2
    parts = status_line.split(b" ", 2)
    if (
        len(parts) < 2
        or parts[0] not in (b"HTTP/1.1", b"HTTP/1.0")
        or len(parts[1]) != 3
        or not parts[1].isdigit()
    ):
        raise FetchError("not an HTTP/1.x status line")
    status = int(parts[1])
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADER_LINES + 1):
        line = reader.line(max(head_left, 0))
        head_left -= len(line) + 2
        if head_left < 0:
            raise FetchError("headers too large")
        if not line:
            break
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip() or b" " in name:
            raise FetchError("bad header line")
        key = name.decode("latin-1").lower()
        text = value.strip().decode("latin-1")
        if key in _FRAMING and key in headers and headers[key] != text:
            raise FetchError(f"conflicting {key}")
        if key == "connection" and key in headers:
            text = f"{headers[key]}, {text}"  # one list, as RFC 9110 §5.3 combines them
        headers[key] = text
    else:
        raise FetchError("too many header lines")
    if status < 200 or status in (204, 304):
        return Answer(status, headers, b"")
    persistent = parts[0] == b"HTTP/1.1" and "close" not in {
        token.strip() for token in headers.get("connection", "").lower().split(",")
    }
    coding = headers.get("content-encoding", "identity").lower()
    if coding != "identity":
        raise FetchError("content coding not asked for")
    transfer = headers.get("transfer-encoding")
    if transfer is not None:
        if "content-length" in headers:
            raise FetchError("both Content-Length and Transfer-Encoding")
        if transfer.lower() != "chunked":
            raise FetchError("transfer coding not supported")
        body = _chunked(reader, max_bytes)
        return Answer(status, headers, body, persistent and reader.drained())
    if "content-length" in headers:
        length = _length(headers["content-length"].encode(), max_bytes, "Content-Length")
        body = reader.exactly(length)
        return Answer(status, headers, body, persistent and reader.drained())
    return Answer(status, headers, reader.rest(max_bytes))


def _chunked(reader: _Reader, max_bytes: int) -> bytes:
    body = bytearray()
    while True:
        size_line = reader.line(64).split(b";", 1)[0].strip()
        if not size_line or len(size_line) > 8 or not _HEX.issuperset(size_line):
            raise FetchError("bad chunk size")
        size = int(size_line, 16)
        if len(body) + size > max_bytes:
            raise FetchError("response too large")
        if size == 0:
            break
        body += reader.exactly(size)
        if reader.line(2):
            raise FetchError("bad chunk end")
    for _ in range(MAX_HEADER_LINES + 1):  # trailers: read and dropped
        if not reader.line(MAX_HEAD_BYTES):
            return bytes(body)
    raise FetchError("too many trailer lines")


class DocumentFetcher:
    """GETs bounded by the current budget and by ``timeout`` per call, whichever ends first."""

    def __init__(
        self,
        budget: Budget | None = None,
        timeout: float = MAX_TIMEOUT_SECONDS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        user_agent: str = "tokengate",
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """``tls``: the context to verify servers with (by default, the system's trust store
        with hostname checks, made on the process's first https fetch and shared)."""
        if not 0 < timeout <= MAX_TIMEOUT_SECONDS:
            raise ConfigurationError("outbound timeouts must be within (0, 3] seconds")
        self.budget = budget or Budget()
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.user_agent = user_agent
        self._tls = tls
        # (host, port) -> the TLS session of the last https fetch there: the next connection
        # resumes it (TLS 1.3 session tickets) instead of a full handshake, whose certificate
        # signature and chain check a cold start pays once per host, not once per document.
        # With the shared context, shared: another fetcher's connection to the host resumes it.
        self._sessions: dict[tuple[str, int], ssl.SSLSession] = (
            _SHARED_SESSIONS if tls is None else {}
        )
        # The connection the last answer left reusable: ((tls, host, port), socket, kept at).
        self._idle: tuple[tuple[bool, str, int], socket.socket, float] | None = None
        self._idle_lock = threading.Lock()

    def fetch(self, url: str, reason: str, accept: str = "application/json") -> bytes:
        """The body of a 200 answer; DependencyUnavailableError(reason) for any other status, a
        transport or framing failure, a body over ``max_bytes`` or a passed deadline."""
        return self._fetch(url, reason, accept, self.budget.deadline())

    def fetch_all(
        self, requests: Sequence[tuple[str, str]], accept: str = "application/json"
    ) -> list[bytes | DependencyUnavailableError]:
        """Several ``(url, reason)`` fetches at once, each on its own connection and all within
        the current deadline: the first in the calling thread, the others each in a thread. The
        answers (a body, or the error that fetch would have raised) in the order asked."""
        deadline = self.budget.deadline()
        results: list[bytes | DependencyUnavailableError] = [
            DependencyUnavailableError(reason, "not fetched") for _, reason in requests
        ]

        def one(index: int) -> None:
            url, reason = requests[index]
            try:
                results[index] = self._fetch(url, reason, accept, deadline)
            except DependencyUnavailableError as exc:
                results[index] = exc

        threads = [
            threading.Thread(target=one, args=(index,), daemon=True)
            for index in range(1, len(requests))
        ]
        for thread in threads:
            thread.start()
        if requests:
            one(0)
        for thread in threads:  # each operation is bounded by the deadline: so is the join
            thread.join(max(deadline.earlier(self.timeout).remaining(), 0.0) + 0.05)
        return results

    def _fetch(self, url: str, reason: str, accept: str, deadline: Deadline) -> bytes:
        parts = checked_url(url, "a document URL")
        deadline = deadline.earlier(self.timeout)
        try:
            answer = self._get(parts, accept, deadline)
        except (OSError, FetchError, ValueError) as exc:
            raise DependencyUnavailableError(reason, _detail(exc)) from exc
        if answer.status != 200:
            raise DependencyUnavailableError(reason, f"status {answer.status}")
        return answer.body

    def _context(self) -> ssl.SSLContext:
        global _shared_tls
        if self._tls is not None:
            return self._tls
        with _SHARED_TLS_LOCK:
            if _shared_tls is None:
                import ssl

                _shared_tls = ssl.create_default_context()
            return _shared_tls

    def _get(self, parts: Url, accept: str, deadline: Deadline) -> Answer:
        # The URL's grammar (tokengate.net) admits no CR, LF, NUL or space in the target or the
        # authority: neither can end the request line or the Host header early.
        host = parts.host
        tls = parts.scheme == "https"
        port = parts.port or (443 if tls else 80)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        authority = parts.authority
        request = (
            f"GET {target} HTTP/1.1\r\nHost: {authority}\r\nAccept: {accept}\r\n"
            f"Accept-Encoding: identity\r\nUser-Agent: {self.user_agent}\r\n\r\n"
        ).encode("ascii")
        origin = (tls, host, port)
        kept = self._take_idle(origin)
        if kept is not None:
            try:
                return self._exchange(kept, origin, request, deadline, kept=True)
            except _Stale:
                pass  # closed by the server while idle: a new connection, once
        sock = self._connect(host, port, tls, deadline)
        return self._exchange(sock, origin, request, deadline, kept=False)

    def _exchange(
        self,
        sock: socket.socket,
        origin: tuple[bool, str, int],
        request: bytes,
        deadline: Deadline,
        kept: bool,
    ) -> Answer:
        """One request and its answer on ``sock``, which is then kept (a reusable answer) or
        closed. On a kept connection, a failure before the answer's first byte is
        :class:`_Stale` (past the deadline, the new connection fails at once, as it should)."""
        received = 0

        def recv() -> bytes:
            nonlocal received
            sock.settimeout(op_timeout(deadline, self.timeout))
            data = sock.recv(_RECV_BYTES)
            received += len(data)
            return data

        answer: Answer | None = None
        try:
            sock.settimeout(op_timeout(deadline, self.timeout))
            sock.sendall(request)
            answer = read_answer(recv, self.max_bytes)
            tls, host, port = origin
            if tls:  # read before the socket is kept: another thread may take it then
                session = sock.session  # type: ignore[attr-defined]  # an ssl.SSLSocket here
                if session is not None and session.has_ticket:
                    self._sessions[host, port] = session
        except (OSError, FetchError) as exc:
            if kept and received == 0:
                raise _Stale from exc
            raise
        finally:
            if answer is not None and answer.reusable:
                self._keep(origin, sock)
            else:
                sock.close()
        return answer

    def close(self) -> None:
        """Close the kept connection, if any (the next fetch connects afresh)."""
        with self._idle_lock:
            idle, self._idle = self._idle, None
        if idle is not None:
            idle[1].close()

    def __del__(self) -> None:
        idle = getattr(self, "_idle", None)
        if idle is not None:
            idle[1].close()

    def _take_idle(self, origin: tuple[bool, str, int]) -> socket.socket | None:
        with self._idle_lock:
            idle, self._idle = self._idle, None
        if idle is None:
            return None
        sock = idle[1]
        if idle[0] == origin and time.monotonic() - idle[2] < IDLE_SECONDS and _quiet(sock):
            return sock
        sock.close()
        return None

    def _keep(self, origin: tuple[bool, str, int], sock: socket.socket) -> None:
        with self._idle_lock:
            replaced, self._idle = self._idle, (origin, sock, time.monotonic())
        if replaced is not None:
            replaced[1].close()

    def _connect(self, host: str, port: int, tls: bool, deadline: Deadline) -> socket.socket:
        error: OSError = OSError("no address")
        for family, kind, proto, _, address in resolve(host, port, deadline, self.timeout):
            sock = socket.socket(family, kind, proto)
            try:
                sock.settimeout(op_timeout(deadline, self.timeout))
                sock.connect(address)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if tls:
                    sock = self._context().wrap_socket(
                        sock,
                        # An ASCII name as bytes is used as given: as a str, ssl would encode it
                        # with the "idna" codec, whose import (with stringprep) a cold start
                        # pays for nothing. split_url has already lowercased it.
                        server_hostname=host.encode("ascii") if host.isascii() else host,
                        do_handshake_on_connect=False,
                        session=self._sessions.get((host, port)),
                    )
                    sock.settimeout(op_timeout(deadline, self.timeout))
                    sock.do_handshake()
            except OSError as exc:
                sock.close()
                error = exc
                continue
            return sock
        raise error


def _quiet(sock: socket.socket) -> bool:
    """Nothing arrived on an idle connection: no byte (a late or unasked-for answer, which must
    never be read as the next document's) and no end (closed by the server)."""
    if getattr(sock, "pending", lambda: 0)():  # TLS: a record already decrypted
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


def _detail(exc: BaseException) -> str:
    if isinstance(exc, FetchError):
        return str(exc)
    return type(exc).__name__
