"""A lean HTTP/1.1 connection for an ASGI app: an ``asyncio.Protocol`` parsing with httptools (extra ``serve``).

What ``bitstore serve`` runs by default (``server.Server`` listens and owns the connections). Per connection:
keep-alive (HTTP/1.1 by default, HTTP/1.0 when asked), pipelined requests answered one at a time in order,
``Connection: close``, HEAD (no body written), request bodies read and dropped (the app is given an empty one; a
response sent before its request's body was all read closes the connection), a malformed or oversize request
answered 400 and the connection closed, idle connections closed (``keep_alive_timeout``; a request head that does
not arrive in ``header_timeout``), and writes that wait while the client's socket is full (``pause_writing``), so a
streamed body stays streamed.

A request's app call runs at once, inside the callback that completed the request (no Task): most answers of the
gateway never wait. When the app does wait, the rest of the call goes on as a Task, in the same context.

An app with a ``respond_now(method, path, headers)`` method (the gateway) is offered each request without a body
first: it returns ``(status, header lines, body)``, written at once in one write with the connection's own headers
(no scope, no ASGI messages), or None, and the request goes to the ASGI call.
"""
from __future__ import annotations

import asyncio
import contextvars
import http
import logging
import urllib.parse
from collections import deque
from collections.abc import Awaitable, Callable, Generator
from typing import Any

import httptools

__all__ = ["HttpConnection", "ConnectionState", "ClientDisconnected", "MAX_URL_BYTES", "MAX_HEADERS",
           "MAX_HEAD_BYTES"]

logger = logging.getLogger("bitstore.serve")
access_logger = logging.getLogger("bitstore.serve.access")

MAX_URL_BYTES = 8 * 1024
MAX_HEADERS = 100
MAX_HEAD_BYTES = 64 * 1024
#: Requests parsed ahead of the one being answered; beyond, reading pauses until the queue drains.
MAX_PIPELINE = 16
#: The transport's write buffer above which ``send`` waits (``pause_writing``) until the client has read.
HIGH_WATER = 256 * 1024
_SMALL_BODY = 64 * 1024  # a body this small goes out in the same write as the head
_READ_FIRST = 64 * 1024  # a request body up to this size is read before the answer (larger: answered at once)
_NO_BODY_STATUS = frozenset({204, 304})

_ASGI = {"version": "3.0", "spec_version": "2.3"}
_EMPTY_REQUEST = {"type": "http.request", "body": b"", "more_body": False}
_STATUS_LINES: dict[int, bytes] = {}
_CLOSE = b"connection: close\r\n"
_KEEP_ALIVE_10 = b"connection: keep-alive\r\n"
_PLAIN_500 = b"content-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n"


def _status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        try:
            phrase = http.HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
        line = _STATUS_LINES[status] = b"HTTP/1.1 %d %s\r\n" % (status, phrase.encode())
    return line


class ClientDisconnected(OSError):
    """``send`` after the client went away (a streamed body stops there)."""


class _BadRequest(Exception):
    """A request the connection refuses (too large): answered 400, then the connection closes."""


class ConnectionState:
    """What one process's connections share: the app, the timeouts, the access log, the ``Date`` header (set each
    second by the server), whether the server is stopping, and the live connections and app tasks."""

    def __init__(self, app: Callable[..., Awaitable[None]], loop: asyncio.AbstractEventLoop, *,
                 keep_alive_timeout: float = 5.0, header_timeout: float = 30.0, access_log: bool = False):
        self.app = app
        self.loop = loop
        self.keep_alive_timeout = keep_alive_timeout
        self.header_timeout = header_timeout
        self.access_log = access_log
        self.date = b""
        self.stopping = False
        self.connections: set[HttpConnection] = set()
        self.tasks: set[asyncio.Task] = set()
        #: The app's lifespan ``state`` (a copy goes into each request's scope), when it speaks the protocol.
        self.lifespan_state: dict | None = None
        #: The app's direct answer, when it has one (see the module doc).
        self.respond_now: Callable[[str, str, list], tuple[int, bytes, bytes] | None] | None = getattr(
            app, "respond_now", None)


class _Request:
    __slots__ = ("method", "path", "raw_path", "query", "headers", "keep_alive", "head", "body_done", "expects_body",
                 "version")

    def __init__(self, method: str, path: str, raw_path: bytes, query: bytes, headers: list[tuple[bytes, bytes]],
                 keep_alive: bool, expects_body: bool, version: str):
        self.method = method
        self.path = path
        self.raw_path = raw_path
        self.query = query
        self.headers = headers
        self.keep_alive = keep_alive
        self.head = method == "HEAD"
        self.expects_body = expects_body
        self.body_done = not expects_body
        self.version = version

    def scope(self, conn: HttpConnection) -> dict:
        """The ASGI scope (made only for a request the app is called for)."""
        scope = {"type": "http", "asgi": _ASGI, "http_version": self.version, "server": conn.server,
                 "client": conn.client, "scheme": "http", "method": self.method, "root_path": "", "path": self.path,
                 "raw_path": self.raw_path, "query_string": self.query, "headers": self.headers}
        shared = conn.state.lifespan_state
        if shared is not None:  # the app's lifespan state, a shallow copy per request (ASGI)
            scope["state"] = dict(shared)
        return scope


class HttpConnection(asyncio.Protocol):
    """One client connection (see the module doc)."""

    def __init__(self, state: ConnectionState):
        self.state = state
        self.loop = state.loop
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.server: tuple[str, int] | None = None
        self.client: tuple[str, int] | None = None
        self.pending: deque[_Request | int] = deque()
        self.cycle: _Cycle | None = None  # the request being answered
        self.closing = False
        self.reading_paused = False
        self.reading_over = False  # a refused or upgraded request: nothing more is read
        self.writing_paused = False
        self._drain: list[asyncio.Future] = []
        self._eager = False  # an app call is running inside this connection's own callback
        self.last_active = self.loop.time()
        # the request being parsed
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_bytes = 0
        self._has_body: bytes | bool = False  # False, b"read" (first) or b"early" (answer before it is read)
        self._parsing: _Request | None = None
        self._head_started: float | None = None

    # --- the transport -------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.state.connections.add(self)
        self.server = _address(transport.get_extra_info("sockname"))
        self.client = _address(transport.get_extra_info("peername"))
        transport.set_write_buffer_limits(high=HIGH_WATER)  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.state.connections.discard(self)
        self.pending.clear()
        if self.cycle is not None:
            self.cycle.disconnected = True
            self.cycle.wake()
        self.writing_paused = False
        for waiter in self._drain:
            if not waiter.done():
                waiter.set_exception(ClientDisconnected("the client went away"))
        self._drain.clear()

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        for waiter in self._drain:
            if not waiter.done():
                waiter.set_result(None)
        self._drain.clear()

    async def drain(self) -> None:
        """Wait until the client has read enough of what was written (``resume_writing``)."""
        if self.closing:
            raise ClientDisconnected("the client went away")
        if self.writing_paused:
            waiter = self.loop.create_future()
            self._drain.append(waiter)
            await waiter

    def close(self) -> None:
        if not self.closing:
            self.closing = True
            self.pending.clear()
            if self.transport is not None:
                self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        self.last_active = self.loop.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:  # no upgrades here: what was parsed is answered, then the connection ends
            if self._parsing is not None:
                self._parsing.keep_alive = False
            elif self.pending and isinstance(self.pending[-1], _Request):
                self.pending[-1].keep_alive = False
            self._stop_reading(over=True)
        except (httptools.HttpParserError, _BadRequest):
            self._refuse(400)

    def _refuse(self, status: int) -> None:
        """Answer ``status`` after the requests already parsed, then close; nothing more is read."""
        self._stop_reading(over=True)
        self._parsing = None
        self.pending.append(status)
        self._next()

    def _stop_reading(self, over: bool = False) -> None:
        self.reading_over = self.reading_over or over
        if self.transport is not None and not self.reading_paused:
            self.reading_paused = True
            self.transport.pause_reading()

    # --- the parser's callbacks ------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._head_bytes = 0
        self._has_body = False
        self._head_started = self.loop.time()

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > MAX_URL_BYTES:
            raise _BadRequest("URL too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value)
        if self._head_bytes > MAX_HEAD_BYTES or len(self._headers) >= MAX_HEADERS:
            raise _BadRequest("request head too large")
        name = name.lower()
        if name == b"content-length":  # a small body is read (and dropped) before the answer: the connection stays
            value = value.strip()
            if value not in (b"0", b""):
                self._has_body = self._has_body or (b"early" if not value.isdigit() or int(value) > _READ_FIRST
                                                    else b"read")
        elif name == b"transfer-encoding" or name == b"expect":  # a chunked body, or one waiting for "100"
            self._has_body = b"early"
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._head_started = None
        if self.closing:
            return
        parser = self.parser
        version = parser.get_http_version()
        method = parser.get_method().decode("ascii")
        url = httptools.parse_url(self._url)
        raw_path = url.path
        path = raw_path.decode("ascii")
        if "%" in path:
            path = urllib.parse.unquote(path)
        request = _Request(method, path, raw_path, url.query or b"", self._headers,
                           parser.should_keep_alive() and not self.state.stopping, self._has_body == b"early", version)
        self._parsing = request
        if request.expects_body:  # a large body: answered now, the body read (and dropped) meanwhile
            self._queue(request)

    def on_body(self, body: bytes) -> None:
        """Request bodies are dropped (the gateway reads none)."""

    def on_message_complete(self) -> None:
        request, self._parsing = self._parsing, None
        if request is None or self.closing:
            return
        if request.expects_body:
            request.body_done = True
        else:
            self._queue(request)

    # --- answering -------------------------------------------------------------------------------------
    def _queue(self, request: _Request) -> None:
        self.pending.append(request)
        if len(self.pending) > MAX_PIPELINE:
            self._stop_reading()
        self._next()

    def _next(self) -> None:
        """Answer the queued requests in order, each call to the app run at once (see the module doc)."""
        if self._eager:
            return  # the loop below, further up this stack, goes on with them
        self._eager = True
        try:
            while self.cycle is None and self.pending and not self.closing:
                request = self.pending.popleft()
                if isinstance(request, int):
                    self._write_refusal(request)
                    return
                if self.reading_paused and len(self.pending) <= MAX_PIPELINE // 2:
                    self._resume_reading()
                self._start(request)
        finally:
            self._eager = False

    def _resume_reading(self) -> None:
        if self.transport is not None and self.reading_paused and not self.closing and not self.reading_over:
            self.reading_paused = False
            self.transport.resume_reading()

    def _start(self, request: _Request) -> None:
        respond_now = self.state.respond_now
        if respond_now is not None and not request.expects_body:
            try:
                answer = respond_now(request.method, request.path, request.headers)
            except Exception:  # noqa: BLE001 - the app's failure ends this response, never the server
                logger.exception("the app failed before it answered: 500")
                self._write_error(request)
                return
            if answer is not None:
                self._write_now(request, *answer)
                return
        cycle = self.cycle = _Cycle(self, request)
        context = contextvars.copy_context()
        coro = cycle.run(self.state.app)
        try:
            yielded = context.run(coro.send, None)
        except StopIteration:
            return
        task = self.loop.create_task(_go_on(coro, yielded), context=context)
        self.state.tasks.add(task)
        task.add_done_callback(self.state.tasks.discard)

    def _write_now(self, request: _Request, status: int, lines: bytes, body: bytes, keep_alive: bool = True) -> None:
        """Write the app's direct answer (``respond_now``): status line, its header lines, the connection's own
        (``connection``, ``date``) and the body, in one write; then on as after an ASGI response."""
        keep_alive = keep_alive and request.keep_alive and not self.state.stopping
        if keep_alive:
            framing = _KEEP_ALIVE_10 if request.version == "1.0" else b""
        else:
            framing = _CLOSE
        transport = self.transport
        if transport is not None and not self.closing:
            head = _status_line(status) + lines + framing + self.state.date + b"\r\n"
            if body and not request.head and status not in _NO_BODY_STATUS:
                transport.writelines((head, body))
            else:
                transport.write(head)
        self._after(request, status, keep_alive)

    def _write_error(self, request: _Request) -> None:
        body = b"internal server error\n"
        self._write_now(request, 500, _PLAIN_500 % len(body), body, keep_alive=False)

    def finished(self, cycle: _Cycle) -> None:
        """The app returned: keep the connection for the next request, or close it."""
        if self.cycle is not cycle:
            return
        self.cycle = None
        self._after(cycle.request, cycle.status, cycle.complete and cycle.keep_alive)

    def _after(self, request: _Request, status: int, keep_alive: bool) -> None:
        if self.state.access_log:
            access_logger.info('%s - "%s %s HTTP/%s" %s', _shown(self.client), request.method, request.path,
                               request.version, status or "-")
        if not keep_alive or not request.body_done or self.state.stopping or self.closing:
            self.close()
            return
        self.last_active = self.loop.time()
        if self.pending:
            self._next()
        elif self.reading_paused:
            self._resume_reading()

    def _write_refusal(self, status: int) -> None:
        body = b"bad request\n"
        if self.transport is not None:
            self.transport.write(_status_line(status) + b"content-type: text/plain; charset=utf-8\r\n"
                                 b"content-length: %d\r\nconnection: close\r\n%s\r\n" % (len(body), self.state.date)
                                 + body)
        self.close()

    # --- timeouts and stopping (the server calls these) ------------------------------------------------
    def check_idle(self, now: float) -> None:
        """Close the connection if it waits for nothing but an idle client (keep-alive, or a head too slow)."""
        if self.cycle is not None or self.pending or self.closing:
            return
        if self._head_started is not None:
            if now - self._head_started > self.state.header_timeout:
                self.close()
        elif now - self.last_active > self.state.keep_alive_timeout:
            self.close()

    def shutdown(self) -> None:
        """The server stops: an idle connection closes now, a busy one after its response."""
        if self.cycle is None:
            self.close()
        else:
            self.cycle.keep_alive = False
            self.pending.clear()

    def abort(self) -> None:
        if self.transport is not None:
            self.closing = True
            self.transport.abort()


class _Cycle:
    """One request's app call: ``receive`` and ``send`` of ASGI, the response's framing and flow control."""

    __slots__ = ("conn", "request", "keep_alive", "status", "headers", "started", "head_sent", "complete",
                 "disconnected", "chunked", "length", "sent", "_disconnect", "_body_given")

    def __init__(self, conn: HttpConnection, request: _Request):
        self.conn = conn
        self.request = request
        self.keep_alive = request.keep_alive
        self.status = 0
        self.headers: Any = ()
        self.started = self.head_sent = self.complete = self.disconnected = self.chunked = False
        self.length: int | None = None
        self.sent = 0
        self._disconnect: asyncio.Future | None = None
        self._body_given = False

    async def run(self, app: Callable[..., Awaitable[None]]) -> None:
        try:
            await app(self.request.scope(self.conn), self.receive, self.send)
        except BaseException as exc:  # noqa: BLE001 - the app's failure ends this response, never the server
            if isinstance(exc, ClientDisconnected) and self.disconnected:
                pass
            elif not self.started and not self.disconnected:
                logger.exception("the app failed before it answered: 500")
                self._internal_error()
            else:
                logger.warning("the app failed while it answered (%s): the connection is closed",
                               type(exc).__name__)
                self.keep_alive = False
                self.complete = False
            if not isinstance(exc, Exception):
                self.conn.finished(self)
                raise
        else:
            if not self.started and not self.disconnected:
                logger.error("the app returned without answering: 500")
                self._internal_error()
            elif not self.complete:
                self.keep_alive = False
        self.conn.finished(self)

    def _internal_error(self) -> None:
        body = b"internal server error\n"
        self.keep_alive = False
        self.status = 500
        self.complete = True
        transport = self.conn.transport
        if transport is not None and not self.conn.closing:
            transport.write(_status_line(500) + b"content-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n"
                            b"connection: close\r\n%s\r\n" % (len(body), self.conn.state.date) + body)

    def wake(self) -> None:
        if self._disconnect is not None and not self._disconnect.done():
            self._disconnect.set_result(None)

    async def receive(self) -> dict:
        """The request's body, empty (bodies are dropped), then ``http.disconnect`` once the client has gone."""
        if not self._body_given:
            self._body_given = True
            return _EMPTY_REQUEST
        if not self.disconnected and not self.complete:
            if self._disconnect is None:
                self._disconnect = self.conn.loop.create_future()
            await self._disconnect
        return {"type": "http.disconnect"}

    async def send(self, message: dict) -> None:
        if self.disconnected:
            raise ClientDisconnected("the client went away")
        kind = message["type"]
        if not self.started:
            if kind != "http.response.start":
                raise RuntimeError(f"expected http.response.start, got {kind!r}")
            self.started = True
            self.status = message["status"]
            self.headers = message.get("headers", ())
            return
        if kind != "http.response.body":
            raise RuntimeError(f"expected http.response.body, got {kind!r}")
        if self.complete:
            raise RuntimeError("the response is already complete")
        body = message.get("body", b"")
        more = message.get("more_body", False)
        conn = self.conn
        transport = conn.transport
        if self.request.head or self.status in _NO_BODY_STATUS or self.status < 200:
            body = b""
        if not self.head_sent:
            head = self._head(len(body), more)
            self.head_sent = True
            if len(body) <= _SMALL_BODY and not self.chunked:
                transport.write(head + body if body else head)
            else:
                transport.write(head)
                self._write(transport, body)
        elif body:
            self._write(transport, body)
        self.sent += len(body)
        if self.length is not None and self.sent > self.length and not self.request.head:
            self.keep_alive = False
            raise RuntimeError(f"the app sent more than its content-length ({self.length})")
        if not more:
            if self.chunked:
                transport.write(b"0\r\n\r\n")
            self.complete = self.length is None or self.sent == self.length or self.request.head or (
                self.status in _NO_BODY_STATUS or self.status < 200)
            if not self.complete:  # fewer bytes than announced: the client can only tell by the end of the stream
                self.keep_alive = False
                self.complete = True
            self.wake()
        elif conn.writing_paused:
            await conn.drain()

    def _write(self, transport: asyncio.Transport, body: bytes) -> None:
        if not body:
            return
        if self.chunked:
            transport.write(b"%x\r\n" % len(body) + body + b"\r\n")
        else:
            transport.write(body)

    def _head(self, first: int, more: bool) -> bytes:
        """The status line and headers; the framing (length, chunked, or the end of the connection) decided."""
        request = self.request
        status = self.status
        parts = [_status_line(status)]
        length = None
        for name, value in self.headers:
            name = name.lower()
            line = name + b": " + value + b"\r\n"
            if line.count(b"\n") != 1 or b"\r" in line[:-2]:
                raise RuntimeError("a response header holds a line break")
            if name == b"content-length":
                length = int(value)
            elif name == b"connection":
                if value.lower().strip() == b"close":
                    self.keep_alive = False
                continue  # the connection decides this header
            elif name == b"transfer-encoding":
                continue  # framing is the server's
            parts.append(line)
        if not request.body_done:  # answered before its body was all read: the connection ends with the answer
            self.keep_alive = False
        no_body = status in _NO_BODY_STATUS or status < 200
        if length is not None:
            self.length = length  # the app's header, kept where it stands
        elif no_body:
            pass
        elif not more:
            if not request.head:
                parts.append(b"content-length: %d\r\n" % first)
                self.length = first
        elif request.version == "1.1":
            self.chunked = True
            parts.append(b"transfer-encoding: chunked\r\n")
        else:
            self.keep_alive = False  # an HTTP/1.0 body of unknown length ends with the connection
        if not self.keep_alive:
            parts.append(b"connection: close\r\n")
        elif request.version == "1.0":
            parts.append(b"connection: keep-alive\r\n")
        parts.append(self.conn.state.date)
        parts.append(b"\r\n")
        return b"".join(parts)


async def _go_on(coro: Any, yielded: Any) -> Any:
    """The rest of a coroutine that was started by hand and then waited on ``yielded``."""
    return await _Resumed(coro, yielded)


class _Resumed:
    """Awaitable that hands ``yielded`` (what the coroutine waited on) to the Task, then drives the coroutine on."""

    __slots__ = ("coro", "yielded")

    def __init__(self, coro: Any, yielded: Any):
        self.coro, self.yielded = coro, yielded

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, value = self.coro, self.yielded
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # noqa: BLE001 - thrown in by the Task (a cancellation): passed on
                try:
                    value = coro.throw(exc)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    value = coro.send(sent)
                except StopIteration as done:
                    return done.value


def _address(info: Any) -> tuple[str, int] | None:
    if isinstance(info, tuple) and len(info) >= 2:
        return str(info[0]), int(info[1])
    return None


def _shown(address: tuple[str, int] | None) -> str:
    return "-" if address is None else f"{address[0]}:{address[1]}"
