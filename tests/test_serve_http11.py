"""bitstore's own HTTP/1.1 server (``bitstore.serve.server`` + ``http11``) over raw sockets on 127.0.0.1: keep-alive,
pipelining in order, ``Connection: close``, HTTP/1.0, HEAD, request bodies dropped, malformed and oversize requests
(400, then closed), idle connections closed (the idle check driven with a made-up time, no sleeping), a streamed
body that waits for a slow client (flow control), apps that wait (a Task takes over) or fail (500), and a clean
stop with a request in flight."""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bitstore import LocalRaw, Sha1Cache, Sha1Composite, Store
from bitstore.serve import app

pytest.importorskip("httptools")
from bitstore.serve.http11 import MAX_HEAD_BYTES, MAX_URL_BYTES  # noqa: E402
from bitstore.serve.server import Server, bind  # noqa: E402
from tests.test_serve import OpenOnly  # noqa: E402


def _sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


@contextlib.contextmanager
def running(asgi, **options):
    """``asgi`` on the lean server in a thread; yields ``(server, port)``."""
    sock = bind("127.0.0.1", 0)
    server = Server(asgi, shutdown_timeout=options.pop("shutdown_timeout", 10), **options)
    thread = threading.Thread(target=server.run, args=(sock,), daemon=True)
    thread.start()
    try:
        assert server.started.wait(30)
        yield server, sock.getsockname()[1]
    finally:
        server.stop()
        thread.join(30)
        sock.close()
        assert not thread.is_alive()


def _connect(port: int) -> socket.socket:
    conn = socket.create_connection(("127.0.0.1", port), timeout=30)
    return conn


class Reader:
    """Reads HTTP/1.1 responses off a raw socket: status, headers, body (by content-length or chunked)."""

    def __init__(self, conn: socket.socket):
        self.conn, self.buffer = conn, b""

    def _fill(self) -> bool:
        chunk = self.conn.recv(1 << 16)
        self.buffer += chunk
        return bool(chunk)

    def _line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            assert self._fill(), "the connection closed mid-response"
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def _exactly(self, n: int) -> bytes:
        while len(self.buffer) < n:
            assert self._fill(), "the connection closed mid-body"
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def response(self, head: bool = False) -> tuple[int, dict[str, str], bytes]:
        status = int(self._line().split()[1])
        headers: dict[str, str] = {}
        while line := self._line():
            name, _, value = line.decode().partition(":")
            assert name.lower() not in headers, f"header {name} twice"
            headers[name.lower()] = value.strip()
        if head or status in (204, 304):
            return status, headers, b""
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            while size := int(self._line(), 16):
                body += self._exactly(size)
                assert self._line() == b""
            assert self._line() == b""
            return status, headers, body
        return status, headers, self._exactly(int(headers["content-length"]))

    def closed(self) -> bool:
        """Whether the server closed the connection (nothing more to read)."""
        return not self.buffer and not self._fill()


@pytest.fixture
def blobs(tmp_path):
    data = [b"blob %d " % i * (i + 1) for i in range(5)]
    composite = Sha1Composite().append_cache(Sha1Cache(LocalRaw(tmp_path / "c"), ""))
    for d in data:
        composite.put(_sha1(d), d)
    return composite, data


def test_pipelined_requests_are_answered_in_order_on_one_connection(blobs):
    composite, data = blobs
    with running(app(composite)) as (_, port), _connect(port) as conn:
        keys = [_sha1(d) for d in data] + ["0" * 40, "bad"]
        conn.sendall(b"".join(b"GET /blobs/%s HTTP/1.1\r\nHost: x\r\n\r\n" % k.encode() for k in keys))
        reader = Reader(conn)
        for d in data:
            status, headers, body = reader.response()
            assert status == 200 and body == d and "connection" not in headers and "date" in headers
        assert reader.response()[0] == 404
        assert reader.response()[0] == 400
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        status, headers, body = reader.response()
        assert (status, headers["connection"], body) == (200, "close", b"ok\n")
        assert reader.closed()


@given(cuts=st.lists(st.integers(1, 200), max_size=6))
@settings(max_examples=15, deadline=None)
def test_requests_split_anywhere_are_read_whole(cuts):
    """A pipeline sent in pieces cut at arbitrary bytes is answered as if sent at once."""
    data = b"split me"
    store = Sha1Composite().append_source(_Memory({_sha1(data): data}))
    stream = b"".join(b"GET /blobs/%s HTTP/1.1\r\nHost: x\r\nX-Pad: %s\r\n\r\n" % (_sha1(data).encode(), b"p" * i)
                      for i in range(3))
    with running(app(store)) as (_, port), _connect(port) as conn:
        at = 0
        for cut in sorted(set(cuts)):
            if at < cut < len(stream):
                conn.sendall(stream[at:cut])
                at = cut
        conn.sendall(stream[at:])
        reader = Reader(conn)
        assert [reader.response()[2] for _ in range(3)] == [data] * 3


def test_http_1_0_closes_unless_asked_to_keep_alive(blobs):
    composite, data = blobs
    key = _sha1(data[0]).encode()
    with running(app(composite)) as (_, port):
        with _connect(port) as conn:
            conn.sendall(b"GET /blobs/%s HTTP/1.0\r\n\r\n" % key)
            reader = Reader(conn)
            status, headers, body = reader.response()
            assert status == 200 and body == data[0] and headers["connection"] == "close"
            assert reader.closed()
        with _connect(port) as conn:
            reader = Reader(conn)
            for _ in range(2):
                conn.sendall(b"GET /blobs/%s HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" % key)
                status, headers, body = reader.response()
                assert body == data[0] and headers["connection"] == "keep-alive"


def test_head_has_the_headers_and_no_body(blobs):
    composite, data = blobs
    with running(app(composite)) as (_, port), _connect(port) as conn:
        conn.sendall(b"HEAD /blobs/%s HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                     % _sha1(data[2]).encode())
        reader = Reader(conn)
        status, headers, body = reader.response(head=True)
        assert status == 200 and headers["content-length"] == str(len(data[2])) and body == b""
        assert reader.response()[2] == b"ok\n"  # nothing of a body came between the two


def test_request_bodies_are_dropped(blobs):
    composite, data = blobs
    key = _sha1(data[0]).encode()
    with running(app(composite)) as (_, port):
        with _connect(port) as conn:  # a small body: read and dropped, the connection goes on
            body = b"x" * 1000
            conn.sendall(b"POST /blobs/%s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (key, len(body), body)
                         + b"GET /blobs/%s HTTP/1.1\r\nHost: x\r\n\r\n" % key)
            reader = Reader(conn)
            assert reader.response()[0] == 405
            assert reader.response()[2] == data[0]
        with _connect(port) as conn:  # a large one: answered at once, then the connection closes
            conn.sendall(b"POST /blobs/%s HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\nxxxx" % key)
            reader = Reader(conn)
            status, headers, _ = reader.response()
            assert status == 405 and headers["connection"] == "close"
            assert reader.closed()


@pytest.mark.parametrize("request_bytes", [
    b"NONSENSE\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nBad Header\r\n\r\n",
    b"GET /" + b"a" * (MAX_URL_BYTES + 1) + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\n" + b"X-Big: " + b"b" * (MAX_HEAD_BYTES + 1) + b"\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(200)) + b"\r\n",
])
def test_malformed_or_oversize_requests_are_400_and_closed(request_bytes):
    with running(app(Sha1Composite())) as (_, port), _connect(port) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" + request_bytes)
        reader = Reader(conn)
        assert reader.response()[0] == 200  # the good request before it is still answered
        status, headers, _ = reader.response()
        assert status == 400 and headers["connection"] == "close"
        assert reader.closed()


def test_idle_connections_are_closed(blobs):
    """The idle check, driven with a made-up time: a keep-alive connection past the timeout, and a request head
    that has not arrived in time, are closed; a fresh one is kept."""
    composite, _ = blobs
    with running(app(composite), keep_alive_timeout=5, header_timeout=30) as (server, port):
        idle, slow, fresh = _connect(port), _connect(port), _connect(port)
        for conn in (idle, fresh):
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            Reader(conn).response()
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHo")
        _until(lambda: any(c._head_started is not None for c in list(server.state.connections)),
               "the slow head to arrive")
        by_port = {c.client[1]: c for c in server.state.connections}
        check = threading.Event()

        def judge():
            by_port[idle.getsockname()[1]].check_idle(by_port[idle.getsockname()[1]].last_active + 5.1)
            slow_conn = by_port[slow.getsockname()[1]]
            slow_conn.check_idle(slow_conn._head_started + 30.1)
            fresh_conn = by_port[fresh.getsockname()[1]]
            fresh_conn.check_idle(fresh_conn.last_active + 4.9)
            check.set()

        server._loop.call_soon_threadsafe(judge)
        assert check.wait(30)
        assert Reader(idle).closed() and Reader(slow).closed()
        fresh.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert Reader(fresh).response()[0] == 200
        for conn in (idle, slow, fresh):
            conn.close()


def test_a_streamed_body_waits_for_a_slow_client():
    """A 48 MiB range to a client that does not read: the server stops reading the blob once the socket and its
    buffer are full (``pause_writing``), then streams the rest as the client reads; every byte arrives."""
    data = os.urandom(48 * 1024 * 1024)
    store = OpenOnly(data)
    with running(app(store)) as (server, port), _connect(port) as conn:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        conn.sendall(b"GET /blobs/blob HTTP/1.1\r\nHost: x\r\nRange: bytes=0-%d\r\n\r\n" % (len(data) - 1))
        _until(lambda: any(c.writing_paused for c in list(server.state.connections)), "the writes to pause")
        held = sum(store.reads)
        assert held < len(data) // 2  # far from all of it: the reads wait for the client
        status, headers, body = Reader(conn).response()
        assert status == 206 and body == data


class _Memory(Store):
    def __init__(self, blobs: dict[str, bytes]):
        self.blobs = blobs

    def is_valid(self, uri) -> bool:
        return isinstance(uri, str)

    def get(self, uri) -> bytes:
        from bitstore import NotFoundInStore

        if uri not in self.blobs:
            raise NotFoundInStore(self, uri)
        return self.blobs[uri]


def test_apps_that_wait_fail_or_stream_without_a_length():
    release = threading.Event()

    async def asgi(scope, receive, send):
        path = scope["path"]
        if path == "/wait":  # waits: the rest runs as a Task, the answers stay in order
            await asyncio.get_running_loop().run_in_executor(None, release.wait, 30)
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"4")]})
            await send({"type": "http.response.body", "body": b"wait"})
        elif path == "/fail":
            raise RuntimeError("boom")
        elif path == "/stream":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            for part in (b"one ", b"two ", b"three"):
                await send({"type": "http.response.body", "body": part, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        else:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": path.encode()})

    with running(asgi) as (_, port), _connect(port) as conn:
        conn.sendall(b"GET /wait HTTP/1.1\r\nHost: x\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        release.set()
        reader = Reader(conn)
        assert reader.response()[2] == b"wait"
        assert reader.response()[2] == b"/after"
        status, headers, body = reader.response()
        assert body == b"one two three" and headers["transfer-encoding"] == "chunked"
        conn.sendall(b"GET /fail HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, _ = reader.response()
        assert status == 500 and headers["connection"] == "close"
        assert reader.closed()


def test_stop_finishes_the_request_in_flight_and_refuses_new_connections():
    release, started = threading.Event(), threading.Event()

    async def asgi(scope, receive, send):
        if scope["type"] != "http":  # no lifespan here (the server then serves without it)
            raise ValueError(f"unsupported scope type {scope['type']!r}")
        started.set()
        await asyncio.get_running_loop().run_in_executor(None, release.wait, 30)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"finished"})

    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = Server(asgi, shutdown_timeout=30)
    thread = threading.Thread(target=server.run, args=(sock,), daemon=True)
    thread.start()
    try:
        assert server.started.wait(30)
        busy, idle = _connect(port), _connect(port)
        busy.sendall(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
        assert started.wait(30)
        server.stop()
        assert Reader(idle).closed()  # an idle connection is closed at once
        with pytest.raises(OSError):
            _until(lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close() and False,
                   "new connections to be refused")
        release.set()
        reader = Reader(busy)
        status, headers, body = reader.response()
        assert body == b"finished" and headers["connection"] == "close"
        assert reader.closed()
        thread.join(30)
        assert not thread.is_alive()
    finally:
        release.set()
        server.stop()
        thread.join(30)
        sock.close()


def _until(condition, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)
