"""The public-document fetcher: its HTTP/1.1 answer parser (generated framings and splits, and
every refused shape), and real fetches from loopback servers (TLS, status, concurrency)."""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fresh import run_fresh
from tests.slow_servers import ShortLivedContext
from tests.tls import loopback_certificate
from tokengate.budget import Budget
from tokengate.errors import ConfigurationError, DependencyUnavailableError
from tokengate.fetch import DocumentFetcher, FetchError, read_answer

pytestmark = pytest.mark.usefixtures("without_gc_pauses")  # timed against a context


def feeder(wire: bytes, cuts: list[int]) -> Callable[[], bytes]:
    """``recv`` over ``wire`` cut at ``cuts``, then b"" (the peer closed)."""
    points = sorted({c for c in cuts if 0 < c < len(wire)})
    pieces = [wire[a:b] for a, b in zip([0, *points], [*points, len(wire)], strict=True)]
    pieces.reverse()
    return lambda: pieces.pop() if pieces else b""


def chunked(body: bytes, sizes: list[int]) -> bytes:
    out, at = b"", 0
    for size in sizes:
        if at >= len(body):
            break
        piece = body[at : at + size]
        at += len(piece)
        out += b"%x\r\n" % len(piece) + piece + b"\r\n"
    if at < len(body):
        out += b"%x;ext=1\r\n" % (len(body) - at) + body[at:] + b"\r\n"
    return out + b"0\r\nX-Trailer: t\r\n\r\n"


@given(
    body=st.binary(max_size=3000),
    framing=st.sampled_from(["length", "chunked", "close"]),
    sizes=st.lists(st.integers(min_value=1, max_value=700), max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=12),
    status=st.sampled_from([200, 404, 503]),
)
def test_every_framing_and_every_split_gives_back_the_body(
    body: bytes, framing: str, sizes: list[int], cuts: list[int], status: int
) -> None:
    head = b"HTTP/1.1 %d Whatever\r\nContent-Type: application/json\r\n" % status
    if framing == "length":
        wire = head + b"Content-Length: %d\r\n\r\n" % len(body) + body
    elif framing == "chunked":
        wire = head + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(body, sizes)
    else:
        wire = head + b"\r\n" + body
    answer = read_answer(feeder(wire, cuts), 4096)
    assert (answer.status, answer.body) == (status, body)
    assert answer.headers["content-type"] == "application/json"


@given(
    body=st.binary(min_size=11, max_size=300),
    framing=st.sampled_from(["length", "chunked", "close"]),
)
def test_a_body_over_the_cap_is_refused_in_every_framing(body: bytes, framing: str) -> None:
    head = b"HTTP/1.1 200 OK\r\n"
    wire = {
        "length": head + b"Content-Length: %d\r\n\r\n" % len(body) + body,
        "chunked": head + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(body, [5]),
        "close": head + b"\r\n" + body,
    }[framing]
    with pytest.raises(FetchError, match="too large"):
        read_answer(feeder(wire, []), 10)


@pytest.mark.parametrize(
    ("wire", "why"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", "both"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "transfer coding"),
        (b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 1\r\n\r\nx", "coding"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nxyz", "conflicting"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0x1\r\n\r\n", "Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort", "mid-body"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n", "chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x2\r\nab\r\n", "chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n", "chunk end"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n", "mid-answer"),
        (b"HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n", "header line"),
        (b"HTTP/1.1 200 OK\r\nNoColon\r\n\r\n", "header line"),
        (b"HTTP/1.1 200 OK\r\n" + b"A: b\r\n" * 101 + b"\r\n", "too many"),
        (b"HTTP/1.1 200 OK\r\nA: " + b"b" * 17000 + b"\r\n\r\n", "too long"),
        (b"HTTP/2 200\r\n\r\n", "status line"),
        (b"ICY 200 OK\r\n\r\n", "status line"),
        (b"HTTP/1.1 2000 OK\r\n\r\n", "status line"),
        (b"", "mid-answer"),
    ],
)
def test_ambiguous_or_oversized_answers_are_refused(wire: bytes, why: str) -> None:
    with pytest.raises(FetchError, match=why):
        read_answer(feeder(wire, []), 64 * 1024)


# -- real fetches over loopback -------------------------------------------------------------


class RawServer:
    """Answers every connection with ``answer`` (raw bytes) after ``delay`` seconds, then closes
    (or, with ``keep_alive``, answers that many more requests on it first); remembers each
    request's head and counts connections."""

    def __init__(
        self,
        answer: bytes,
        delay: float = 0.0,
        tls: ssl.SSLContext | None = None,
        keep_alive: int = 0,
    ):
        self.answer, self.delay, self.tls, self.keep_alive = answer, delay, tls, keep_alive
        self.connections = 0
        self.requests: list[bytes] = []
        self.resumed: list[bool] = []  # per TLS connection: was a session resumed?
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self._stop = threading.Event()
        port = self._listener.getsockname()[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}/doc.json"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        self.connections += 1
        try:
            conn.settimeout(5)
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            if isinstance(conn, ssl.SSLSocket):
                self.resumed.append(bool(conn.session_reused))
            for _ in range(1 + self.keep_alive):
                head = b""
                while b"\r\n\r\n" not in head:
                    data = conn.recv(4096)
                    if not data:
                        return
                    head += data
                self.requests.append(head)
                time.sleep(self.delay)
                conn.sendall(self.answer)
        except OSError:
            pass
        finally:
            conn.close()

    @contextmanager
    def running(self) -> Iterator[RawServer]:
        thread = threading.Thread(target=self._serve, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join(5)
            self._listener.close()


def ok(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body


def test_a_fetch_sends_one_plain_get_and_reads_the_body() -> None:
    with RawServer(ok(b'{"keys":[]}')).running() as server:
        assert DocumentFetcher().fetch(server.url, "doc_unavailable") == b'{"keys":[]}'
    (head,) = server.requests
    lines = head.decode().split("\r\n")
    assert lines[0] == "GET /doc.json HTTP/1.1"
    assert f"Host: {server.url.split('/')[2]}" in lines
    assert "Accept-Encoding: identity" in lines
    assert not any(line.lower().startswith("connection:") for line in lines)  # HTTP/1.1: kept


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 500 Oops\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nContent-Length: 70000\r\n\r\n",
        b"garbage\r\n\r\n",
    ],
)
def test_anything_but_a_plain_200_is_the_callers_reason(answer: bytes) -> None:
    with (
        RawServer(answer).running() as server,
        pytest.raises(DependencyUnavailableError) as caught,
    ):
        DocumentFetcher().fetch(server.url, "doc_unavailable")
    assert caught.value.reason == "doc_unavailable"
    assert len(server.requests) == 1  # a redirect is never followed


def test_plain_http_is_refused_off_loopback_before_any_connection() -> None:
    with pytest.raises(ConfigurationError, match="https"):
        DocumentFetcher().fetch("http://example.com/doc.json", "doc_unavailable")


def test_https_verifies_the_server_against_the_trust_store(tmp_path: Path) -> None:
    cert, key = loopback_certificate(tmp_path)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    trusting = ssl.create_default_context(cafile=str(cert))
    with RawServer(ok(b"{}"), tls=server_tls).running() as server:
        assert DocumentFetcher(tls=trusting).fetch(server.url, "doc_unavailable") == b"{}"
        # The system's trust store does not know this certificate: no answer is read.
        with pytest.raises(DependencyUnavailableError, match="doc_unavailable"):
            DocumentFetcher().fetch(server.url, "doc_unavailable")
    assert len(server.requests) == 1


def test_a_second_https_fetch_from_a_host_resumes_the_tls_session(tmp_path: Path) -> None:
    """A cold start reads two documents from one host (its key set, its status list): the second
    connection resumes the first's session (no certificate signature, no chain to check again);
    another host's connection never offers it, and an untrusted server never gets one."""
    cert, key = loopback_certificate(tmp_path)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    trusting = ssl.create_default_context(cafile=str(cert))
    fetcher = DocumentFetcher(tls=trusting)
    with (
        RawServer(ok(b"{}"), tls=server_tls).running() as one,
        RawServer(ok(b"[]"), tls=server_tls).running() as other,
    ):
        assert fetcher.fetch(one.url, "doc_unavailable") == b"{}"
        assert fetcher.fetch(one.url, "doc_unavailable") == b"{}"
        assert fetcher.fetch(other.url, "doc_unavailable") == b"[]"
    assert one.resumed == [False, True]
    assert other.resumed == [False]


def test_fetch_all_fetches_at_once_and_answers_in_order() -> None:
    """Two documents that each take 0.4 s to answer come back in about 0.4 s, not 0.8; a failing
    one is its own slot's error, not the other's."""
    with (
        RawServer(ok(b"first"), delay=0.4).running() as first,
        RawServer(ok(b"second"), delay=0.4).running() as second,
        RawServer(b"HTTP/1.1 503 No\r\nContent-Length: 0\r\n\r\n").running() as failing,
    ):
        fetcher = DocumentFetcher()
        started = time.monotonic()
        answers = fetcher.fetch_all(
            [(first.url, "a_unavailable"), (second.url, "b_unavailable"), (failing.url, "c")]
        )
        took = time.monotonic() - started
    assert answers[:2] == [b"first", b"second"]
    assert isinstance(answers[2], DependencyUnavailableError) and answers[2].reason == "c"
    assert took < 0.75


def test_fetch_all_ends_within_the_invocations_budget() -> None:
    budget = Budget(margin=0.3)
    with (
        RawServer(ok(b"late"), delay=3).running() as slow,
        RawServer(ok(b"soon")).running() as quick,
    ):
        context = ShortLivedContext(1200)
        with budget.invocation(context):
            answers = DocumentFetcher(budget).fetch_all([(slow.url, "a"), (quick.url, "b")])
        assert context.answered_in_time()
    assert isinstance(answers[0], DependencyUnavailableError)
    assert answers[1] == b"soon"


# -- a connection kept for the next document ---------------------------------------------------


def fetch_in_turn(url: str, times: int, fetcher: DocumentFetcher | None = None) -> list[bytes]:
    """``times`` fetches of ``url`` by one fetcher, one after the other; its kept connection
    closed after them."""
    fetcher = fetcher or DocumentFetcher()
    try:
        return [fetcher.fetch(url, "doc_unavailable") for _ in range(times)]
    finally:
        fetcher.close()


def test_documents_from_one_origin_share_a_kept_connection() -> None:
    with RawServer(ok(b"{}"), keep_alive=5).running() as server:
        assert fetch_in_turn(server.url, 3) == [b"{}"] * 3
    assert (server.connections, len(server.requests)) == (1, 3)


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nConnection: keep-alive\r\n"
        b"Content-Length: 2\r\n\r\n{}",
        b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}HTTP/1.1 200",  # bytes after the end
    ],
)
def test_an_answer_that_does_not_leave_its_connection_clean_is_not_reused(answer: bytes) -> None:
    with RawServer(answer, keep_alive=5).running() as server:
        assert fetch_in_turn(server.url, 2) == [b"{}"] * 2
    assert server.connections == 2


def test_a_connection_the_server_closed_while_idle_is_replaced_once() -> None:
    # The server closes after each answer without saying so: the kept connection is stale.
    with RawServer(ok(b"{}"), keep_alive=0).running() as server:
        assert fetch_in_turn(server.url, 3) == [b"{}"] * 3
    assert (server.connections, len(server.requests)) == (3, 3)


def test_a_connection_idle_too_long_or_to_another_origin_is_not_reused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with (
        RawServer(ok(b"{}"), keep_alive=5).running() as one,
        RawServer(ok(b"[]"), keep_alive=5).running() as other,
    ):
        fetcher = DocumentFetcher()
        assert fetcher.fetch(one.url, "doc_unavailable") == b"{}"
        assert fetcher.fetch(other.url, "doc_unavailable") == b"[]"  # another origin
        assert fetcher.fetch(one.url, "doc_unavailable") == b"{}"  # the first was closed
        monkeypatch.setattr("tokengate.fetch.IDLE_SECONDS", 0.0)
        assert fetcher.fetch(one.url, "doc_unavailable") == b"{}"  # kept too long
        fetcher.close()
    assert (one.connections, other.connections) == (3, 1)


def test_a_kept_https_connection_carries_the_next_document(tmp_path: Path) -> None:
    cert, key = loopback_certificate(tmp_path)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    trusting = ssl.create_default_context(cafile=str(cert))
    with RawServer(ok(b"{}"), tls=server_tls, keep_alive=3).running() as server:
        assert fetch_in_turn(server.url, 2, DocumentFetcher(tls=trusting)) == [b"{}"] * 2
    assert (server.connections, len(server.requests)) == (1, 2)


@given(
    body=st.binary(max_size=200),
    framing=st.sampled_from(["length", "chunked", "close"]),
    version=st.sampled_from([b"HTTP/1.1", b"HTTP/1.0"]),
    connection=st.sampled_from([b"", b"Connection: close\r\n", b"Connection: keep-alive\r\n"]),
    status=st.sampled_from([200, 204, 304, 404]),
    extra=st.sampled_from([b"", b"X"]),
)
def test_only_a_clean_persistent_answer_is_reusable(
    body: bytes, framing: str, version: bytes, connection: bytes, status: int, extra: bytes
) -> None:
    """RFC 9112 §9.3 and §6.3: reusable only when HTTP/1.1 without close, framed by length or
    chunks, with nothing after; a 204 or 304 has no body and is never reused here."""
    head = b"%s %d X\r\n" % (version, status) + connection
    if framing == "length":
        wire = head + b"Content-Length: %d\r\n\r\n" % len(body) + body
    elif framing == "chunked":
        wire = head + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(body, [50])
    else:
        wire = head + b"\r\n" + body
    answer = read_answer(feeder(wire + extra, []), 4096)
    expected = (
        status not in (204, 304)
        and version == b"HTTP/1.1"
        and b"close" not in connection
        and framing != "close"
        and not extra
    )
    assert answer.reusable is expected
    if status in (204, 304):
        assert answer.body == b""


def test_bytes_that_arrive_on_an_idle_connection_are_never_read_as_the_next_answer() -> None:
    """A server that sends a second, unasked-for answer after the first (late): the next fetch
    gets its own answer, on a new connection."""
    served: list[socket.socket] = []
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        for number in range(2):
            conn, _ = listener.accept()
            served.append(conn)
            head = b""
            while b"\r\n\r\n" not in head:
                head += conn.recv(4096)
            conn.sendall(ok(b'"first"' if number == 0 else b'"second"'))
            if number == 0:
                time.sleep(0.05)
                conn.sendall(ok(b'"unasked"'))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    fetcher = DocumentFetcher()
    try:
        assert fetcher.fetch(f"http://127.0.0.1:{port}/a", "doc_unavailable") == b'"first"'
        time.sleep(0.2)  # the unasked-for answer is waiting on the kept connection
        assert fetcher.fetch(f"http://127.0.0.1:{port}/b", "doc_unavailable") == b'"second"'
    finally:
        fetcher.close()
        thread.join(5)
        for conn in served:
            conn.close()
        listener.close()
    assert len(served) == 2


def test_fetchers_share_one_trust_store_context_and_its_sessions(tmp_path: Path) -> None:
    """Two fetchers on the default trust store (the Supabase authorizer has one for Supabase's
    key set and one for the status list): one context made (the CA bundle read once), and the
    second fetcher's connection resumes the first's session. In a fresh interpreter, whose
    trust store is the test certificate."""
    cert, key = loopback_certificate(tmp_path)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    code = (
        "import json, ssl, sys\n"
        "made = []\n"
        "_create = ssl.create_default_context\n"
        "ssl.create_default_context = lambda *a, **k: made.append(1) or _create(*a, **k)\n"
        "from tokengate.fetch import DocumentFetcher\n"
        "first, second = DocumentFetcher(), DocumentFetcher()\n"
        "bodies = [f.fetch(sys.argv[1], 'doc_unavailable').decode() for f in (first, second)]\n"
        "print(json.dumps([len(made), bodies]))\n"
    )
    with RawServer(ok(b"{}"), tls=server_tls, keep_alive=3).running() as server:
        result = run_fresh(code, server.url, env={"SSL_CERT_FILE": str(cert)})
    assert json.loads(result.stdout) == [1, ["{}", "{}"]]
    assert server.resumed == [False, True]
