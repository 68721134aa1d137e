"""The lean server's direct answer (``Gateway.respond_now``) and the direct first-tier read
(``HashComposite.hit_reader``) keep every contract behaviour: the bytes on the wire are the ASGI call's, a corrupt
copy is never served as 200, a failing tier is 502, a miss 404, counters and statistics move as before; and the
lean server's ASGI lifespan (startup before serving, shutdown after, a failed startup serves nothing)."""
from __future__ import annotations

import asyncio
import hashlib
import os
import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bitstore import InvalidDataFound, LocalRaw, NotFoundInStore, Sha1Cache, Sha1Composite, Sha1Store
from bitstore.ground.errors import FetchFailed
from bitstore.serve import app

pytest.importorskip("httptools")
from bitstore.serve.lifespan import LifespanFailed  # noqa: E402
from bitstore.serve.server import Server, bind  # noqa: E402
from tests.test_serve_http11 import Reader, running  # noqa: E402


def _sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


GOOD = [b"good blob %d " % i * (i + 3) for i in range(3)]
CORRUPT_KEY = _sha1(b"the bytes this key names")
TOKEN = "s3cret"


def _stack(tmp_path, second: bool = False, **composite):
    """A local cache tier (verified reads), optionally a second local tier holding the good copy of the corrupt key."""
    store = Sha1Composite(**composite).append_cache(Sha1Cache(LocalRaw(tmp_path / "cache"), ""))
    for d in GOOD:
        store.put(_sha1(d), d)
    (tmp_path / "cache" / CORRUPT_KEY).write_bytes(b"not the bytes of its key")
    if second:
        (tmp_path / "second").mkdir()
        (tmp_path / "second" / CORRUPT_KEY).write_bytes(b"the bytes this key names")
        store.append_source(Sha1Store(LocalRaw(tmp_path / "second"), "", verify=True))
    return store


class AsgiOnly:
    """The gateway without its direct answer: every request through the ASGI call."""

    def __init__(self, gateway):
        self.gateway = gateway

    async def __call__(self, scope, receive, send):
        await self.gateway(scope, receive, send)


def _exchange(port: int, raw: bytes) -> bytes:
    """Everything the server answers to ``raw`` (the request asks the connection to close)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(raw)
        out = b""
        while chunk := conn.recv(1 << 16):
            out += chunk
    return out


def _without_date(answer: bytes) -> bytes:
    return b"\r\n".join(line for line in answer.split(b"\r\n") if not line.lower().startswith(b"date:"))


KEYS = [_sha1(d) for d in GOOD] + [CORRUPT_KEY, "0" * 40, "nope", _sha1(GOOD[0]).upper(), "sha1://" + _sha1(GOOD[1])]
HEADERS = [b"", b"If-None-Match: \"%s\"\r\n" % _sha1(GOOD[0]).encode(), b"If-None-Match: W/\"x\", *\r\n",
           b"Range: bytes=2-5\r\n", b"Authorization: Bearer wrong\r\n"]


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """The same stack served twice: directly answered, and through ASGI only."""
    tmp = tmp_path_factory.mktemp("direct")
    store = _stack(tmp, second=True)
    direct, asgi = app(store, token=TOKEN), app(store, token=TOKEN)
    assert direct._hit is not None
    answered = []
    respond_now = direct.respond_now

    def spied(*args):
        answer = respond_now(*args)
        answered.append(answer is not None)
        return answer

    direct.respond_now = spied
    with running(direct) as (_, port_direct), running(AsgiOnly(asgi)) as (_, port_asgi):
        yield port_direct, port_asgi, answered


@given(key=st.sampled_from(KEYS), extra=st.sampled_from(HEADERS), version=st.sampled_from(["1.1", "1.0"]),
       method=st.sampled_from(["GET", "HEAD"]), authorized=st.booleans())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_the_direct_answer_is_the_asgi_answer_byte_for_byte(both, key, extra, version, method, authorized):
    port_direct, port_asgi, answered = both
    answered.clear()
    auth = b"Authorization: Bearer %s\r\n" % TOKEN.encode() if authorized else b""
    raw = (b"%s /blobs/%s HTTP/%s\r\nHost: x\r\n%s%sConnection: close\r\n\r\n"
           % (method.encode(), key.encode(), version.encode(), auth, extra))
    direct, asgi = _exchange(port_direct, raw), _exchange(port_asgi, raw)
    assert direct.startswith(b"HTTP/1.1 ")
    assert _without_date(direct) == _without_date(asgi)
    plain = method == "GET" and authorized and key != "nope" and not extra.startswith(b"Range")  # first token wins
    assert answered == [plain]  # answered directly exactly when it can be


def test_keep_alive_and_pipelining_on_the_direct_path(tmp_path):
    store = _stack(tmp_path)
    gateway = app(store)
    keys = [_sha1(d) for d in GOOD]
    with running(gateway) as (_, port), socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(b"".join(b"GET /blobs/%s HTTP/1.1\r\nHost: x\r\n\r\n" % k.encode() for k in keys * 3))
        reader = Reader(conn)
        for d in GOOD * 3:
            status, headers, body = reader.response()
            assert (status, body, headers["etag"]) == (200, d, f'"{_sha1(d)}"')
            assert "connection" not in headers
        conn.sendall(b"GET /blobs/%s HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" % keys[0].encode())
        status, headers, body = reader.response()
        assert (status, body, headers["connection"]) == (200, GOOD[0], "keep-alive")
        conn.sendall(b"GET /blobs/%s HTTP/1.0\r\n\r\n" % keys[1].encode())
        status, headers, body = reader.response()
        assert (status, body, headers["connection"]) == (200, GOOD[1], "close")
        assert reader.closed()
    assert gateway.responses[200] == 11


def test_a_corrupt_copy_is_never_served_and_counts_as_a_miss(tmp_path):
    store = _stack(tmp_path)
    gateway = app(store)
    status, lines, body = gateway.respond_now("GET", "/blobs/" + CORRUPT_KEY, [])
    assert status == 404 and b"do not match" in body
    with running(gateway) as (_, port):
        answer = _exchange(port, b"GET /blobs/%s HTTP/1.1\r\nConnection: close\r\n\r\n" % CORRUPT_KEY.encode())
    assert answer.startswith(b"HTTP/1.1 404 ") and b"not the bytes" not in answer
    [snapshot] = store.stats().values()
    assert (snapshot.calls, snapshot.hits, snapshot.misses) == (2, 0, 2)
    assert gateway.responses[404] == 2 and gateway.responses[200] == 0


def test_after_a_corrupt_first_copy_the_next_tier_serves_the_right_bytes(tmp_path):
    store = _stack(tmp_path, second=True)
    gateway = app(store)
    status, _, body = gateway.respond_now("GET", "/blobs/" + CORRUPT_KEY, [])
    assert (status, body) == (200, b"the bytes this key names")
    first, second = store.stats().values()
    assert (first.calls, first.misses, second.calls, second.hits) == (1, 1, 1, 1)


def test_hits_are_counted_in_statistics_responses_and_metrics(tmp_path):
    store = _stack(tmp_path)
    gateway = app(store)
    for d in GOOD:
        status, lines, body = gateway.respond_now("GET", "/blobs/" + _sha1(d), [])
        assert (status, body) == (200, d)
        assert b"content-length: %d\r\n" % len(d) in lines
    [snapshot] = store.stats().values()
    assert (snapshot.calls, snapshot.hits, snapshot.bytes) == (3, 3, sum(map(len, GOOD)))
    with running(gateway) as (_, port):
        answer = _exchange(port, b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert b'bitstore_http_responses_total{status="200"} 3\n' in answer
    assert b'tier="local:' in answer and b"} 3\n" in answer
    assert gateway.responses[200] == 4  # three blobs and the metrics


def test_a_failing_tier_is_502_never_404(tmp_path):
    store = _stack(tmp_path)
    key = _sha1(b"a fifo sits where the blob would be")
    os.mkfifo(tmp_path / "cache" / key)
    status, _, body = app(store).respond_now("GET", "/blobs/" + key, [])
    assert status == 502 and b"not a regular file" in body
    [snapshot] = store.stats().values()
    assert snapshot.failures == 1


def test_a_key_remembered_missing_takes_the_walk(tmp_path):
    store = _stack(tmp_path, missing_ttl=60)
    gateway = app(store)
    key = _sha1(b"absent")
    assert gateway.respond_now("GET", "/blobs/" + key, [])[0] == 404
    (tmp_path / "cache" / key).write_bytes(b"absent")  # behind the store's back: still remembered missing
    assert gateway.respond_now("GET", "/blobs/" + key, [])[0] == 404
    [snapshot] = store.stats().values()
    assert snapshot.calls == 1  # the second answer came from the memory of misses, as for get
    store.forget_missing(key)
    assert gateway.respond_now("GET", "/blobs/" + key, [])[:3:2] == (200, b"absent")


def test_the_hit_reader_is_the_walk_for_every_outcome(tmp_path):
    store = _stack(tmp_path, second=True)
    read = store.hit_reader()
    assert read is not None
    for d in GOOD:
        assert read(_sha1(d)) == store.get(_sha1(d)) == d
    assert read(CORRUPT_KEY) == store.get(CORRUPT_KEY)
    with pytest.raises(NotFoundInStore) as direct:
        read("1" * 40)
    with pytest.raises(NotFoundInStore) as walked:
        store.get("1" * 40)
    assert str(direct.value) == str(walked.value)
    alone = _stack(tmp_path / "alone")
    with pytest.raises(NotFoundInStore) as corrupt:
        alone.hit_reader()(CORRUPT_KEY)
    assert not isinstance(corrupt.value, InvalidDataFound) and "do not match" in str(corrupt.value)
    os.mkfifo(tmp_path / "alone" / "cache" / ("2" * 40))
    with pytest.raises(FetchFailed):
        alone.hit_reader()("2" * 40)


def test_no_hit_reader_where_the_walk_must_do_more(tmp_path):
    local = Sha1Cache(LocalRaw(tmp_path), "")
    assert Sha1Composite().append_cache(local, max_concurrency=2).hit_reader() is None  # a limiter
    assert Sha1Composite().hit_reader() is None  # no tier

    class OwnKeys(Sha1Composite):
        def is_valid(self, uri):
            return super().is_valid(uri) and uri.startswith("a")

    assert OwnKeys().append_cache(local).hit_reader() is None
    remote_first = Sha1Composite().append_source(Sha1Store(LocalRaw(tmp_path), ""), cache_result=True)
    assert remote_first.append_cache(Sha1Cache(LocalRaw(tmp_path / "c"), "")).hit_reader() is None  # a write-back
    bounded = Sha1Composite().append_cache(Sha1Cache(LocalRaw(tmp_path / "b", max_bytes=10**6), ""))
    assert bounded.hit_reader() is None  # its reads touch an index


# --- lifespan ------------------------------------------------------------------------------------------------------
class WithLifespan:
    """An app that records its lifespan and answers from the state it set up."""

    def __init__(self, fail: str | None = None):
        self.events: list[str] = []
        self.fail = fail

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                self.events.append(message["type"])
                if message["type"] == "lifespan.startup":
                    if self.fail:
                        await send({"type": "lifespan.startup.failed", "message": self.fail})
                        return
                    scope["state"]["greeting"] = b"hello"
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = scope["state"]["greeting"]
        self.events.append("request")
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]})
        await send({"type": "http.response.body", "body": body})


def test_lifespan_startup_before_serving_and_shutdown_after():
    asgi = WithLifespan()
    with running(asgi) as (server, port):
        assert asgi.events == ["lifespan.startup"]
        answer = _exchange(port, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"hello")
    assert asgi.events == ["lifespan.startup", "request", "lifespan.shutdown"]


def test_a_failed_startup_serves_nothing():
    asgi = WithLifespan(fail="no database")
    sock = bind("127.0.0.1", 0)
    try:
        with pytest.raises(LifespanFailed, match="no database"):
            Server(asgi, shutdown_timeout=5).run(sock)
    finally:
        sock.close()
    assert asgi.events == ["lifespan.startup"]


def test_an_app_without_lifespan_is_served_and_the_gateway_speaks_it(tmp_path):
    async def plain(scope, receive, send):
        if scope["type"] != "http":
            raise RuntimeError("only http")
        assert "state" not in scope
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    with running(plain) as (_, port):
        assert _exchange(port, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").startswith(b"HTTP/1.1 204 ")
    gateway = app(_stack(tmp_path))
    with running(gateway) as (server, port):
        assert server.state.lifespan_state == {}  # the gateway answered the startup
        assert _exchange(port, b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n").endswith(b"ok\n")


def test_lifespan_is_off_when_asked():
    asgi = WithLifespan()

    async def serve_one() -> None:
        server = Server(asgi, lifespan=False, shutdown_timeout=5)
        sock = bind("127.0.0.1", 0)
        task = asyncio.ensure_future(server.serve(sock))
        while not server.started.is_set():
            await asyncio.sleep(0)  # noqa: ASYNC110 - the serving task runs meanwhile
        server.stop()
        await task
        sock.close()

    asyncio.run(serve_one())
    assert asgi.events == []


def test_the_direct_answer_is_in_the_access_log(tmp_path, caplog):
    store = _stack(tmp_path)
    key = _sha1(GOOD[0])
    with caplog.at_level("INFO", logger="bitstore.serve.access"), running(app(store), access_log=True) as (_, port):
        assert _exchange(port, b"GET /blobs/%s HTTP/1.1\r\nConnection: close\r\n\r\n" % key.encode()).endswith(GOOD[0])
    assert any(f'"GET /blobs/{key} HTTP/1.1" 200' in r.getMessage() for r in caplog.records)


def test_a_direct_answer_that_raises_is_500_and_the_connection_closes():
    class Broken:
        def respond_now(self, method, path, headers):
            if path == "/boom":
                raise RuntimeError("boom")
            return None

        async def __call__(self, scope, receive, send):
            if scope["type"] != "http":
                raise ValueError("http only")
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
            await send({"type": "http.response.body", "body": b"ok"})

    with running(Broken()) as (_, port), socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(b"GET /fine HTTP/1.1\r\nHost: x\r\n\r\nGET /boom HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"GET /fine HTTP/1.1\r\nHost: x\r\n\r\n")
        reader = Reader(conn)
        assert reader.response()[::2] == (200, b"ok")
        status, headers, body = reader.response()
        assert (status, headers["connection"], body) == (500, "close", b"internal server error\n")
        assert reader.closed()


STATES = ("present", "absent", "corrupt", "fifo", "folder")


def _tier_folder(root, state: str, key: str, data: bytes):
    root.mkdir(parents=True, exist_ok=True)
    path = root / key
    if state == "present":
        path.write_bytes(data)
    elif state == "corrupt":
        path.write_bytes(data + b"!")
    elif state == "fifo":
        os.mkfifo(path)
    elif state == "folder":
        path.mkdir()
    return root


@given(states=st.lists(st.sampled_from(STATES), min_size=1, max_size=3), ttl=st.booleans(), verify=st.booleans(),
       repeat=st.integers(1, 2))
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_the_hit_reader_answers_and_counts_as_get_does(tmp_path_factory, states, ttl, verify, repeat):
    data = b"the blob under test"
    key = _sha1(data)

    def stack(name: str) -> Sha1Composite:
        base = tmp_path_factory.mktemp(name)
        store = Sha1Composite(missing_ttl=60 if ttl else None)
        store.append_cache(Sha1Cache(LocalRaw(_tier_folder(base / "0", states[0], key, data)), "", verify=verify))
        for i, state in enumerate(states[1:], 1):
            store.append_source(Sha1Store(LocalRaw(_tier_folder(base / str(i), state, key, data)), "", verify=True))
        return store

    direct, walked = stack("direct"), stack("walked")
    read = direct.hit_reader()
    assert read is not None
    for _ in range(repeat):
        outcomes = []
        for call in (read, walked.get):
            try:
                outcomes.append(("bytes", call(key)))
            except Exception as exc:  # noqa: BLE001 - compared below
                outcomes.append((type(exc).__name__, str(exc).replace(str(tmp_path_factory.getbasetemp()), "")))
        assert outcomes[0][0] == outcomes[1][0]
        if outcomes[0][0] == "bytes":
            assert outcomes[0] == outcomes[1] and outcomes[0][1] in (data, data + b"!")
    mine = [(s.calls, s.hits, s.misses, s.failures, s.bytes) for s in direct.stats().values()]
    theirs = [(s.calls, s.hits, s.misses, s.failures, s.bytes) for s in walked.stats().values()]
    assert mine == theirs
    assert (direct.cache_read_failures.value, key in (direct._missing or ())) == (
        walked.cache_read_failures.value, key in (walked._missing or ()))


# --- a cache tier in front of a remote source (S3 on moto): a first-tier hit answered at once, the rest as ever ---

CACHE_STATES = ("present", "absent", "corrupt", "fifo", "folder")
S3_STATES = ("present", "absent", "corrupt", "no bucket")


class Switch:
    """One lean server for many stacks: the gateway under test is swapped in per example."""

    def __init__(self):
        self.gateway = None
        self.answered: list[bool] = []

    def respond_now(self, *args):
        answer = self.gateway.respond_now(*args)
        self.answered.append(answer is not None)
        return answer

    async def __call__(self, scope, receive, send):
        await self.gateway(scope, receive, send)


@pytest.fixture(scope="module")
def switched():
    """Two lean servers: one offering the direct answer, one through ASGI only."""
    direct, asgi = Switch(), Switch()
    with running(direct) as (_, port_direct), running(AsgiOnly(asgi)) as (_, port_asgi):
        yield (direct, port_direct), (asgi, port_asgi)


def _counters(store, gateway) -> dict:
    """Every counter a deployment reads: per tier, the composite's, the missing memory, the gateway's, /metrics."""
    tiers = {name: (s.calls, s.hits, s.misses, s.failures, s.bytes, s.cache_writes, s.cache_write_failures)
             for name, s in store.stats().items()}
    from bitstore.serve.metrics import render

    metrics = [line for line in render(store, gateway).splitlines() if "latency" not in line]
    return {"tiers": tiers, "cache_writes": store.cache_writes.value,
            "cache_write_failures": store.cache_write_failures.value,
            "cache_read_failures": store.cache_read_failures.value,
            "missing": sorted(getattr(store._missing, "_expiry", {}) or ()), "responses": dict(gateway.responses),
            "joins": gateway.single_flight_joins, "metrics": metrics}


def _same_but_folders(answer: bytes, store) -> bytes:
    """The answer without its date, its cache folder's path (a failure names it) and so the length of such a body."""
    folder = str(store.cache.base_store.root).encode()
    answer = _without_date(answer)
    if folder not in answer:
        return answer
    return b"\r\n".join(line for line in answer.replace(folder, b"<cache>").split(b"\r\n")
                         if not line.lower().startswith(b"content-length:"))


def _cache_over_s3(base, s3, bucket: str, cache_state: str, s3_state: str, key: str, data: bytes, *,
                   bounded: bool, verify: bool, ttl: bool) -> Sha1Composite:
    store = Sha1Composite(missing_ttl=60 if ttl else None)
    folder = _tier_folder(base, cache_state, key, data)
    raw = LocalRaw(folder, max_bytes=10**6) if bounded else LocalRaw(folder)
    store.append_cache(Sha1Cache(raw, "", verify=verify))
    store.append_source(Sha1Store(s3.raw(), f"s3://{bucket}/b/", verify=True, name="s3"), cache_result=True)
    return store


@given(cache_state=st.sampled_from(CACHE_STATES), s3_state=st.sampled_from(S3_STATES), bounded=st.booleans(),
       verify=st.booleans(), ttl=st.booleans(), repeat=st.integers(1, 3),
       extra=st.sampled_from(["", "If-None-Match: \"{key}\"\r\n", "Range: bytes=1-4\r\n"]))
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_cache_over_s3_answers_and_counts_as_the_asgi_path(switched, s3, tmp_path_factory, cache_state, s3_state,
                                                              bounded, verify, ttl, repeat, extra):
    data = b"a blob behind a cache %d" % len(tmp_path_factory.getbasetemp().name)
    key = _sha1(data)
    bucket = "cs" + os.urandom(6).hex()
    if s3_state != "no bucket":  # a missing bucket is a failure, never "missing"
        s3.create_bucket(bucket)
        if s3_state != "absent":
            s3.put(bucket, f"b/{key}", data if s3_state == "present" else data + b"?")
    (direct, port_direct), (asgi, port_asgi) = switched
    stores = []
    for side in (direct, asgi):
        store = _cache_over_s3(tmp_path_factory.mktemp("cache"), s3, bucket, cache_state, s3_state, key, data,
                               bounded=bounded, verify=verify, ttl=ttl)
        side.gateway = app(store)
        side.answered.clear()
        stores.append(store)
    assert direct.gateway._first is not None and direct.gateway._hit is None
    raw = b"GET /blobs/%s HTTP/1.1\r\nHost: x\r\n%sConnection: close\r\n\r\n" % (
        key.encode(), extra.format(key=key).encode())
    for _ in range(repeat):
        mine, theirs = _exchange(port_direct, raw), _exchange(port_asgi, raw)
        assert _same_but_folders(mine, stores[0]) == _same_but_folders(theirs, stores[1])
        status = int(mine.split(b" ", 2)[1])
        body = mine.split(b"\r\n\r\n", 1)[1]
        assert status in ((304,) if extra.startswith("If") else (206, 404, 502) if extra else (200, 404, 502))
        if status == 200:  # the blob's bytes, or the unverified cache's own copy (as get gives it)
            assert body == data or (body == data + b"!" and not verify)
        if status == 404:  # only when no tier has it (a corrupt copy is not a copy) and none failed
            assert s3_state in ("absent", "corrupt") and cache_state != "fifo"
    assert _counters(stores[0], direct.gateway) == _counters(stores[1], asgi.gateway)
    first_hit = cache_state == "present" or (cache_state == "corrupt" and not verify)
    if extra.startswith("Range"):  # a range is always the ASGI call's (streamed from the tier)
        assert direct.answered == [False] * repeat
    else:  # answered at once exactly on a hit in the cache tier (a 304 needs no read)
        assert direct.answered[0] is (first_hit or extra.startswith("If"))
    assert stores[0].stats()["s3"].calls == stores[1].stats()["s3"].calls


def test_a_miss_in_the_cache_is_left_uncounted_and_asks_no_remote_tier(s3, tmp_path):
    data = b"only in the bucket"
    key = _sha1(data)
    s3.create_bucket("cmiss")
    s3.put("cmiss", f"b/{key}", data)
    store = _cache_over_s3(tmp_path / "c", s3, "cmiss", "absent", "present", key, data, bounded=False, verify=True,
                           ttl=False)
    gateway = app(store)
    assert gateway.respond_now("GET", f"/blobs/{key}", []) is None
    assert [(s.calls, s.misses) for s in store.stats().values()] == [(0, 0), (0, 0)]  # nothing asked of S3 here
    assert not gateway.responses
    with running(gateway) as (_, port):
        answer = _exchange(port, b"GET /blobs/%s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % key.encode())
        assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(data)
        assert [(s.calls, s.hits, s.misses) for s in store.stats().values()] == [(1, 0, 1), (1, 1, 0)]
        assert store.cache_writes.value == 1  # written back by the fetch
        # now a hit in the cache: answered at once, S3 not asked again
        assert gateway.respond_now("GET", f"/blobs/{key}", [])[2] == data
        assert [(s.calls, s.hits) for s in store.stats().values()] == [(2, 1), (1, 1)]
        assert gateway.responses == {200: 2}


def test_a_key_in_flight_joins_the_flight(s3, tmp_path):
    data = b"in flight"
    key = _sha1(data)
    store = _cache_over_s3(tmp_path / "c", s3, "nobucket-f", "present", "no bucket", key, data, bounded=False,
                           verify=True, ttl=False)
    gateway = app(store)
    gateway._flights[key] = object()  # a fetch of this key under way: its requesters share it, as over ASGI
    assert gateway.respond_now("GET", f"/blobs/{key}", []) is None
    assert store.stats()[store.tier_names[0]].calls == 0
    del gateway._flights[key]
    assert gateway.respond_now("GET", f"/blobs/{key}", [])[0] == 200


def test_a_key_remembered_missing_is_left_to_the_walk(s3, tmp_path):
    data = b"remembered"
    key = _sha1(data)
    s3.create_bucket("cmem")
    store = _cache_over_s3(tmp_path / "c", s3, "cmem", "absent", "absent", key, data, bounded=False, verify=True,
                           ttl=True)
    with pytest.raises(NotFoundInStore):
        store.get(key)
    before = [(s.calls, s.misses) for s in store.stats().values()]
    assert app(store).respond_now("GET", f"/blobs/{key}", []) is None
    assert [(s.calls, s.misses) for s in store.stats().values()] == before


def test_a_direct_hit_on_a_bounded_cache_records_its_use(s3, tmp_path):
    old, new = b"written first", b"written second"
    raw = LocalRaw(tmp_path / "lru", max_bytes=10**6)
    store = Sha1Composite().append_cache(Sha1Cache(raw, ""))
    store.append_source(Sha1Store(s3.raw(), "s3://nobucket-lru/b/"), cache_result=True)
    store.put(_sha1(old), old)
    store.put(_sha1(new), new)
    assert raw._index.order() == [_sha1(old), _sha1(new)]
    gateway = app(store)
    assert gateway._first is not None
    assert gateway.respond_now("GET", f"/blobs/{_sha1(old)}", [])[2] == old
    assert raw._index.order() == [_sha1(new), _sha1(old)]  # the read counts: the other is now evicted first


def test_reads_on_an_event_loop_write_the_index_aside(tmp_path, monkeypatch):
    from bitstore.backends import _lru

    raw = LocalRaw(tmp_path / "lru", max_bytes=10**6)
    raw.put("a", b"1")
    raw.put("b", b"2")
    index = raw._index
    monkeypatch.setattr(_lru, "FLUSH_READS", 1)  # every read is due to be written
    monkeypatch.setattr(_lru, "ASIDE_READS", 1)
    writers = []
    flush = index.flush

    def spied(wait=True):
        writers.append(__import__("threading").current_thread().name)
        return flush(wait)

    monkeypatch.setattr(index, "flush", spied)

    async def read():
        return raw.get("a")

    assert asyncio.run(read()) == b"1"
    if index._flusher is not None:
        index._flusher.join(30)
    assert writers and all(name == "bitstore-lru-reads" for name in writers)  # never on the loop's thread
    monkeypatch.setattr(index, "flush", flush)
    assert index.order() == ["b", "a"]


def test_misses_behind_a_cache_share_one_fetch_and_later_hits_are_direct(s3, tmp_path, fault_proxy):
    import concurrent.futures
    import time

    data = b"fetched once for everyone"
    key = _sha1(data)
    s3.create_bucket("cflight")
    s3.put("cflight", f"b/{key}", data)
    proxy = fault_proxy(s3.endpoint_url, rate=1.0, faults=["hold"], match="/cflight/b/")
    store = Sha1Composite().append_cache(Sha1Cache(LocalRaw(tmp_path / "c"), ""))
    store.append_source(Sha1Store(s3.raw(endpoint_url=proxy.url), "s3://cflight/b/", name="s3"), cache_result=True)
    gateway = app(store)
    raw = b"GET /blobs/%s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % key.encode()

    def until(condition, what):
        deadline = time.monotonic() + 30
        while not condition():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.005)

    with running(gateway) as (_, port), concurrent.futures.ThreadPoolExecutor(6) as pool:
        first = pool.submit(_exchange, port, raw)
        until(lambda: proxy.stats["hold"] >= 1, "the fetch to reach S3")
        others = [pool.submit(_exchange, port, raw) for _ in range(5)]
        until(lambda: gateway.single_flight_joins == 5, "the other requests to join the fetch")
        proxy.release()
        answers = [first.result(60)] + [f.result(60) for f in others]
        assert all(a.startswith(b"HTTP/1.1 200 ") and a.endswith(data) for a in answers)
        assert proxy.stats["hold"] == 1  # one GET of S3 for six requests
        cache, source = store.stats().values()
        assert (cache.calls, cache.misses, source.calls, source.hits) == (1, 1, 1, 1)  # the peeks left uncounted
        assert store.cache_writes.value == 1
        assert _exchange(port, raw).endswith(data)  # now a hit in the cache, answered at once
        assert (store.stats()[store.tier_names[0]].hits, proxy.stats["hold"]) == (1, 1)
        assert gateway.responses == {200: 7}
