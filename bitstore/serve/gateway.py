"""The gateway: a raw ASGI app serving a store's blobs over HTTP, read-through (write-back as for ``get``).

Routes (every one but ``/healthz`` needs ``Authorization: Bearer <token>`` when a token is set, else 401):

- ``GET /blobs/{key}``: 200 with the bytes, ``Content-Length``, ``Content-Type: application/octet-stream``,
  ``ETag: "<key>"`` (the canonical key) and ``Cache-Control: public, max-age=31536000, immutable``. A single
  ``Range: bytes=...`` gives 206, streamed from ``store.open`` in chunks (never the whole blob in memory; 416 when
  it starts past the end). ``If-None-Match`` with the key's ETag (or ``*``) gives 304 (a blob under a content key
  never changes). 400 for an invalid key, 404 only when every tier said "not found", 502 when no tier had it and
  one failed. Concurrent requests for one key share one fetch (single flight).
- ``HEAD /blobs/{key}``: the same status and headers, by ``stat`` (nothing downloaded).
- ``GET /healthz``: 200 while serving. ``GET /metrics``: Prometheus text (``metrics``).
- Any other path is 400 (``no such route``), never 404: a client pointed at a wrong path must fail loudly,
  not conclude that its blobs are missing. Other methods are 405.

At most ``max_concurrency`` store calls at once (fetches, stats, opens, range reads); requests beyond wait.
Reads are driven as ``Store.aget`` drives them (cloud GETs on the server's loop, API and user tiers on a bounded
pool); tiers that ``reads_on_loop()`` (local files, memory) are read on the loop itself, as on the batch engine's
own loop: a hop to a thread costs more than the read. A stack of local tiers only is read at once, without a
flight, its first tier directly (``HashComposite.hit_reader``: verified and counted as ``get`` does, the walk taking
over on anything but a hit); on the lean server such a plain GET is answered without ASGI (``respond_now``: the
same status, headers and body). So is a hit in a first tier read locally in front of remote ones (a cache over S3:
``HashComposite.first_hit``); anything else there is left, uncounted, to the ASGI call and its single flight. The
token is compared in constant time and never logged or echoed.
"""
from __future__ import annotations

import asyncio
import hmac
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from ..core.composite import Composite
from ..core.hashed import KeyFamily
from ..core.store import Store
from ..engine.onloop import OneKey, in_thread
from ..ground.errors import InvalidURI, NotFoundInStore, short
from .metrics import render

__all__ = ["Gateway", "parse_range"]

logger = logging.getLogger(__name__)

CHUNK = 256 * 1024
CACHE_CONTROL = b"public, max-age=31536000, immutable"
OCTETS = b"application/octet-stream"
_PREFIX = "/blobs/"

Send = Callable[[dict], Awaitable[None]]


class Gateway:
    """The ASGI app (see the module doc). ``store`` is any ``Store``."""

    def __init__(self, store: Any, *, token: str | None = None, max_concurrency: int = 64, chunk_size: int = CHUNK):
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise ValueError(f"max_concurrency must be a positive int, not {max_concurrency!r}")
        if token is not None and (not isinstance(token, str) or not token):
            raise ValueError("token must be a non-empty string or None")
        self.store = store
        self.max_concurrency = max_concurrency
        self.chunk_size = chunk_size
        self.__token = None if token is None else ("Bearer " + token).encode()
        self._limit: asyncio.Semaphore | None = None
        self._flights: dict[Any, asyncio.Task] = {}
        self._keys_on_loop = _keys_on_loop(store)
        self._fetch = OneKey(store, inline=True)  # local tiers read on the server's own loop, cloud GETs there too
        self._all_inline = _all_read_on_loop(store)
        self._hit = _maker(store, "hit_reader") if self._all_inline else None  # the stack read at once
        self._first = None if self._all_inline else _maker(store, "first_hit")  # a cache in front of remote tiers
        self.responses: Counter[int] = Counter()
        self.single_flight_joins = 0
        self.in_flight = 0

    def __repr__(self) -> str:  # never the token
        return f"<Gateway over {getattr(self.store, 'name', type(self.store).__name__)!r}>"

    # --- ASGI ------------------------------------------------------------------------------------------
    async def __call__(self, scope: dict, receive: Callable[[], Awaitable[dict]], send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await _lifespan(receive, send)
            return
        if kind != "http":
            return
        self.in_flight += 1
        try:
            await self._http(scope, send)
        finally:
            self.in_flight -= 1

    async def _http(self, scope: dict, send: Send) -> None:
        method, path = scope["method"], scope["path"]
        head = method == "HEAD"
        if path == "/healthz":
            if method not in ("GET", "HEAD"):
                return await self._plain(send, 405, b"method not allowed\n", head, [(b"allow", b"GET, HEAD")])
            return await self._plain(send, 200, b"ok\n", head)
        if self.__token is not None and not self._authorized(scope):
            return await self._plain(send, 401, b"unauthorized\n", head,
                                     [(b"www-authenticate", b'Bearer realm="bitstore"')])
        if method not in ("GET", "HEAD"):
            return await self._plain(send, 405, b"method not allowed\n", head, [(b"allow", b"GET, HEAD")])
        if path == "/metrics":
            body = render(self.store, self).encode()
            return await self._plain(send, 200, body, head, content_type=b"text/plain; version=0.0.4; charset=utf-8")
        if not path.startswith(_PREFIX):
            return await self._plain(send, 400, b"no such route: blobs are served at /blobs/{key}\n", head)
        await self._blob(path[len(_PREFIX):], scope, send, head)

    def _authorized(self, scope: dict) -> bool:
        given = b""
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                given = value
                break
        return hmac.compare_digest(given, self.__token)

    # --- blobs -----------------------------------------------------------------------------------------
    async def _blob(self, key: str, scope: dict, send: Send, head: bool) -> None:
        if self._keys_on_loop:  # bitstore's own key check: a pattern match, here
            accepted, canonical = _accepts_and_canonical(self.store, key)
        else:
            accepted, canonical = await in_thread(_accepts_and_canonical, self.store, key)
        if not accepted:
            return await self._plain(send, 400, f"invalid key: {short(key, 100)!r}\n".encode(), head)
        etag = b'"' + str(canonical).encode() + b'"'
        if_none_match, wanted = _conditions(scope.get("headers", ()))
        if if_none_match is not None and _matches(if_none_match, etag):
            return await self._send(send, 304, [(b"etag", etag), (b"cache-control", CACHE_CONTROL)], b"", head)
        if head:
            return await self._head(key, etag, send)
        if wanted is not None:
            return await self._range(key, etag, wanted, send)
        try:
            if self._all_inline:  # every tier a local read: at once, on the loop (nothing to share a flight with)
                data = self._hit(canonical) if self._hit is not None else self.store.get(key)
            else:
                data = await self._single_flight(canonical, key)
        except Exception as exc:  # noqa: BLE001 - mapped to 400 / 404 / 502 in one place
            return await self._failed(send, exc, False)
        self.responses[200] += 1  # ``_send``, inline: the hit path
        await send({"type": "http.response.start", "status": 200, "headers": _blob_headers(etag, len(data))})
        await send({"type": "http.response.body", "body": data})

    async def _single_flight(self, canonical: Any, key: str) -> bytes:
        """The blob's bytes; concurrent requests for one key share one fetch (it goes on if a requester leaves)."""
        task = self._flights.get(canonical)
        if task is None:
            task = asyncio.ensure_future(self._limited(self._fetch.get, key))
            self._flights[canonical] = task
            task.add_done_callback(lambda done: self._landed(canonical, done))
        else:
            self.single_flight_joins += 1
        return await asyncio.shield(task)

    def _landed(self, canonical: Any, task: asyncio.Task) -> None:
        if self._flights.get(canonical) is task:
            del self._flights[canonical]
        if not task.cancelled():
            task.exception()  # retrieved here too: every requester may have left

    async def _limited(self, call: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        if self._limit is None:
            self._limit = asyncio.Semaphore(self.max_concurrency)
        async with self._limit:
            return await call(*args)

    async def _head(self, key: str, etag: bytes, send: Send) -> None:
        info = await self._limited(self.store.astat, key)
        status = {"found": 200, "missing": 404, "invalid": 400}.get(info.status, 502)
        if status == 200:
            return await self._send(send, 200, _blob_headers(etag, info.size), b"", True)
        await self._plain(send, status, b"", True)

    async def _range(self, key: str, etag: bytes, wanted: bytes, send: Send) -> None:
        """206 for one satisfiable range, streamed from ``store.open``; 416 past the end; a range the gateway does
        not serve (several, or malformed) is ignored, as HTTP allows: the whole blob, streamed, 200."""
        try:
            stream = await self._limited(in_thread, self.store.open, key)
        except Exception as exc:  # noqa: BLE001 - mapped to 400 / 404 / 502 in one place
            return await self._failed(send, exc, False)
        try:
            size = await in_thread(stream.seek, 0, 2)
            span = parse_range(wanted, size)
            if span == "unsatisfiable":
                return await self._send(send, 416, [(b"content-range", f"bytes */{size}".encode()),
                                                    (b"content-length", b"0")], b"", False)
            if span is None:
                start, end, status, extra = 0, size - 1, 200, []
            else:
                (start, end), status = span, 206
                extra = [(b"content-range", f"bytes {start}-{end}/{size}".encode())]
            length = end - start + 1
            await send({"type": "http.response.start", "status": status,
                        "headers": _blob_headers(etag, length) + [(b"accept-ranges", b"bytes")] + extra})
            self.responses[status] += 1
            await in_thread(stream.seek, start)
            left = length
            while left > 0:
                chunk = await self._limited(in_thread, stream.read, min(self.chunk_size, left))
                if not chunk:
                    raise OSError(f"the blob ended {left} bytes early")
                left -= len(chunk)
                await send({"type": "http.response.body", "body": bytes(chunk), "more_body": left > 0})
            if length == 0:
                await send({"type": "http.response.body", "body": b""})
        finally:
            await in_thread(stream.close)

    async def _failed(self, send: Send, exc: BaseException, head: bool) -> None:
        await self._plain(send, *_failure(exc), head)

    # --- the lean server's direct call --------------------------------------------------------------------
    def respond_now(self, method: str, path: str, headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes,
                                                                                               bytes] | None:
        """The answer to a plain ``GET /blobs/{key}`` of an all-local stack, made at once without ASGI (the lean
        server asks this first): ``(status, header lines, body)``, the same status, headers and body as the ASGI
        call gives, the same counting. None for anything else (a range, a HEAD, an invalid key, a refused token,
        another route): the ASGI call then answers it. Over a stack whose first tier is read locally and the others
        remotely (a cache in front of a cloud source), only a hit in that first tier (``HashComposite.first_hit``);
        a miss, a failure, a corrupt copy, a key remembered missing or in flight is left, uncounted, to the ASGI
        call (single flight, write-back), and no remote tier is ever asked here."""
        if (self._hit is None and self._first is None) or method != "GET" or not path.startswith(_PREFIX):
            return None
        given = if_none_match = None
        for name, value in headers:
            if name == b"authorization":
                if given is None:
                    given = value
            elif name == b"if-none-match":
                if_none_match = value
            elif name == b"range":
                return None
        if self.__token is not None and not hmac.compare_digest(given or b"", self.__token):
            return None
        canonical = self.store.FAMILY.canonical(path[len(_PREFIX):])
        if canonical is None:
            return None
        etag = b'"' + canonical.encode() + b'"'
        if if_none_match is not None and _matches(if_none_match, etag):
            self.responses[304] += 1
            return 304, b"etag: " + etag + _CACHE_LINE, b""
        if self._hit is None:  # a first tier read here, the rest remote: a hit at once, anything else as ever
            if canonical in self._flights:
                return None  # joins the fetch in flight (as the ASGI call would, the first tier not asked again)
            data = self._first(canonical)
            if data is None:
                return None  # nothing counted: the ASGI call fetches it (single flight), asking the first tier too
        else:
            try:
                data = self._hit(canonical)
            except Exception as exc:  # noqa: BLE001 - mapped to 400 / 404 / 502 in one place
                status, body = _failure(exc)
                self.responses[status] += 1
                return status, _PLAIN_LINES % len(body), body
        self.responses[200] += 1
        return 200, _BLOB_LINES % (len(data), etag), data

    # --- responses -------------------------------------------------------------------------------------
    async def _plain(self, send: Send, status: int, body: bytes, head: bool, extra: list | None = None,
                     content_type: bytes = b"text/plain; charset=utf-8") -> None:
        headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())] + (extra or [])
        await self._send(send, status, headers, body, head)

    async def _send(self, send: Send, status: int, headers: list, body: bytes, head: bool) -> None:
        self.responses[status] += 1
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if head else body})


def parse_range(value: bytes, size: int) -> tuple[int, int] | str | None:
    """``Range: bytes=a-b`` / ``a-`` / ``-n`` against a blob of ``size`` bytes: ``(first, last)`` inclusive,
    ``"unsatisfiable"``, or None when the header is to be ignored (malformed, another unit, several ranges)."""
    try:
        text = value.decode("latin-1").strip()
    except Exception:  # noqa: BLE001
        return None
    unit, _, spec = text.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash or not (first.isdigit() or last.isdigit()) or (first and not first.isdigit()) or (
            last and not last.isdigit()):
        return None
    if not first:  # the last n bytes
        n = int(last)
        if n == 0 or size == 0:
            return "unsatisfiable"
        return max(0, size - n), size - 1
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        return "unsatisfiable"
    return start, min(int(last), size - 1) if last else size - 1


_CACHE_LINE = b"\r\ncache-control: " + CACHE_CONTROL + b"\r\n"
_BLOB_LINES = b"content-type: " + OCTETS + b"\r\ncontent-length: %d\r\netag: %s" + _CACHE_LINE
_PLAIN_LINES = b"content-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n"


def _failure(exc: BaseException) -> tuple[int, bytes]:
    """The status and body for a fetch's error: 400 invalid, 404 only when missing, 502 when a tier failed."""
    if isinstance(exc, InvalidURI):
        status = 400
    elif isinstance(exc, NotFoundInStore):  # every tier said "not found" (a corrupt copy is not a copy)
        status = 404
    else:  # a tier failed: never reported as missing
        status = 502
        logger.warning("a tier failed: %s", short(str(exc), 300))
    return status, (short(str(exc), 500) + "\n").encode()


def _maker(store: Any, method: str) -> Callable[[Any], Any] | None:
    """``store.<method>()`` (``hit_reader``, ``first_hit``) of a store keyed by a hash family, else None."""
    make = getattr(store, method, None)
    try:
        return make() if callable(make) and isinstance(getattr(type(store), "FAMILY", None), KeyFamily) else None
    except Exception:  # noqa: BLE001 - the general path then
        return None


def _blob_headers(etag: bytes, length: int) -> list[tuple[bytes, bytes]]:
    return [(b"content-type", OCTETS), (b"content-length", str(length).encode()), (b"etag", etag),
            (b"cache-control", CACHE_CONTROL)]


def _conditions(headers: Any) -> tuple[bytes | None, bytes | None]:
    """The request's ``If-None-Match`` and ``Range`` (the last of each, as a dict of the headers would keep; no
    such dict per request)."""
    if_none_match = wanted = None
    for name, value in headers:
        if name == b"if-none-match":
            if_none_match = value
        elif name == b"range":
            wanted = value
    return if_none_match, wanted


def _matches(if_none_match: bytes | None, etag: bytes) -> bool:
    if if_none_match is None:
        return False
    for tag in if_none_match.split(b","):
        tag = tag.strip()
        if tag.startswith(b"W/"):
            tag = tag[2:]
        if tag == b"*" or tag == etag:
            return True
    return False


def _accepts_and_canonical(store: Any, key: str) -> tuple[bool, Any]:
    """``Store._accepted_canonical``: the store's own (one match for a hash-keyed composite), or ``Store``'s for an
    object that only has ``accepts`` and ``canonical_key``."""
    check = getattr(store, "_accepted_canonical", None)
    return check(key) if check is not None else Store._accepted_canonical(store, key)


def _all_read_on_loop(store: Any) -> bool:
    """Whether every read of ``store`` is a local one cheap enough for the loop (``reads_on_loop``: a file, a dict),
    its key check bitstore's own, no tier waits on a limiter and none writes back (a bounded cache's write may
    wait for another process)."""
    if not _keys_on_loop(store):
        return False
    if isinstance(store, Composite):
        if type(store)._fetch is not Composite._fetch or type(store).get is not Composite.get:
            return False
        if any(t.limited or t.write_back for t in store.tiers):  # a limiter waits; a write-back may (a flock)
            return False
        stores = [t.store for t in store.tiers]
        if store.cache is not None:
            stores.append(store.cache)
        return bool(stores) and all(_reads_on_loop(s) for s in stores)
    return _reads_on_loop(store)


def _reads_on_loop(store: Any) -> bool:
    try:
        return bool(store.reads_on_loop())
    except Exception:  # noqa: BLE001
        return False


def _keys_on_loop(store: Any) -> bool:
    try:
        return bool(store.keys_on_loop())
    except Exception:  # noqa: BLE001
        return False


async def _lifespan(receive: Callable[[], Awaitable[dict]], send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
