"""A fault-injecting HTTP proxy on 127.0.0.1 (asyncio, in its own thread) in front of moto or fake-gcs-server.

Per request it either forwards to the upstream server or injects one fault:

- ``"500"``, ``"503"``, ``"429"``: that status with an S3-style XML error body;
- ``"slowdown"``: 503 with S3's ``SlowDown`` code;
- ``"reset"``: the connection is reset (RST) without an answer;
- ``"stall"``: nothing is sent for ``stall_seconds`` (set it above the client's read timeout), then the
  connection is closed;
- ``"truncate"``: the upstream answer is forwarded with its full Content-Length but half its body, then the
  connection is closed;
- ``"silent"``: the connection is accepted and the request read, then nothing is ever sent (until the proxy
  stops);
- ``"hold"``: the request is read and held until ``release()`` is called, then forwarded and answered
  (``stats["released"]`` counts those answered or found gone);
- ``"trickle"``, ``"slow"``: the upstream answer is forwarded, its head at once and its body paced at
  ``bytes_per_second`` (in small chunks, several a second when the rate allows, so each arrives well within a
  read-idle timeout). Use a few bytes a second for a trickle that never ends, a steady healthy rate for "slow".

Injected error statuses carry ``Retry-After: <retry_after>`` when ``retry_after`` is set. Their body is S3-style
XML, or for a GCS JSON API path (``/storage/``, ``/download/``, ``/upload/``) a GCS JSON error
(``{"error": {"code", "message", "errors": [{"reason"}]}}``), as each service answers on that path.

Which requests fail: every request for a path in ``fail_paths`` (a hopeless object); with ``fail_first=N``,
the first N requests for each (method, path) fail and later ones are forwarded; otherwise each request fails
with probability ``rate``. Kinds are drawn from ``faults`` by a ``random.Random(seed)``, so a run is
reproducible. Only ``methods`` are faulted (GET by default: writes and bucket creation pass). The proxy
stops itself after ``lifetime`` seconds; ``stats`` counts requests, forwards and each fault kind, and
``requests`` counts each (method, path) seen. With ``match``, only requests whose path contains that string can
be faulted (all others are forwarded), so a client's own checks (list buckets, bucket metadata) pass.
Requests are forwarded with ``Host`` set to the upstream's address (so fake-gcs-server's public host matches),
or, with ``preserve_host``, as the client sent it (so an AWS SigV4 signature, which covers it, stays valid).
With ``ignore_ranges``, requests are forwarded without their ``Range`` header: an endpoint that ignores ranges and
answers the whole object (200).
"""
from __future__ import annotations

import asyncio
import collections
import json
import random
import socket
import struct
import threading
from urllib.parse import unquote, urlsplit

__all__ = ["FaultProxy", "FAULTS", "KINDS"]

#: The default kinds drawn at random (each ends within the proxy's ``stall_seconds``).
FAULTS = ("500", "503", "slowdown", "429", "reset", "stall", "truncate")
#: Every kind, including those that hold a request for long (asked for explicitly).
KINDS = (*FAULTS, "silent", "hold", "trickle", "slow")
_ERRORS = {"500": (500, "InternalError"), "503": (503, "ServiceUnavailable"), "slowdown": (503, "SlowDown"),
           "429": (429, "TooManyRequests")}
#: GCS JSON API reasons for the same statuses.
_GCS_REASONS = {500: "backendError", 503: "backendError", 429: "rateLimitExceeded"}
_GCS_JSON_PATHS = ("/storage/", "/download/", "/upload/")
_PACED = ("trickle", "slow")
_REASONS = {200: "OK", 429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}
_HOP = {b"connection", b"keep-alive", b"transfer-encoding", b"content-length", b"proxy-connection"}
_LIMIT = 1 << 20


class FaultProxy:
    def __init__(self, upstream: str, *, rate: float = 0.0, faults: tuple[str, ...] | list[str] = FAULTS,
                 fail_first: int = 0, methods: tuple[str, ...] = ("GET",), seed: int = 0,
                 stall_seconds: float = 3.0, lifetime: float = 600.0, fail_paths=(), retry_after: float | None = None,
                 bytes_per_second: float = 8.0, match: str | None = None, preserve_host: bool = False,
                 ignore_ranges: bool = False):
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.lifetime = lifetime
        self.preserve_host = preserve_host
        self.ignore_ranges = ignore_ranges
        self.stats: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        self.requests: collections.Counter[tuple[str, str]] = collections.Counter()
        self._attempts: collections.Counter[tuple[str, str]] = collections.Counter()
        self.retry_after: float | None = None
        self.bytes_per_second = bytes_per_second
        self.match: str | None = None
        self.configure(rate=rate, faults=faults, fail_first=fail_first, methods=methods, seed=seed,
                       stall_seconds=stall_seconds, fail_paths=fail_paths, retry_after=retry_after,
                       bytes_per_second=bytes_per_second, match=match)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def configure(self, *, rate: float | None = None, faults=None, fail_first: int | None = None,
                  methods=None, seed: int | None = None, stall_seconds: float | None = None,
                  fail_paths=None, retry_after: float | None = None, bytes_per_second: float | None = None,
                  match: str | None = None) -> FaultProxy:
        """Change the fault plan (takes effect for the next request); a new ``seed`` also forgets attempts.
        ``retry_after`` and ``match`` are replaced by each call that gives them (pass ``0``/``""`` to clear)."""
        with self._lock:
            if rate is not None:
                if not 0.0 <= rate <= 1.0:
                    raise ValueError("rate must be within [0, 1]")
                self.rate = rate
            if faults is not None:
                unknown = set(faults) - set(KINDS)
                if unknown or not faults:
                    raise ValueError(f"faults must be a non-empty subset of {KINDS}, not {sorted(faults)}")
                self.faults = tuple(faults)
            if fail_first is not None:
                self.fail_first = fail_first
            if methods is not None:
                self.methods = tuple(m.upper() for m in methods)
            if stall_seconds is not None:
                self.stall_seconds = stall_seconds
            if fail_paths is not None:
                self.fail_paths = frozenset(fail_paths)
            if retry_after is not None:
                self.retry_after = retry_after or None
            if bytes_per_second is not None:
                if bytes_per_second <= 0:
                    raise ValueError("bytes_per_second must be > 0")
                self.bytes_per_second = bytes_per_second
            if match is not None:
                self.match = match or None
            if seed is not None:
                self._rng = random.Random(seed)
                self._attempts.clear()
        return self

    # --- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> FaultProxy:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="fault-proxy", daemon=True)
        self._thread.start()
        if not ready.wait(10) or not self.port:
            raise RuntimeError("fault proxy did not start")
        return self

    def release(self, *, hold_later: bool = False) -> None:
        """Forward every request held (``"hold"``), and from now on each as it comes; with ``hold_later``, only
        those held now: later ones are held in turn (until the next ``release``, or the proxy stops)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._release, hold_later)

    def _release(self, hold_later: bool) -> None:
        self._released.set()  # the requests held now wait on this one
        if hold_later:
            self._released = asyncio.Event()

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            loop.call_soon_threadsafe(self._stop_event.set)
            thread.join(10)

    def _run(self, ready: threading.Event) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._serve(ready))
        finally:
            self._loop.close()

    async def _serve(self, ready: threading.Event) -> None:
        self._stop_event = asyncio.Event()
        self._released = asyncio.Event()
        server = await asyncio.start_server(self._client, "127.0.0.1", 0, limit=_LIMIT)
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        try:
            await asyncio.wait_for(self._stop_event.wait(), self.lifetime)
        except asyncio.TimeoutError:
            pass
        server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- per connection --------------------------------------------------------------------------------
    def _choose(self, method: str, path: str) -> str | None:
        with self._lock:
            self.stats["requests"] += 1
            self.requests[(method, path)] += 1
            if method not in self.methods or (self.match is not None and self.match not in path):
                self.stats["forwarded"] += 1
                return None
            if path in self.fail_paths:
                failing = True
            elif self.fail_first:
                self._attempts[(method, path)] += 1
                failing = self._attempts[(method, path)] <= self.fail_first
            else:
                failing = self._rng.random() < self.rate
            kind = self._rng.choice(self.faults) if failing else None
            self.stats[kind or "forwarded"] += 1
            return kind

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await _read_message(reader, is_request=True, writer=writer)
                if request is None:
                    break
                head, body = request
                method, path = head[0].split(b" ")[:2]
                kind = self._choose(method.decode(), unquote(path.decode().split("?", 1)[0]))
                if kind in _ERRORS:
                    await self._inject_error(writer, kind, path.decode())
                    continue
                if kind == "silent":
                    await asyncio.Event().wait()  # never set: cancelled when the proxy stops
                    return
                if kind == "hold":
                    await self._released.wait()
                    try:
                        status_line, headers, payload = await self._forward(head, body, method)
                        writer.write(_head(status_line, headers, None if method == b"HEAD" else len(payload)) + payload)
                        await writer.drain()
                    finally:
                        with self._lock:
                            self.stats["released"] += 1
                    continue
                if kind == "reset":
                    _reset(writer)
                    return
                if kind == "stall":
                    await asyncio.sleep(self.stall_seconds)
                    _reset(writer)
                    return
                status_line, headers, payload = await self._forward(head, body, method)
                if kind == "truncate" and len(payload) > 1:
                    writer.write(_head(status_line, headers, len(payload)) + payload[: len(payload) // 2])
                    await writer.drain()
                    return  # closed (FIN) by the finally clause, mid-body
                length = None if method == b"HEAD" else len(payload)  # a HEAD keeps its announced length
                if kind in _PACED:
                    writer.write(_head(status_line, headers, length))
                    await writer.drain()
                    await self._paced(writer, payload)
                    continue
                writer.write(_head(status_line, headers, length) + payload)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError,
                asyncio.CancelledError):
            pass  # the client went away, sent garbage, or the proxy is stopping
        finally:
            writer.close()

    async def _inject_error(self, writer: asyncio.StreamWriter, kind: str, path: str) -> None:
        status, code = _ERRORS[kind]
        headers = []
        if self.retry_after is not None:
            headers.append((b"Retry-After", b"%d" % round(self.retry_after)))
        if path.split("?", 1)[0].startswith(_GCS_JSON_PATHS):
            headers.append((b"Content-Type", b"application/json; charset=UTF-8"))
            body = _error_json(status, _GCS_REASONS.get(status, "backendError"))
        else:
            headers.append((b"Content-Type", b"application/xml"))
            body = _error_xml(code)
        await _respond(writer, status, headers, body)

    async def _paced(self, writer: asyncio.StreamWriter, payload: bytes) -> None:
        """Send ``payload`` at ``bytes_per_second``: chunks every 50 ms, or one byte at a time when slower."""
        rate = self.bytes_per_second
        chunk = max(1, int(rate * 0.05))
        interval = chunk / rate
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i, offset in enumerate(range(0, len(payload), chunk)):
            delay = start + i * interval - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            writer.write(payload[offset:offset + chunk])
            await writer.drain()

    async def _forward(self, head: list[bytes], body: bytes, method: bytes) -> tuple[bytes, list, bytes]:
        reader, writer = await asyncio.open_connection(*self.upstream, limit=_LIMIT)
        try:
            dropped = (b"connection", b"keep-alive", b"proxy-connection", b"expect")  # the body is read: no 100
            if not self.preserve_host:
                dropped += (b"host",)
            if self.ignore_ranges:
                dropped += (b"range",)
            lines = [head[0]]
            for line in head[1:]:
                name = line.split(b":", 1)[0].strip().lower()
                if name not in dropped:
                    lines.append(line)
            if not self.preserve_host:
                lines.append(b"Host: " + f"{self.upstream[0]}:{self.upstream[1]}".encode())
            lines.append(b"Connection: close")
            writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
            await writer.drain()
            response = await _read_message(reader, is_request=False, no_body=method == b"HEAD")
            if response is None:
                raise ConnectionError("upstream closed without answering")
            rhead, payload = response
            hop = _HOP - {b"content-length"} if method == b"HEAD" else _HOP  # a HEAD's length is the object's
            headers = [line for line in rhead[1:] if line.split(b":", 1)[0].strip().lower() not in hop]
            return rhead[0], headers, payload
        finally:
            writer.close()


async def _read_message(reader: asyncio.StreamReader, is_request: bool, no_body: bool = False,
                        writer: asyncio.StreamWriter | None = None):
    """(head lines, body) of one HTTP/1.1 message, the body de-chunked for responses; None at EOF. A request that
    says ``Expect: 100-continue`` (botocore's PUTs) is answered ``100 Continue`` on ``writer`` before its body is
    read (the upstream is then asked without the header: its own 100 would be taken for the answer)."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise
        return None
    head = raw[:-4].split(b"\r\n")
    fields = {}
    for line in head[1:]:
        name, _, value = line.partition(b":")
        fields[name.strip().lower()] = value.strip()
    status = 0 if is_request else int(head[0].split(b" ")[1])
    if no_body or status in (204, 304) or 100 <= status < 200:
        return head, b""
    if writer is not None and fields.get(b"expect", b"").lower() == b"100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        await writer.drain()
    if fields.get(b"transfer-encoding", b"").lower() == b"chunked":
        raw_body, decoded = await _read_chunked(reader)
        return head, raw_body if is_request else decoded
    if b"content-length" in fields:
        return head, await reader.readexactly(int(fields[b"content-length"]))
    return head, b"" if is_request else await reader.read()


async def _read_chunked(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """The chunked body as sent (forwarded as is for requests) and decoded (for responses)."""
    raw, decoded = [], []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        raw.append(size_line)
        size = int(size_line.split(b";")[0].strip(), 16)
        if size == 0:
            while True:  # trailers, up to the empty line
                line = await reader.readuntil(b"\r\n")
                raw.append(line)
                if line == b"\r\n":
                    return b"".join(raw), b"".join(decoded)
        chunk = await reader.readexactly(size + 2)
        raw.append(chunk)
        decoded.append(chunk[:-2])


def _head(status_line: bytes, headers: list[bytes], length: int | None) -> bytes:
    lines = [status_line, *headers, *([] if length is None else [b"Content-Length: %d" % length]),
             b"Connection: keep-alive"]
    return b"\r\n".join(lines) + b"\r\n\r\n"


async def _respond(writer: asyncio.StreamWriter, status: int, headers: list[tuple[bytes, bytes]],
                   body: bytes) -> None:
    status_line = b"HTTP/1.1 %d %s" % (status, _REASONS.get(status, "Error").encode())
    writer.write(_head(status_line, [k + b": " + v for k, v in headers], len(body)) + body)
    await writer.drain()


def _error_xml(code: str) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>injected by the fault proxy</Message></Error>").encode()


def _error_json(status: int, reason: str) -> bytes:
    error = {"code": status, "message": "injected by the fault proxy",
             "errors": [{"message": "injected by the fault proxy", "domain": "global", "reason": reason}]}
    return json.dumps({"error": error}).encode()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (SO_LINGER 0), as a crashed or overloaded server would."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()
