"""A small threaded HTTP blob server on 127.0.0.1 for the http tier's tests.

It serves blobs by name at ``/blobs/<name>`` and ``/api/files?hash=<name>`` (GET and HEAD), and ``/healthz``.
``put(data)`` stores a blob under its SHA1 (``put(data, name)`` under any name). With ``token`` set, a request
without ``Authorization: Bearer <token>`` answers 401. ``answer(name, *kinds)`` makes the next requests for that
name answer each kind in turn (then normally again); ``always(name, kind)`` makes every one answer it. Kinds:
a status (``"401"``, ``"403"``, ``"404"``, ``"410"``, ``"429"``, ``"500"``, ``"503"``; with ``retry_after``
set, 429/503 carry ``Retry-After``), ``"short"`` (200 with the full Content-Length and half the body, then the
connection closes) and ``"slow"`` (the answer after ``slow_seconds``). ``requests`` counts requests per name;
``auth_seen`` keeps the Authorization headers received (tests check what was sent, never print it).
"""
from __future__ import annotations

import collections
import hashlib
import http.server
import threading
import time
from urllib.parse import parse_qs, urlsplit

__all__ = ["BlobServer"]


class BlobServer:
    def __init__(self, token: str | None = None, retry_after: float | None = None, slow_seconds: float = 0.5):
        self.token = token
        self.retry_after = retry_after
        self.slow_seconds = slow_seconds
        self.blobs: dict[str, bytes] = {}
        self.requests: collections.Counter[str] = collections.Counter()
        self.auth_seen: list[str | None] = []
        self._plans: dict[str, collections.deque[str]] = {}
        self._always: dict[str, str] = {}
        self._lock = threading.Lock()
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the server first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def put(self, data: bytes, name: str | None = None) -> str:
        name = name or hashlib.sha1(data).hexdigest()
        self.blobs[name] = bytes(data)
        return name

    def answer(self, name: str, *kinds: str) -> None:
        with self._lock:
            self._plans.setdefault(name, collections.deque()).extend(kinds)

    def always(self, name: str, kind: str) -> None:
        with self._lock:
            self._always[name] = kind

    def reset(self) -> None:
        with self._lock:
            self.blobs.clear()
            self.requests.clear()
            self.auth_seen.clear()
            self._plans.clear()
            self._always.clear()
            self.token = None
            self.retry_after = None

    def _next(self, name: str) -> str | None:
        with self._lock:
            plan = self._plans.get(name)
            if plan:
                return plan.popleft()
            return self._always.get(name)

    # --- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> BlobServer:
        owner = self

        class Handler(_Handler):
            server_owner = owner

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="blob-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = 1 << 16  # head and body leave in one write (flushed after each request), as a real server's would
    server_owner: BlobServer

    def log_message(self, format, *args) -> None:  # noqa: A002 - the base class's name
        pass

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_GET(self) -> None:
        self._serve(head=False)

    def _serve(self, head: bool) -> None:
        owner = self.server_owner
        parts = urlsplit(self.path)
        if parts.path == "/healthz":
            return self._send(200, b"ok", head)
        if parts.path.startswith("/blobs/"):
            name = parts.path[len("/blobs/"):]
        elif parts.path == "/api/files":
            name = (parse_qs(parts.query).get("hash") or [""])[0]
        else:
            return self._send(404, b"no such route", head)
        owner.requests[name] += 1
        auth = self.headers.get("Authorization")
        owner.auth_seen.append(auth)
        if owner.token is not None and auth != f"Bearer {owner.token}":
            return self._send(401, b"unauthorized", head)
        kind = owner._next(name)
        if kind == "slow":
            time.sleep(owner.slow_seconds)
            kind = None
        if kind == "short":
            data = owner.blobs.get(name, b"x" * 1000)
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return None
        if kind is not None:
            status = int(kind)
            extra = {"Retry-After": f"{owner.retry_after:g}"} if owner.retry_after and status in (429, 503) else {}
            return self._send(status, f"answer {status}".encode(), head, extra)
        data = owner.blobs.get(name)
        if data is None:
            return self._send(404, b"not found", head)
        return self._send(200, data, head)

    def _send(self, status: int, body: bytes, head: bool, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "application/octet-stream")
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)
