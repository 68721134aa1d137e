"""The lean server behind ``bitstore serve``: ``http11.HttpConnection`` on uvloop (when installed), one process or
several forked after the listening socket is bound (extra ``serve``).

``Server(app).serve(sock)`` serves until ``stop()`` (any thread) or SIGTERM / SIGINT (in the main thread): it then
stops accepting, closes idle connections, lets the requests in flight finish (at most ``shutdown_timeout``
seconds; then their connections are cut) and returns. The app's ASGI lifespan (``lifespan``) starts before the first
connection is taken and shuts down after the last request. ``serve_forked(make_app, sock, workers)`` runs ``workers``
processes, each building its app after the fork (``make_app``: its own store, its own clients) and serving the
shared socket; the parent passes SIGTERM / SIGINT on, restarts a worker that died, and returns once every worker
has stopped.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from email.utils import formatdate
from typing import Any

from .http11 import ConnectionState, HttpConnection
from .lifespan import Lifespan

__all__ = ["Server", "bind", "serve_forked", "new_loop", "reuse_port_works"]

logger = logging.getLogger("bitstore.serve")

BACKLOG = 2048
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def bind(host: str, port: int, *, listen: bool = True, reuse_port: bool = False) -> socket.socket:
    """A TCP socket bound to ``host:port`` (IPv4 or IPv6, by what ``host`` resolves to), listening unless told not
    to; ``reuse_port``: other sockets of this user may bind the same address (``SO_REUSEPORT``)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                         flags=socket.AI_PASSIVE)[0]
    return _bound(family, kind, proto, address, listen, reuse_port)


def _bound(family: int, kind: int, proto: int, address: Any, listen: bool, reuse_port: bool) -> socket.socket:
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        if listen:
            sock.listen(BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def reuse_port_works() -> bool:
    """Whether each worker can listen on a socket of its own (``SO_REUSEPORT``: the kernel spreads connections
    evenly over them; one shared socket lets whichever worker wakes first take a burst of new connections)."""
    return hasattr(socket, "SO_REUSEPORT") and sys.platform.startswith("linux")


def new_loop() -> asyncio.AbstractEventLoop:
    """A uvloop loop when uvloop is installed, else asyncio's."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with the extra (not on Windows)
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class Server:
    """Serves an ASGI ``app`` on a bound socket (see the module doc)."""

    def __init__(self, app: Any, *, keep_alive_timeout: float = 5.0, header_timeout: float = 30.0,
                 shutdown_timeout: float = 30.0, access_log: bool = False, lifespan: bool = True):
        self.app = app
        self.lifespan = lifespan
        self.keep_alive_timeout = keep_alive_timeout
        self.header_timeout = header_timeout
        self.shutdown_timeout = shutdown_timeout
        self.access_log = access_log
        self.started = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._stop_asked = False
        self.state: ConnectionState | None = None  # the live connections, once serving

    def run(self, sock: socket.socket) -> None:
        """``serve(sock)`` on a new event loop (uvloop when installed), in this thread."""
        with asyncio.Runner(loop_factory=new_loop) as runner:
            runner.run(self.serve(sock))

    def stop(self) -> None:
        """Ask the server to stop (from any thread, or a signal handler)."""
        self._stop_asked = True
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:  # the loop has closed: it stopped already
                pass

    async def serve(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        self._loop, self._stop = loop, asyncio.Event()
        if self._stop_asked:
            self._stop.set()
        state = ConnectionState(self.app, loop, keep_alive_timeout=self.keep_alive_timeout,
                                header_timeout=self.header_timeout, access_log=self.access_log)
        self.state = state
        lifespan = None
        if self.lifespan:  # the app's startup before the first connection (LifespanFailed: nothing served)
            lifespan = Lifespan(self.app, timeout=self.shutdown_timeout)
            await lifespan.startup()
            if lifespan.supported:
                state.lifespan_state = lifespan.state
        try:
            await self._serve(sock, loop, state)
        finally:
            if lifespan is not None:
                await lifespan.shutdown()

    async def _serve(self, sock: socket.socket, loop: asyncio.AbstractEventLoop, state: ConnectionState) -> None:
        server = await loop.create_server(lambda: HttpConnection(state), sock=sock, backlog=BACKLOG)
        handled = _add_signal_handlers(loop, self.stop)
        ticker = loop.create_task(_tick(state))
        self.started.set()
        try:
            await self._stop.wait()
        finally:
            server.close()  # no new connections (the socket is closed in this process)
            state.stopping = True
            for conn in list(state.connections):
                conn.shutdown()
            deadline = loop.time() + self.shutdown_timeout
            while (state.connections or state.tasks) and loop.time() < deadline:
                await asyncio.sleep(0.02)
            for conn in list(state.connections):
                conn.abort()
            for task in list(state.tasks):
                task.cancel()
            if state.tasks:
                await asyncio.wait(list(state.tasks), timeout=5)
            ticker.cancel()
            for sig in handled:
                loop.remove_signal_handler(sig)


async def _tick(state: ConnectionState) -> None:
    """Each second: the ``Date`` header, and idle connections closed."""
    while True:
        state.date = b"date: " + formatdate(time.time(), usegmt=True).encode() + b"\r\n"
        now = state.loop.time()
        for conn in list(state.connections):
            conn.check_idle(now)
        await asyncio.sleep(1.0)


def _add_signal_handlers(loop: asyncio.AbstractEventLoop, stop: Callable[[], None]) -> list[int]:
    if threading.current_thread() is not threading.main_thread():
        return []
    handled = []
    for sig in _STOP_SIGNALS:
        try:
            loop.add_signal_handler(sig, stop)
        except (NotImplementedError, RuntimeError, ValueError):  # pragma: no cover - not on this platform
            continue
        handled.append(sig)
    return handled


# --- several processes ---------------------------------------------------------------------------------
#: A worker that dies sooner than this after it started, this many times in a row, stops the server.
_QUICK_DEATH, _QUICK_DEATHS = 2.0, 5


def serve_forked(make_app: Callable[[], Any], sock: socket.socket, workers: int, **options: Any) -> int:
    """Serve ``sock``'s address from ``workers`` forked processes (see the module doc); the exit code (0 after a
    clean stop, 1 when workers kept dying at start). A ``sock`` bound with ``SO_REUSEPORT`` and not listening
    (``bind(..., listen=False, reuse_port=True)``) holds the address while each worker listens on a socket of its
    own; a listening one is shared by the workers."""
    own_sockets = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 0
    children: dict[int, float] = {}
    stopping = False

    def on_signal(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True
        sock.close()  # with the workers' sockets closed too, new connections are refused
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def start() -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                for sig in _STOP_SIGNALS:
                    signal.signal(sig, signal.SIG_DFL)
                listening = sock
                if own_sockets:
                    listening = _bound(sock.family, sock.type, sock.proto, sock.getsockname(), True, True)
                    sock.close()
                Server(make_app(), **options).run(listening)
                code = 0
            except BaseException:  # noqa: BLE001 - reported, then the worker ends
                logger.exception("a worker failed")
            finally:
                logging.shutdown()
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        children[pid] = time.monotonic()

    previous = {sig: signal.signal(sig, on_signal) for sig in _STOP_SIGNALS}
    quick = 0
    code = 0
    try:
        for _ in range(workers):
            start()
        while children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            began = children.pop(pid, None)
            if began is None or stopping:
                continue
            quick = quick + 1 if time.monotonic() - began < _QUICK_DEATH else 0
            logger.warning("worker %d ended (%s); %s", pid, _status_text(status),
                           "stopping: workers keep dying at start" if quick >= _QUICK_DEATHS else "starting another")
            if quick >= _QUICK_DEATHS:
                code = 1
                on_signal(signal.SIGTERM, None)
            else:
                start()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
    return code


def _status_text(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {os.WTERMSIG(status)}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"
