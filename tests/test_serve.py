"""``bitstore serve`` / ``bitstore.serve.app``: every route and status over a real HTTP connection on 127.0.0.1
(each test on both servers, bitstore's own and uvicorn, in a thread; a ``bitstore serve`` subprocess for SIGTERM),
a composite over moto's S3 with a local
cache, a failing tier (502, never 404), single flight, bounded concurrency, the token, metrics, ranges streamed,
and a second bitstore whose ``http`` tier reads from the first server."""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bitstore import (
    LocalRaw,
    NotFoundInStore,
    Sha1APISource,
    Sha1Cache,
    Sha1Composite,
    Sha1Store,
    Store,
    from_urls,
)
from bitstore.serve import app
from bitstore.serve.gateway import parse_range
from tests.servers.fixtures import TEST_RETRY
from tests.test_docs_async import _free_port
from tests.test_docs_async import serving as serving_on_uvicorn

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

BIG = 3 * 1024 * 1024 + 17
SERVERS = ["bitstore", "uvicorn"]


@contextlib.contextmanager
def serving_on_bitstore(gateway):
    """``gateway`` on bitstore's own server in a thread, on a free port of 127.0.0.1; yields its base URL."""
    from bitstore.serve.server import Server, bind

    sock = bind("127.0.0.1", 0)
    server = Server(gateway, shutdown_timeout=10)
    thread = threading.Thread(target=server.run, args=(sock,), daemon=True)
    thread.start()
    try:
        assert server.started.wait(30), "the server did not start"
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.stop()
        thread.join(30)
        sock.close()


@pytest.fixture(params=SERVERS)
def serving(request):
    """A context manager serving an app on each server in turn."""
    return serving_on_bitstore if request.param == "bitstore" else serving_on_uvicorn


def _sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


@pytest.fixture
def stack(s3, tmp_path):
    """Blobs in moto's S3 under ``gwy/blobs/``, and a composite: a local cache read first, then S3 (hits written
    back)."""
    s3.create_bucket("gwy")
    blobs = [b"gateway blob %d" % i for i in range(4)] + [os.urandom(BIG)]
    for data in blobs:
        s3.put("gwy", f"blobs/{_sha1(data)}", data)
    cache = tmp_path / "cache"
    composite = Sha1Composite()
    composite.append_cache(Sha1Cache(LocalRaw(cache), "", name="local"))
    composite.append_source(Sha1Store(s3.raw(), "s3://gwy/blobs/", name="s3"), cache_result=True)
    return composite, blobs, cache


def test_get_head_and_every_status(stack, serving):
    composite, blobs, cache = stack
    small = blobs[0]
    key = _sha1(small)
    with serving(app(composite)) as base, httpx.Client(base_url=base, timeout=30) as client:
        answer = client.get(f"/blobs/{key.upper()}")
        assert answer.status_code == 200 and answer.content == small
        assert answer.headers["content-length"] == str(len(small))
        assert answer.headers["content-type"] == "application/octet-stream"
        assert answer.headers["etag"] == f'"{key}"'
        assert answer.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert (cache / key).read_bytes() == small  # written back, as get does
        head = client.head(f"/blobs/{key}")
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-length"] == str(len(small)) and head.headers["etag"] == f'"{key}"'
        assert client.get(f"/blobs/{key}", headers={"If-None-Match": f'"{key}"'}).status_code == 304
        assert client.get(f"/blobs/{key}", headers={"If-None-Match": '"other"'}).status_code == 200
        assert client.get("/blobs/" + "0" * 40).status_code == 404
        assert client.head("/blobs/" + "0" * 40).status_code == 404
        assert client.get("/blobs/not-a-sha1").status_code == 400
        assert client.head("/blobs/not-a-sha1").status_code == 400
        assert client.get("/blob/" + key).status_code == 400  # a wrong path is never "missing"
        assert client.post(f"/blobs/{key}").status_code == 405
        assert client.get("/healthz").status_code == 200
        big = client.get(f"/blobs/{_sha1(blobs[-1])}")
        assert big.status_code == 200 and big.content == blobs[-1]


def test_ranges_are_streamed_from_open(stack, serving):
    composite, blobs, _ = stack
    data = blobs[-1]
    key = _sha1(data)
    with serving(app(composite)) as base, httpx.Client(base_url=base, timeout=60) as client:
        for header, (start, end) in [("bytes=0-9", (0, 9)), ("bytes=10-", (10, len(data) - 1)),
                                     ("bytes=-5", (len(data) - 5, len(data) - 1)),
                                     ("bytes=1048576-2097151", (1048576, 2097151))]:
            part = client.get(f"/blobs/{key}", headers={"Range": header})
            assert part.status_code == 206, header
            assert part.content == data[start:end + 1]
            assert part.headers["content-range"] == f"bytes {start}-{end}/{len(data)}"
            assert part.headers["content-length"] == str(end - start + 1)
        past = client.get(f"/blobs/{key}", headers={"Range": f"bytes={len(data)}-"})
        assert past.status_code == 416 and past.headers["content-range"] == f"bytes */{len(data)}"
        assert client.get("/blobs/" + "0" * 40, headers={"Range": "bytes=0-1"}).status_code == 404


class CountingFile(io.BytesIO):
    """A blob's file object that records each read's size."""

    def __init__(self, data: bytes, reads: list[int]):
        super().__init__(data)
        self.reads = reads

    def read(self, size: int = -1) -> bytes:
        self.reads.append(size)
        return super().read(size)


class OpenOnly(Store):
    """A store whose ``get`` must not be used: ranges and whole-blob reads of the range path go through ``open``."""

    def __init__(self, data: bytes):
        self.data, self.reads = data, []

    def is_valid(self, uri) -> bool:
        return uri == "blob"

    def get(self, uri) -> bytes:
        raise AssertionError("a range read fetched the whole blob")

    def open(self, uri):
        return CountingFile(self.data, self.reads)


def test_a_range_never_holds_the_whole_blob(serving):
    data = os.urandom(2 * 1024 * 1024)
    store = OpenOnly(data)
    gateway = app(store)
    with serving(gateway) as base, httpx.Client(base_url=base, timeout=30) as client:
        part = client.get("/blobs/blob", headers={"Range": "bytes=100-1500099"})
        assert part.status_code == 206 and part.content == data[100:1500100]
    assert store.reads and max(store.reads) <= gateway.chunk_size
    assert sum(store.reads) == 1500000


@given(size=st.integers(0, 10_000), first=st.integers(0, 12_000), last=st.integers(0, 12_000),
       form=st.sampled_from(["a-b", "a-", "-n"]))
def test_property_ranges(size, first, last, form):
    header = {"a-b": f"bytes={first}-{last}", "a-": f"bytes={first}-", "-n": f"bytes=-{last}"}[form].encode()
    span = parse_range(header, size)
    blob = bytes(range(256)) * (size // 256 + 1)
    blob = blob[:size]
    if form == "a-b" and last < first:
        assert span is None
    elif span == "unsatisfiable":
        assert (form != "-n" and first >= size) or (form == "-n" and (last == 0 or size == 0))
    else:
        start, end = span
        assert 0 <= start <= end < size
        expected = {"a-b": blob[first:last + 1], "a-": blob[first:], "-n": blob[-last:] if last else b""}[form]
        assert blob[start:end + 1] == expected


def test_a_failing_tier_is_502_never_404(s3, tmp_path, fault_proxy, serving):
    s3.create_bucket("gwf")
    data = b"behind a failing tier"
    s3.put("gwf", f"b/{_sha1(data)}", data)
    proxy = fault_proxy(s3.endpoint_url, rate=1.0, faults=["500"], match="/gwf/", methods=("GET", "HEAD"))
    composite = Sha1Composite()
    composite.append_cache(Sha1Cache(LocalRaw(tmp_path / "c"), ""))
    composite.append_source(Sha1Store(s3.raw(endpoint_url=proxy.url, retry=TEST_RETRY), "s3://gwf/b/"))
    with serving(app(composite)) as base, httpx.Client(base_url=base, timeout=60) as client:
        for key in (_sha1(data), "1" * 40):  # present, and absent: both unknowable while the tier fails
            assert client.get(f"/blobs/{key}").status_code == 502
            assert client.head(f"/blobs/{key}").status_code == 502
            assert client.get(f"/blobs/{key}", headers={"Range": "bytes=0-3"}).status_code == 502


def test_the_token(stack, serving):
    composite, blobs, _ = stack
    token = "s3cr3t-token-value"
    key = _sha1(blobs[0])
    with serving(app(composite, token=token)) as base, httpx.Client(base_url=base, timeout=30) as client:
        seen = []
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": token}):
            answer = client.get(f"/blobs/{key}", headers=headers)
            assert answer.status_code == 401 and answer.headers["www-authenticate"].startswith("Bearer")
            seen.append(answer.text + str(answer.headers))
        assert client.get("/metrics").status_code == 401
        assert client.get("/healthz").status_code == 200
        good = {"Authorization": f"Bearer {token}"}
        assert client.get(f"/blobs/{key}", headers=good).content == blobs[0]
        metrics = client.get("/metrics", headers=good)
        assert metrics.status_code == 200
        seen.append(metrics.text + str(metrics.headers))
        assert not any(token in text for text in seen)
    assert token not in repr(app(composite, token=token))


def test_metrics_per_tier(stack, serving):
    composite, blobs, _ = stack
    with serving(app(composite)) as base, httpx.Client(base_url=base, timeout=30) as client:
        for data in blobs[:3]:
            assert client.get(f"/blobs/{_sha1(data)}").status_code == 200
        assert client.get("/blobs/" + "0" * 40).status_code == 404
        text = client.get("/metrics").text
    lines = dict(line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    assert lines['bitstore_tier_hits_total{tier="s3"}'] == "3"
    assert lines['bitstore_tier_misses_total{tier="local"}'] == "4"  # three misses before S3, one absent key
    assert lines['bitstore_tier_cache_writes_total{tier="local"}'] == "3"
    assert lines['bitstore_http_responses_total{status="200"}'] == "3"
    assert lines['bitstore_http_responses_total{status="404"}'] == "1"
    assert 'bitstore_tier_latency_seconds{tier="s3",quantile="0.5"}' in lines
    assert "# TYPE bitstore_tier_calls_total counter" in text


class GatedAPI(Sha1APISource):
    """An API source whose calls wait on a gate; counts calls and the most at once."""

    def __init__(self, blobs: dict[str, bytes]):
        super().__init__()
        self.blobs, self.gate = blobs, threading.Event()
        self.calls, self.running, self.most = 0, 0, 0
        self._lock = threading.Lock()

    def api_get(self, sha1):
        with self._lock:
            self.calls += 1
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            self.gate.wait(60)
            return self.blobs.get(sha1)
        finally:
            with self._lock:
                self.running -= 1


def _until(condition, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def test_single_flight_and_bounded_concurrency(serving):
    blobs = {_sha1(b"%d" % i): b"%d" % i for i in range(6)}
    api = GatedAPI(blobs)
    gateway = app(api, max_concurrency=2)
    one = next(iter(blobs))

    async def requests(base: str, keys: list[str]) -> list:
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            return await asyncio.gather(*(client.get(f"/blobs/{k}") for k in keys))

    with serving(gateway) as base:
        results: list = []
        runner = threading.Thread(target=lambda: results.extend(asyncio.run(requests(base, [one] * 10))))
        runner.start()
        _until(lambda: gateway.single_flight_joins == 9 and api.calls == 1, "ten requests for one key")
        api.gate.set()
        runner.join(60)
        assert [r.status_code for r in results] == [200] * 10 and {r.content for r in results} == {blobs[one]}
        assert api.calls == 1
        api.gate.clear()
        others = [k for k in blobs if k != one]
        runner = threading.Thread(target=lambda: results.extend(asyncio.run(requests(base, others))))
        runner.start()
        _until(lambda: api.running == 2, "two calls at once")
        api.gate.set()
        runner.join(60)
        assert api.most == 2 and api.calls == 1 + len(others)


def test_a_second_bitstore_reads_from_the_first(stack, tmp_path, s3, fault_proxy, serving):
    """Another bitstore's ``http`` tier over the gateway: found, missing, written back to its own cache; a gateway
    whose tier fails (502) is a failure there, never "missing"."""
    composite, blobs, _ = stack
    with serving(app(composite)) as base:
        downstream = from_urls([f"{base}/blobs/{{sha1}}"], cache=f"file://{tmp_path}/downstream/")
        keys = [_sha1(b) for b in blobs[:3]] + ["2" * 40]
        results = list(downstream.get_many(keys, max_workers=4))
        assert [r.status for r in results] == ["found"] * 3 + ["missing"]
        assert [bytes(r.data) for r in results[:3]] == blobs[:3]
        assert all(r.cached for r in results[:3])
        with pytest.raises(NotFoundInStore):
            downstream.get("2" * 40)
    proxy = fault_proxy(s3.endpoint_url, rate=1.0, faults=["500"], match="/gwy/")
    failing = Sha1Composite().append_source(Sha1Store(s3.raw(endpoint_url=proxy.url), "s3://gwy/blobs/"))
    with serving(app(failing)) as base:
        downstream = from_urls([f"{base}/blobs/{{sha1}}"], attempts=2, base_delay=0.001)
        [result] = list(downstream.get_many([_sha1(blobs[1])]))
        assert result.status == "failed" and "502" in result.error


# --- the command ---------------------------------------------------------------------------------------------
def _spec(path: Path, cache: Path, endpoint: str, bucket: str) -> Path:
    path.write_text(textwrap.dedent(f"""
        keys = "sha1"

        [[tier]]
        type = "local"
        prefix = "{cache}/"
        role = "cache"

        [[tier]]
        type = "s3"
        prefix = "s3://{bucket}/blobs/"
        endpoint_url = "{endpoint}"
        cache_result = true
    """))
    return path


@pytest.mark.parametrize("server", SERVERS)
def test_the_command_serves_and_exits_0_on_sigterm_after_finishing_a_request(s3, tmp_path, fault_proxy, server):
    s3.create_bucket("cmd")
    data = b"held while the server is told to stop"
    key = _sha1(data)
    s3.put("cmd", f"blobs/{key}", data)
    proxy = fault_proxy(s3.endpoint_url, rate=1.0, faults=["hold"], match="/cmd/blobs/")
    spec = _spec(tmp_path / "s.toml", tmp_path / "cache", proxy.url, "cmd")
    port, token = _free_port(), "cmd-token-9f2c"
    environ = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent), "GW_TOKEN": token}
    server = subprocess.Popen([sys.executable, "-m", "bitstore.cli", "serve", "--spec", str(spec), "--port",
                               str(port), "--token-env", "GW_TOKEN", "--access-log", "--server", server], env=environ,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        _until(lambda: _healthy(base), "the server to start", 60)
        answers: list = []
        request = threading.Thread(target=lambda: answers.append(
            httpx.get(f"{base}/blobs/{key}", headers={"Authorization": f"Bearer {token}"}, timeout=60)))
        request.start()
        _until(lambda: proxy.stats["hold"] >= 1, "the request to reach S3")
        server.send_signal(signal.SIGTERM)
        _until(lambda: not _healthy(base), "the server to stop accepting")
        proxy.release()
        request.join(60)
        assert answers and answers[0].status_code == 200 and answers[0].content == data
        out, err = server.communicate(timeout=60)
        assert server.returncode == 0, err[-2000:]
        assert token not in out + err
        assert f"/blobs/{key}" in out + err  # the access log names paths
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_the_command_refuses_a_missing_token_variable(tmp_path):
    environ = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    environ.pop("NO_SUCH_TOKEN_VAR", None)
    spec = _spec(tmp_path / "s.toml", tmp_path / "c", "http://127.0.0.1:9", "x")
    run = subprocess.run([sys.executable, "-m", "bitstore.cli", "serve", "--spec", str(spec), "--token-env",
                          "NO_SUCH_TOKEN_VAR", "--port", str(_free_port())], env=environ, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 2 and "NO_SUCH_TOKEN_VAR" in run.stderr


def test_a_stack_of_local_tiers_is_read_on_the_servers_loop(tmp_path, serving):
    from bitstore import MemoryRaw
    from bitstore.serve.gateway import _all_read_on_loop

    data = b"on the loop"
    key = _sha1(data)
    local = Sha1Store(LocalRaw(tmp_path / "l"), "")
    local.put(key, data)
    composite = Sha1Composite().append_source(Sha1Store(MemoryRaw(), "mem://x/")).append_source(local)
    assert _all_read_on_loop(composite)
    assert not _all_read_on_loop(Sha1Composite().append_source(local, max_concurrency=2))
    assert not _all_read_on_loop(Sha1Composite().append_source(GatedAPI({})))
    with_write_back = Sha1Composite().append_cache(Sha1Cache(LocalRaw(tmp_path / "c"), ""))
    assert not _all_read_on_loop(with_write_back.append_source(local, cache_result=True))
    with serving(app(composite)) as base, httpx.Client(base_url=base, timeout=30) as client:
        answer = client.get(f"/blobs/{key}")
        assert answer.status_code == 200 and answer.content == data and answer.headers["etag"] == f'"{key}"'
        assert client.get("/blobs/" + "5" * 40).status_code == 404
        assert client.get("/blobs/zz").status_code == 400
        assert client.head(f"/blobs/{key}").headers["content-length"] == str(len(data))


@pytest.mark.parametrize("server", SERVERS)
def test_the_command_serves_tiers_given_by_url(tmp_path, server):
    data = b"served from a URL tier"
    key = _sha1(data)
    (tmp_path / "blobs").mkdir()
    (tmp_path / "blobs" / key).write_bytes(data)
    port = _free_port()
    environ = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    process = subprocess.Popen([sys.executable, "-m", "bitstore.cli", "serve", "--url", f"file://{tmp_path}/blobs/",
                                "--port", str(port), "--server", server], env=environ, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        _until(lambda: _healthy(base), "the server to start", 60)
        assert httpx.get(f"{base}/blobs/{key}", timeout=30).content == data
        assert httpx.get(f"{base}/blobs/{'3' * 40}", timeout=30).status_code == 404
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)
        assert process.returncode == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


@pytest.mark.parametrize("server", SERVERS)
def test_the_command_with_two_workers(tmp_path, server):
    """Two worker processes, each with its store from the spec: both answer, SIGTERM stops all, exit 0."""
    blobs = [b"two workers %d" % i for i in range(20)]
    folder = tmp_path / "blobs"
    folder.mkdir()
    for data in blobs:
        (folder / _sha1(data)).write_bytes(data)
    spec = tmp_path / "s.toml"
    spec.write_text(f'keys = "sha1"\n\n[[tier]]\ntype = "local"\nprefix = "{folder}/"\nrole = "cache"\n')
    port = _free_port()
    environ = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    process = subprocess.Popen([sys.executable, "-m", "bitstore.cli", "serve", "--spec", str(spec), "--port",
                                str(port), "--workers", "2", "--server", server], env=environ,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        _until(lambda: _healthy(base), "the server to start", 60)
        for data in blobs:  # a new connection each: the kernel hands them to either worker
            answer = httpx.get(f"{base}/blobs/{_sha1(data)}", timeout=30)
            assert answer.status_code == 200 and answer.content == data
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err[-2000:]
        assert not _healthy(base)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
