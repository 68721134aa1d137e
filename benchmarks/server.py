"""A minimal in-memory S3/GCS object server on 127.0.0.1, fast enough not to be the benchmark's bottleneck.

One asyncio process answers, from a dict in memory, exactly the requests the benchmarked clients send:

- S3 (path style): ``GET/HEAD /bucket/key``, ``PUT /bucket`` (create), ``HEAD /bucket``, ``PUT /bucket/key``
  (plain, chunked or aws-chunked bodies, kept in memory), ``GET /`` (ListBuckets, which the original library
  calls to test credentials), ``GET /bucket?list-type=2`` (ListObjectsV2: ``prefix``, ``delimiter``,
  ``max-keys``, ``start-after``, ``continuation-token``, ``encoding-type=url``) and ``GET /bucket``
  (ListObjects V1, which rclone uses in some modes: ``prefix``, ``delimiter``, ``marker``, ``max-keys``,
  ``encoding-type``), keys in UTF-8 binary order as S3 lists them, at most 1000 a page; 404 as S3 XML
  (``NoSuchKey``, ``NoSuchBucket``).
- GCS: ``GET /download/storage/v1/b/B/o/O?alt=media`` and ``GET /storage/v1/b/B/o/O?alt=media`` (JSON API
  media), ``GET /storage/v1/b/B/o/O`` (object metadata JSON), ``GET /storage/v1/b/B`` (bucket metadata,
  which google-cloud-storage 3 fetches once per bucket in the background), ``GET /B/O`` (XML API, the
  S3 form above, which obstore uses); 404 as GCS JSON on the JSON API.

Every object request waits ``delay`` seconds with ``asyncio.sleep`` (no thread is held, nothing spins),
modelling a remote store's latency; ListBuckets and bucket metadata are answered at once. Control endpoints
under ``/_bench/`` (never delayed) set the delay, fill a bucket with deterministic blobs keyed by their SHA1,
and report request counts, the most recent request lines and the server's own CPU time. ``ServerProcess``
runs it in a child process.

Run alone: ``python -m benchmarks.server [--port 0] [--delay-ms 0] [--log]``; it prints ``PORT <n>``.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import bisect
import hashlib
import itertools
import json
import os
import random
import subprocess
import sys
import time
from collections import Counter, deque
from dataclasses import dataclass
from email.utils import formatdate
from http.client import HTTPConnection
from urllib.parse import parse_qs, quote, unquote, urlsplit

__all__ = ["ObjectServer", "ServerProcess", "blob_for", "serve"]

_S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
_REASONS = {200: "OK", 204: "No Content", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            206: "Partial Content", 409: "Conflict", 416: "Range Not Satisfiable"}
#: Requests about no object (a client's access check, bucket metadata) are answered at once, whatever the delay.
_UNDELAYED = ("s3:list-buckets", "gcs:bucket")
_LAST_MODIFIED = formatdate(1735689600, usegmt=True)  # 2025-01-01, fixed so responses are reproducible


def blob_for(seed: int, index: int, size: int) -> bytes:
    """The deterministic blob number ``index`` of a fill (the runner and the server agree on it)."""
    return random.Random(f"{seed}:{index}").randbytes(size)


@dataclass(frozen=True, slots=True)
class _Object:
    data: bytes
    md5_hex: str
    md5_b64: str
    crc32c_b64: str

    @classmethod
    def of(cls, data: bytes) -> _Object:
        import google_crc32c

        md5 = hashlib.md5(data)
        crc = google_crc32c.Checksum(data).digest()
        return cls(data, md5.hexdigest(), base64.b64encode(md5.digest()).decode(), base64.b64encode(crc).decode())


class _Response:
    __slots__ = ("status", "headers", "body", "head_only")

    def __init__(self, status: int, headers: dict[str, str], body: bytes = b"", head_only: bool = False):
        self.status, self.headers, self.body, self.head_only = status, headers, body, head_only


class ObjectServer:
    """The request handler and the objects, independent of the socket layer."""

    def __init__(self, delay: float = 0.0, log: bool = False):
        self.delay = delay
        self.log = log
        self.buckets: dict[str, dict[str, _Object]] = {}
        self.counts: Counter[str] = Counter()
        self.recent: deque[str] = deque(maxlen=50)
        self._sorted: dict[str, list[str]] = {}  # a bucket's keys in listing order, dropped when it changes

    # --- routing -----------------------------------------------------------------------------------
    async def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> _Response:
        parts = urlsplit(target)
        path, query = parts.path, parse_qs(parts.query)
        if path.startswith("/_bench/"):
            return self._control(method, path[len("/_bench/"):], query)
        route, bucket, name = self._route(path, query)
        if route == "s3:bucket" and method == "GET":
            route = "s3:list-v2" if query.get("list-type") == ["2"] else "s3:list-v1"
        self.counts[f"{method} {route}"] += 1
        self.recent.append(f"{method} {target}")
        if self.log:
            print(f"{method} {target}", file=sys.stderr, flush=True)
        if self.delay and route not in _UNDELAYED:
            await asyncio.sleep(self.delay)
        if method in ("GET", "HEAD"):
            if route == "s3:list-buckets":
                return self._list_buckets()
            if route in ("gcs:media", "s3:object"):
                return self._object(bucket, name, head_only=method == "HEAD", gcs_json=route == "gcs:media",
                                    byte_range=headers.get("range") if method == "GET" else None)
            if route == "gcs:metadata":
                return self._metadata(bucket, name)
            if route == "gcs:bucket":
                return self._bucket_metadata(bucket)
            if route in ("s3:list-v2", "s3:list-v1"):
                return self._list_objects(bucket, query, v2=route == "s3:list-v2")
            if route == "s3:bucket":  # HEAD: HeadBucket
                found = bucket in self.buckets
                return self._s3_error(404, "NoSuchBucket", bucket, "", True) if not found else _Response(200, {})
        if method == "PUT" and route == "s3:bucket":
            self.buckets.setdefault(bucket, {})
            self._sorted.pop(bucket, None)
            return _Response(200, {"Location": f"/{bucket}"})
        if method == "PUT" and route == "s3:object":
            return self._put(bucket, name, headers, body)
        return _Response(405, {"Content-Type": "text/plain"}, f"{method} {route} is not served\n".encode())

    @staticmethod
    def _route(path: str, query: dict[str, list[str]]) -> tuple[str, str, str]:
        for prefix in ("/download/storage/v1/b/", "/storage/v1/b/"):
            if path.startswith(prefix):
                bucket, sep, rest = path[len(prefix):].partition("/o/")
                if not sep:
                    return ("gcs:bucket" if "/" not in bucket else "gcs:unknown"), unquote(bucket), ""
                media = query.get("alt") == ["media"]
                return ("gcs:media" if media else "gcs:metadata"), unquote(bucket), unquote(rest)
        if path == "/":
            return "s3:list-buckets", "", ""
        bucket, _, name = path[1:].partition("/")
        return ("s3:object" if name else "s3:bucket"), unquote(bucket), unquote(name)

    # --- answers -----------------------------------------------------------------------------------
    def _lookup(self, bucket: str, name: str) -> _Object | str:
        objects = self.buckets.get(bucket)
        if objects is None:
            return "NoSuchBucket"
        found = objects.get(name)
        return "NoSuchKey" if found is None else found

    def _object(self, bucket: str, name: str, *, head_only: bool, gcs_json: bool,
                byte_range: str | None = None) -> _Response:
        found = self._lookup(bucket, name)
        if isinstance(found, str):
            return self._gcs_404(bucket, name) if gcs_json else self._s3_error(404, found, bucket, name, head_only)
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Length": str(len(found.data)),
            "ETag": f'"{found.md5_hex}"',
            "Last-Modified": _LAST_MODIFIED,
            "Accept-Ranges": "bytes",
            "x-goog-generation": "1",
            "x-goog-metageneration": "1",
            "x-goog-stored-content-length": str(len(found.data)),
            "x-goog-hash": f"crc32c={found.crc32c_b64},md5={found.md5_b64}",
        }
        if byte_range:
            return self._ranged(found.data, headers, byte_range)
        return _Response(200, headers, found.data, head_only)

    @staticmethod
    def _ranged(data: bytes, headers: dict[str, str], byte_range: str) -> _Response:
        """A ``Range: bytes=a-b`` / ``bytes=a-`` / ``bytes=-n`` GET as S3 answers it: 206 with the part that exists
        (an end past the object's is cut to it), 416 when the range starts at or past the end."""
        size = len(data)
        first, _, last = byte_range.strip().removeprefix("bytes=").partition("-")
        try:
            if first:
                start, stop = int(first), (int(last) + 1 if last else size)
            else:
                start, stop = max(0, size - int(last)), size
        except ValueError:
            return _Response(200, headers, data)  # not a range S3 understands: ignored, as S3 ignores it
        if start >= size:
            body = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InvalidRange</Code><Message>The requested '
                    f'range is not satisfiable</Message><RangeRequested>{byte_range}</RangeRequested>'
                    f'<ActualObjectSize>{size}</ActualObjectSize></Error>').encode()
            return _Response(416, {"Content-Type": "application/xml", "Content-Range": f"bytes */{size}"}, body)
        stop = min(stop, size)
        part = data[start:stop]
        return _Response(206, dict(headers, **{"Content-Length": str(len(part)),
                                               "Content-Range": f"bytes {start}-{stop - 1}/{size}"}), part)

    def _metadata(self, bucket: str, name: str) -> _Response:
        found = self._lookup(bucket, name)
        if isinstance(found, str):
            return self._gcs_404(bucket, name)
        resource = {
            "kind": "storage#object", "id": f"{bucket}/{name}/1", "name": name, "bucket": bucket,
            "generation": "1", "metageneration": "1", "contentType": "application/octet-stream",
            "size": str(len(found.data)), "md5Hash": found.md5_b64, "crc32c": found.crc32c_b64,
            "etag": found.md5_hex, "storageClass": "STANDARD",
            "timeCreated": "2025-01-01T00:00:00.000Z", "updated": "2025-01-01T00:00:00.000Z",
            "selfLink": f"/storage/v1/b/{quote(bucket, safe='')}/o/{quote(name, safe='')}",
            "mediaLink": f"/download/storage/v1/b/{quote(bucket, safe='')}/o/{quote(name, safe='')}?alt=media",
        }
        return _json(200, resource)

    def _bucket_metadata(self, bucket: str) -> _Response:
        if bucket not in self.buckets:
            message = f"The specified bucket does not exist: {bucket}"
            error = {"code": 404, "message": message,
                     "errors": [{"message": message, "domain": "global", "reason": "notFound"}]}
            return _json(404, {"error": error})
        return _json(200, {"kind": "storage#bucket", "id": bucket, "name": bucket, "projectNumber": "0",
                           "metageneration": "1", "location": "US-CENTRAL1", "locationType": "region",
                           "storageClass": "STANDARD", "etag": "CAE=", "timeCreated": "2025-01-01T00:00:00.000Z",
                           "updated": "2025-01-01T00:00:00.000Z"})

    def _list_buckets(self) -> _Response:
        names = "".join(
            f"<Bucket><Name>{_xml_escape(b)}</Name><CreationDate>2025-01-01T00:00:00.000Z</CreationDate></Bucket>"
            for b in sorted(self.buckets)
        )
        body = (f'<?xml version="1.0" encoding="UTF-8"?><ListAllMyBucketsResult xmlns="{_S3_NS}">'
                f"<Owner><ID>bench</ID><DisplayName>bench</DisplayName></Owner><Buckets>{names}</Buckets>"
                "</ListAllMyBucketsResult>")
        return _Response(200, {"Content-Type": "application/xml"}, body.encode())

    def _put(self, bucket: str, name: str, headers: dict[str, str], body: bytes) -> _Response:
        objects = self.buckets.get(bucket)
        if objects is None:
            return self._s3_error(404, "NoSuchBucket", bucket, name)
        if "aws-chunked" in headers.get("content-encoding", ""):
            body = _decode_chunked(body)
        obj = _Object.of(body)
        if name not in objects:
            self._sorted.pop(bucket, None)
        objects[name] = obj
        return _Response(200, {"ETag": f'"{obj.md5_hex}"'})

    def _keys(self, bucket: str) -> list[str]:
        """The bucket's keys in S3's listing order (UTF-8 bytes), sorted once per change of the bucket."""
        keys = self._sorted.get(bucket)
        if keys is None:
            keys = self._sorted[bucket] = sorted(self.buckets[bucket], key=lambda k: k.encode())
        return keys

    def _list_objects(self, bucket: str, query: dict[str, list[str]], *, v2: bool) -> _Response:
        """ListObjectsV2 (``v2``) or ListObjects (V1): one page of keys after the marker, with common prefixes
        when a delimiter is given."""
        if bucket not in self.buckets:
            return self._s3_error(404, "NoSuchBucket", bucket, "")

        def arg(name: str) -> str:
            return query.get(name, [""])[0]

        prefix, delimiter, encode = arg("prefix"), arg("delimiter"), arg("encoding-type") == "url"
        try:
            max_keys = min(1000, int(arg("max-keys") or 1000))
            if max_keys < 0:
                raise ValueError
            token = arg("continuation-token")
            after = _untoken(token) if token else arg("start-after" if v2 else "marker")
        except ValueError:
            return self._s3_error(400, "InvalidArgument", bucket, "")
        objects, keys = self.buckets[bucket], self._keys(bucket)
        start = max(bisect.bisect_left(keys, prefix.encode(), key=str.encode),
                    bisect.bisect_right(keys, after.encode(), key=str.encode))
        contents: list[str] = []
        prefixes: list[str] = []
        last, truncated = "", False
        # A marker that is a common prefix (the last item of the previous page): its keys were listed as it.
        done = after if delimiter and after.startswith(prefix) and delimiter in after[len(prefix):] else None
        for key in itertools.islice(keys, start, None):
            if not key.startswith(prefix):
                break
            if done is not None and key.startswith(done):
                continue
            cut = key.find(delimiter, len(prefix)) if delimiter else -1
            common = key[:cut + len(delimiter)] if cut >= 0 else None
            if common is not None and prefixes and prefixes[-1] == common:
                continue
            if len(contents) + len(prefixes) == max_keys:
                truncated = True
                break
            if common is not None:
                prefixes.append(common)
                last = common
            else:
                contents.append(key)
                last = key

        def esc(text: str) -> str:
            return _xml_escape(quote(text, safe="/") if encode else text)

        parts = [f'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="{_S3_NS}">',
                 f"<Name>{_xml_escape(bucket)}</Name><Prefix>{esc(prefix)}</Prefix><MaxKeys>{max_keys}</MaxKeys>"]
        if delimiter:
            parts.append(f"<Delimiter>{esc(delimiter)}</Delimiter>")
        if encode:
            parts.append("<EncodingType>url</EncodingType>")
        parts.append(f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>")
        if v2:
            parts.append(f"<KeyCount>{len(contents) + len(prefixes)}</KeyCount>")
            if token:
                parts.append(f"<ContinuationToken>{_xml_escape(token)}</ContinuationToken>")
            if arg("start-after"):
                parts.append(f"<StartAfter>{esc(arg('start-after'))}</StartAfter>")
            if truncated:
                parts.append(f"<NextContinuationToken>{_token(last)}</NextContinuationToken>")
        else:
            parts.append(f"<Marker>{esc(arg('marker'))}</Marker>")
            if truncated:  # S3 sends it only with a delimiter; always here (clients fall back to the last key)
                parts.append(f"<NextMarker>{esc(last)}</NextMarker>")
        for key in contents:
            obj = objects[key]
            parts.append(f"<Contents><Key>{esc(key)}</Key><LastModified>2025-01-01T00:00:00.000Z</LastModified>"
                         f"<ETag>&quot;{obj.md5_hex}&quot;</ETag><Size>{len(obj.data)}</Size>"
                         "<StorageClass>STANDARD</StorageClass></Contents>")
        parts.extend(f"<CommonPrefixes><Prefix>{esc(p)}</Prefix></CommonPrefixes>" for p in prefixes)
        parts.append("</ListBucketResult>")
        return _Response(200, {"Content-Type": "application/xml"}, "".join(parts).encode())

    @staticmethod
    def _s3_error(status: int, code: str, bucket: str, name: str, head_only: bool = False) -> _Response:
        message = {"NoSuchKey": "The specified key does not exist.", "InvalidArgument": "Invalid argument.",
                   "NoSuchBucket": "The specified bucket does not exist"}.get(code, code)
        body = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{message}</Message>'
                f"<BucketName>{_xml_escape(bucket)}</BucketName><Key>{_xml_escape(name)}</Key>"
                "<RequestId>bench</RequestId></Error>")
        return _Response(status, {"Content-Type": "application/xml"}, body.encode(), head_only)

    @staticmethod
    def _gcs_404(bucket: str, name: str) -> _Response:
        message = f"No such object: {bucket}/{name}"
        error = {"code": 404, "message": message,
                 "errors": [{"message": message, "domain": "global", "reason": "notFound"}]}
        return _json(404, {"error": error})

    # --- control -----------------------------------------------------------------------------------
    def _control(self, method: str, command: str, query: dict[str, list[str]]) -> _Response:
        def arg(name: str, default: str | None = None) -> str:
            values = query.get(name)
            if values:
                return values[0]
            if default is None:
                raise KeyError(name)
            return default

        try:
            if command == "delay" and method == "POST":
                self.delay = float(arg("ms")) / 1000
                return _json(200, {"delay_ms": self.delay * 1000})
            if command == "fill" and method == "POST":
                return _json(200, {"keys": self._fill(arg("bucket"), arg("prefix", ""), int(arg("n")),
                                                      int(arg("size")), int(arg("seed", "0")))})
            if command == "drop" and method == "POST":
                self.buckets.pop(arg("bucket"), None)
                self._sorted.pop(arg("bucket"), None)
                return _json(200, {})
            if command == "stats" and method == "GET":
                return _json(200, {"counts": dict(self.counts), "recent": list(self.recent),
                                   "cpu_s": time.process_time(), "delay_ms": self.delay * 1000})
        except (KeyError, ValueError) as exc:
            return _json(400, {"error": f"bad argument: {exc}"})
        return _json(404, {"error": f"unknown control {method} {command}"})

    def _fill(self, bucket: str, prefix: str, n: int, size: int, seed: int) -> list[str]:
        objects = self.buckets.setdefault(bucket, {})
        self._sorted.pop(bucket, None)
        keys = []
        for i in range(n):
            obj = _Object.of(blob_for(seed, i, size))
            sha1 = hashlib.sha1(obj.data).hexdigest()
            objects[f"{prefix}{sha1}"] = obj
            keys.append(sha1)
        return keys


def _json(status: int, payload: object) -> _Response:
    return _Response(status, {"Content-Type": "application/json; charset=UTF-8"}, json.dumps(payload).encode())


def _token(key: str) -> str:
    """A ListObjectsV2 continuation token: the last key or common prefix of the page, opaque to the client."""
    return base64.urlsafe_b64encode(key.encode()).decode()


def _untoken(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (ValueError, UnicodeDecodeError) as exc:  # binascii.Error is a ValueError
        raise ValueError(f"bad continuation token {token!r}") from exc


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _decode_chunked(body: bytes) -> bytes:
    """Decode an HTTP/1.1 chunked or S3 ``aws-chunked`` body (chunk extensions and trailers ignored)."""
    out, pos = bytearray(), 0
    while True:
        end = body.index(b"\r\n", pos)
        size = int(body[pos:end].split(b";", 1)[0], 16)
        pos = end + 2
        if size == 0:
            return bytes(out)
        out += body[pos:pos + size]
        pos += size + 2


# --- the socket layer --------------------------------------------------------------------------------
async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if headers.get("transfer-encoding", "").lower() == "chunked":
        raw = bytearray()
        while True:
            line = await reader.readuntil(b"\r\n")
            raw += line
            size = int(line.split(b";", 1)[0], 16)
            if size == 0:
                while (trailer := await reader.readuntil(b"\r\n")) != b"\r\n":
                    raw += trailer
                raw += b"\r\n"
                return _decode_chunked(bytes(raw))
            raw += await reader.readexactly(size + 2)
    length = int(headers.get("content-length", "0") or 0)
    return await reader.readexactly(length) if length else b""


async def _connection(server: ObjectServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            lines = head.decode("latin-1").split("\r\n")
            method, target, version = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            if headers.get("expect", "").lower() == "100-continue":
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            body = await _read_body(reader, headers)
            response = await server.handle(method, target, headers, body)
            keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
            response.headers.setdefault("Content-Length", str(len(response.body)))
            response.headers["Connection"] = "keep-alive" if keep_alive else "close"
            status_line = f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'Status')}\r\n"
            header_block = "".join(f"{k}: {v}\r\n" for k, v in response.headers.items())
            writer.write(f"{status_line}{header_block}\r\n".encode("latin-1"))
            if response.body and not response.head_only and method != "HEAD":
                writer.write(response.body)
            await writer.drain()
            if not keep_alive:
                return
    except (ConnectionError, asyncio.IncompleteReadError):
        return
    finally:
        writer.close()


async def serve(port: int = 0, delay: float = 0.0, log: bool = False) -> None:
    """Serve on 127.0.0.1 until cancelled; prints ``PORT <n>`` once listening."""
    state = ObjectServer(delay=delay, log=log)
    server = await asyncio.start_server(
        lambda r, w: _connection(state, r, w), host="127.0.0.1", port=port, backlog=1024, limit=1 << 20
    )
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


class ServerProcess:
    """The server in a child process (so its CPU is not the client's), with a small control client."""

    def __init__(self, delay_ms: float = 0.0, log: bool = False):
        args = [sys.executable, "-m", "benchmarks.server", "--delay-ms", str(delay_ms)] + (["--log"] if log else [])
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, cwd=root)
        line = self.process.stdout.readline()
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError(f"benchmark server did not start (said {line!r})")
        self.port = int(line.split()[1])
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def _call(self, method: str, path: str, timeout: float = 600) -> dict:
        conn = HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path)
            response = conn.getresponse()
            payload = json.loads(response.read())
        finally:
            conn.close()
        if response.status != 200:
            raise RuntimeError(f"benchmark server: {payload}")
        return payload

    def set_delay(self, ms: float) -> None:
        self._call("POST", f"/_bench/delay?ms={ms}")

    def fill(self, bucket: str, prefix: str, n: int, size: int, seed: int = 0) -> list[str]:
        """Store ``n`` deterministic blobs of ``size`` bytes under ``prefix + sha1``; returns the SHA1s."""
        query = f"bucket={quote(bucket)}&prefix={quote(prefix)}&n={n}&size={size}&seed={seed}"
        return self._call("POST", f"/_bench/fill?{query}")["keys"]

    def drop(self, bucket: str) -> None:
        self._call("POST", f"/_bench/drop?bucket={quote(bucket)}")

    def stats(self) -> dict:
        return self._call("GET", "/_bench/stats")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--log", action="store_true", help="print every object request line to stderr")
    args = parser.parse_args(argv)
    try:
        asyncio.run(serve(args.port, args.delay_ms / 1000, args.log))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
