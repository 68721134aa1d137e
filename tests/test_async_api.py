"""``Store.aget``, ``astat``, ``aput`` and ``aget_many`` on the caller's event loop, against moto and
fake-gcs-server, local and memory tiers and composites: the same answers and exceptions as ``get``, ``stat``,
``put`` and ``get_many`` (a property test over mixed keys), cloud GETs made on the caller's loop, user stores off
it, and nothing left in flight after a ``break`` or a cancellation. No timing is asserted."""
from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import textwrap
import threading
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bitstore import (
    Composite,
    FetchFailed,
    InvalidURI,
    LocalRaw,
    MemoryRaw,
    NotFoundInStore,
    Sha1Cache,
    Sha1Composite,
    Sha1Store,
    Store,
)
from bitstore.engine import loop as engine_loop
from bitstore.engine.batch import WINDOW_PER_WORKER
from tests.core_helpers import DictAPI, DictStore
from tests.test_batch_async import Counting, Env, _mixed_keys
from tests.test_batch_async_composite import LoopCalls, _counts, _local_cache, _standard
from tests.test_batch_async_composite import world as _world_fixture  # noqa: F401 - a fixture here


@pytest.fixture(params=["s3", "gs"])
def cloud(request) -> Env:
    """Blobs in moto's S3, then in fake-gcs-server (as ``test_batch_async``'s ``env``)."""
    scheme = request.param
    return Env(request.getfixturevalue("s3" if scheme == "s3" else "gcs"), scheme)


@pytest.fixture
def tiers(request):
    # module-scoped buckets: the tests using it come before those using ``s3``, whose fixture resets moto
    """``test_batch_async_composite``'s ``world``: blobs in S3, GCS and an API, corrupt copies, a failing S3."""
    return request.getfixturevalue("_world_fixture")


def _answers(results) -> list[tuple]:
    return [(r.key, r.status, None if r.data is None else bytes(r.data), r.source, r.cached, r.error)
            for r in results]


async def _collect(iterator) -> list:
    return [r async for r in iterator]


async def _collect_batched(iterator) -> list:
    """``_collect``, checking that obstore's completions were batched on the loop while it ran (``wakeups``) and
    that the loop has its own ``call_soon_threadsafe`` back after."""
    from bitstore.engine.wakeups import Batched

    loop = asyncio.get_running_loop()
    out = []
    async for result in iterator:
        assert isinstance(loop.__dict__.get("call_soon_threadsafe"), Batched)
        out.append(result)
    assert "call_soon_threadsafe" not in loop.__dict__
    return out


async def _agen(keys):
    for key in keys:
        await asyncio.sleep(0)
        yield key


def _sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


# --- single calls ------------------------------------------------------------------------------------------
def test_aget_astat_aput_answer_as_get_stat_put(cloud):
    store = cloud.sha1_store()
    found = next(iter(cloud.blobs))

    async def main():
        counting = Counting(store.base_store)
        data = await store.aget(found)
        assert data == store.get(found) == cloud.blobs[found]
        assert counting.calls[cloud.uri(found)] == 1  # only the synchronous get above: aget's was on the loop
        for bad in ("0" * 40, "not a sha1"):
            with pytest.raises(Exception) as sync_error:
                store.get(bad)
            with pytest.raises(type(sync_error.value)) as async_error:
                await store.aget(bad)
            assert str(async_error.value) == str(sync_error.value)
        assert await store.astat(found) == store.stat(found)
        assert await store.astat("0" * 40) == store.stat("0" * 40)
        new = b"written through aput"
        await store.aput(_sha1(new), new)
        assert await store.aget(_sha1(new)) == new

    asyncio.run(main())


def test_aget_raises_the_same_exceptions_for_memory_local_and_user_stores(tmp_path):
    data = b"local bytes"
    key = _sha1(data)
    stores = [Sha1Store(MemoryRaw(), "mem://a/"), Sha1Store(LocalRaw(tmp_path), ""),
              DictAPI({key: data}, name="api")]

    async def main():
        for store in stores:
            if not isinstance(store, DictAPI):
                await store.aput(key, data)
            assert await store.aget(key) == data
            for bad, error in (("1" * 40, NotFoundInStore), ("nope", InvalidURI)):
                with pytest.raises(error):
                    await store.aget(bad)
        with pytest.raises(NotImplementedError, match="DictAPI does not implement the 'put' method"):
            await stores[2].aput(key, data)

    asyncio.run(main())


# --- aget_many ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("max_in_flight", [1, 4, 64])
def test_aget_many_answers_as_get_many(cloud, max_in_flight):
    store = cloud.sha1_store()
    keys = _mixed_keys(cloud)
    expected = _answers(store.get_many(keys, max_workers=max_in_flight, engine="threads"))
    counting = Counting(store.base_store)
    got = asyncio.run(_collect_batched(store.aget_many(keys, max_in_flight=max_in_flight)))
    from_async_keys = asyncio.run(_collect(store.aget_many(_agen(keys), max_in_flight=max_in_flight)))
    assert _answers(got) == _answers(from_async_keys) == expected
    assert [r.key for r in got] == keys
    missing = {cloud.uri("0" * 40), cloud.uri("f" * 40)}  # fake-gcs-server's 404 has no code: settled on a thread
    assert set(counting.calls) == (set() if cloud.scheme == "s3" else missing)


def test_aget_many_of_a_raw_store_and_views(cloud):
    raw = cloud.raw()
    keys = [cloud.uri(k) for k in cloud.blobs] + [cloud.uri("absent"), f"{cloud.scheme}://nobucket-here/x", "bad uri"]
    expected = _answers(raw.get_many(keys, max_workers=8, engine="threads"))
    got = asyncio.run(_collect(raw.aget_many(keys, max_in_flight=8, views=True)))
    assert _answers(got) == expected
    assert [r.status for r in got[-3:]] == ["missing", "failed", "invalid"]


def test_aget_many_reads_duplicates_once_and_keeps_the_byte_bound(cloud):
    raw = cloud.raw()
    first, second = (cloud.uri(k) for k in list(cloud.blobs)[:2])
    keys = [first, second, first, first, second] * 5
    calls = LoopCalls(raw)
    try:
        got = asyncio.run(_collect(raw.aget_many(keys, max_in_flight=16)))
    finally:
        calls.restore()
    assert [r.key for r in got] == keys and all(r.ok for r in got)
    assert calls.uris == {first: 1, second: 1}


def test_the_window_bounds_keys_read_ahead():
    """At most ``max_in_flight`` fetches at once; a key iterator is read no further than the window allows."""
    blobs = {f"k{i}": bytes([i]) * 10 for i in range(200)}
    store = DictStore(blobs)
    read = []
    running, max_running = [0], [0]
    original = store.get
    lock = threading.Lock()

    def get(uri):
        with lock:
            running[0] += 1
            max_running[0] = max(max_running[0], running[0])
        try:
            return original(uri)
        finally:
            with lock:
                running[0] -= 1

    store.get = get

    def keys():
        for key in blobs:
            read.append(key)
            yield key

    async def main():
        iterator = store.aget_many(keys(), max_in_flight=4, max_bytes_in_flight=1)
        first = await iterator.__anext__()
        assert first.key == "k0" and first.ok
        assert len(read) <= WINDOW_PER_WORKER * 4  # the window's cap, as get_many's, and no more
        assert max_running[0] <= 4
        rest = [r async for r in iterator]
        assert [r.key for r in rest] == list(blobs)[1:]

    asyncio.run(main())


def test_local_and_memory_tiers_answer_as_get_many(tmp_path):
    blobs = [hashlib.sha256(str(i).encode()).digest() * (i + 1) for i in range(30)]
    memory = Sha1Store(MemoryRaw(), "mem://m/")
    local = Sha1Store(LocalRaw(tmp_path), "")
    for i, data in enumerate(blobs):
        (memory if i % 2 else local).put(_sha1(data), data)
    composite = Sha1Composite().append_source(local).append_source(memory)
    keys = [_sha1(b) for b in blobs] + ["2" * 40, "x", None, _sha1(blobs[0]).upper()]
    for store in (memory, local, composite):
        expected = _answers(store.get_many(keys, max_workers=8))
        assert _answers(asyncio.run(_collect(store.aget_many(keys, max_in_flight=8)))) == expected


def test_a_composite_with_write_back_answers_and_counts_as_get_many(tiers, tmp_path_factory):
    keys = tiers.keys + [tiers.keys[0].upper(), "not a sha1", "sha1://" + tiers.keys[1]]

    def build():
        return _standard(tiers, _local_cache(tmp_path_factory), missing_ttl=60)

    on_threads, on_loop = build(), build()
    assert on_loop.async_route() is not None
    expected = _answers(on_threads.get_many(keys, max_workers=4, engine="threads"))
    calls = LoopCalls(tiers.s3_raw)
    try:
        got = _answers(asyncio.run(_collect(on_loop.aget_many(keys, max_in_flight=4))))
    finally:
        calls.restore()
    assert got == expected
    assert _counts(on_loop) == _counts(on_threads)
    assert any(cached for *_, cached, _ in got)  # hits of S3, GCS and the API were written to the local cache
    assert calls.uris  # S3's GETs were made on the caller's loop
    # second pass: the cache answers, and keys every tier called missing are answered from memory
    again = _answers(on_threads.get_many(keys, max_workers=4, engine="threads"))
    assert _answers(asyncio.run(_collect(on_loop.aget_many(keys, max_in_flight=4)))) == again
    assert _counts(on_loop) == _counts(on_threads)


def test_a_failing_tier_is_failed_never_missing(tiers):
    composite = Sha1Composite().append_source(tiers.s3(raw=tiers.s3_faulty))
    key = tiers.groups["s3"][0]
    [result] = asyncio.run(_collect(composite.aget_many([key])))
    assert result.status == "failed"

    async def single():
        with pytest.raises(FetchFailed):
            await composite.aget(key)

    asyncio.run(single())


_POOL = {"found": [], "corrupt": [], "missing": ["3" * 40, "4" * 40]}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(picks=st.lists(st.tuples(st.sampled_from(["found", "corrupt", "missing", "invalid", "upper"]),
                                st.integers(0, 5)), max_size=30),
       max_in_flight=st.sampled_from([1, 3, 16]))
def test_property_aget_many_answers_as_get_many(tmp_path_factory, picks, max_in_flight):
    """Mixed found, corrupt, missing and invalid keys, duplicates and other spellings: the same answers, in order,
    and the same tier statistics as ``get_many`` (memory and local tiers, a verified cache with write-back)."""
    root = tmp_path_factory.getbasetemp() / "prop"
    blobs = [hashlib.sha256(f"p{i}".encode()).digest() * (i + 1) for i in range(6)]
    corrupt = {hashlib.sha1(b"c%d" % i).hexdigest(): b"not it" for i in range(6)}

    def build(tag: str) -> Sha1Composite:
        source = MemoryRaw()
        for data in blobs:
            source.put(f"mem://s/{_sha1(data)}", data)
        for key, data in corrupt.items():
            source.put(f"mem://s/{key}", data)
        composite = Sha1Composite(missing_ttl=30)
        composite.append_cache(Sha1Cache(LocalRaw(root / tag / str(os.getpid())), ""))
        composite.append_source(Sha1Store(source, "mem://s/", verify=True), cache_result=True)
        return composite

    pool = {"found": [_sha1(b) for b in blobs], "corrupt": list(corrupt), "missing": ["3" * 40, "4" * 40],
            "invalid": ["", "xyz", None, 12], "upper": [f"  sha1://{_sha1(b).upper()} " for b in blobs]}
    keys = [pool[kind][i % len(pool[kind])] for kind, i in picks]
    tag = hashlib.sha1(repr((picks, max_in_flight)).encode()).hexdigest()
    on_threads, on_loop = build(tag + "t"), build(tag + "a")
    expected = _answers(on_threads.get_many(keys, max_workers=max_in_flight))
    got = _answers(asyncio.run(_collect(on_loop.aget_many(keys, max_in_flight=max_in_flight))))
    assert got == expected
    assert _counts(on_loop) == _counts(on_threads)


# --- never blocking the caller's loop ------------------------------------------------------------------------
class GatedStore(Store):
    """A user store whose ``is_valid`` (and optionally ``get``) waits on a ``threading.Event``."""

    def __init__(self, gate_valid: bool = True, gate_get: bool = False):
        self.gate = threading.Event()
        self.gate_valid, self.gate_get = gate_valid, gate_get
        self.started = Counter()
        self._lock = threading.Lock()

    def is_valid(self, uri) -> bool:
        if self.gate_valid:
            self.gate.wait(60)
        return isinstance(uri, str)

    def get(self, uri) -> bytes:
        with self._lock:
            self.started[uri] += 1
        if self.gate_get:
            self.gate.wait(60)
        return uri.encode()


async def _ticks_while_blocked(store: GatedStore, ticks: int = 50) -> int:
    """Counts loop iterations made while the store is held, then opens its gate."""
    count = 0
    for _ in range(ticks):
        await asyncio.sleep(0)
        count += 1
    assert not store.gate.is_set()
    store.gate.set()
    return count


def test_a_slow_is_valid_never_blocks_the_callers_loop():
    store = GatedStore(gate_valid=True)
    assert not store.keys_on_loop()

    async def main():
        many = asyncio.create_task(_collect(store.aget_many(["a", "b", "c"], max_in_flight=2)))
        single = asyncio.create_task(store.aget("d"))
        ticks = await asyncio.wait_for(_ticks_while_blocked(store), 30)
        results = await asyncio.wait_for(many, 30)
        assert ticks == 50 and [r.data for r in results] == [b"a", b"b", b"c"]
        assert await asyncio.wait_for(single, 30) == b"d"

    asyncio.run(main())


def test_a_composite_with_a_user_tier_checks_keys_off_the_loop(tiers):
    gated = GatedStore(gate_valid=True)
    composite = Sha1Composite().append_source(tiers.s3()).append_source(gated)
    assert composite.async_route() is not None and composite.keys_on_loop()  # its own pattern; the tier's: OffLoop
    plain = Composite().append_source(gated)
    assert not plain.keys_on_loop()

    async def main():
        many = asyncio.create_task(_collect(composite.aget_many(tiers.groups["s3"][:2])))
        assert await asyncio.wait_for(_ticks_while_blocked(gated), 30) == 50
        results = await asyncio.wait_for(many, 30)
        assert all(r.ok for r in results)

    asyncio.run(main())
    gated.gate.clear()

    async def plain_main():
        many = asyncio.create_task(_collect(plain.aget_many(["x", "y"])))
        assert await asyncio.wait_for(_ticks_while_blocked(gated), 30) == 50
        assert [r.data for r in await asyncio.wait_for(many, 30)] == [b"x", b"y"]

    asyncio.run(plain_main())


def test_a_tiers_limits_hold_for_aget_many(tiers):
    """A tier with ``max_concurrency=2`` (asked on threads, under its limiter) is never asked more than twice at
    once, however many keys are in flight; the cloud tier after it still reads on the caller's loop."""
    gated = GatedStore(gate_valid=False, gate_get=False)
    running, most = [0], [0]
    lock = threading.Lock()
    original = gated.get

    def get(uri):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            if uri in tiers.api_blobs:
                return original(uri)
            raise NotFoundInStore(gated, uri)
        finally:
            with lock:
                running[0] -= 1

    gated.get = get
    composite = Sha1Composite().append_source(gated, max_concurrency=2).append_source(tiers.s3())
    keys = tiers.groups["s3"] * 4
    calls = LoopCalls(tiers.s3_raw)
    try:
        got = asyncio.run(_collect(composite.aget_many(keys, max_in_flight=16)))
    finally:
        calls.restore()
    assert all(r.ok for r in got) and [r.key for r in got] == keys
    assert most[0] <= 2
    assert sum(calls.uris.values()) == len(set(keys))
    assert composite.stats()[composite.tier_names[0]].calls == len(set(keys))  # duplicates in a window: once


# --- leaving the loop early ----------------------------------------------------------------------------------
def _fetch_tasks() -> list[asyncio.Task]:
    """The tasks of ``aget_many``'s windows still alive on the running loop."""
    return [t for t in asyncio.all_tasks() if t.get_coro().__qualname__.startswith("_LoopWindow")]


def _pool_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.is_alive())


def test_cancelling_the_task_starts_nothing_more_and_leaves_no_task():
    store = GatedStore(gate_valid=False, gate_get=True)
    keys = [f"k{i}" for i in range(100)]

    async def main():
        consumer = asyncio.create_task(_collect(store.aget_many(keys, max_in_flight=4)))
        while sum(store.started.values()) < 4:
            await asyncio.sleep(0.001)
        consumer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await consumer
        for _ in range(5):
            await asyncio.sleep(0)
        assert asyncio.all_tasks() == {asyncio.current_task()}
        assert _fetch_tasks() == []
        store.gate.set()  # the four calls running on threads finish; their answers are dropped
        return threads_before

    threads_before = _pool_threads()
    asyncio.run(main())
    assert sum(store.started.values()) == 4  # the 96 others never started
    assert _pool_threads() <= threads_before + 4


def test_breaking_out_cancels_cloud_requests_in_flight(s3, fault_proxy):
    """GETs held by a proxy: after ``break`` no obstore request of this loop is in flight and no task is left;
    no more request is made."""
    s3.create_bucket("held")
    keys = []
    for i in range(20):
        data = b"held %d" % i
        keys.append(_sha1(data))
        s3.put("held", f"b/{keys[-1]}", data)
    proxy = fault_proxy(s3.endpoint_url, fail_first=1, faults=["hold"], match="/held/b/")
    store = Sha1Store(s3.raw(endpoint_url=proxy.url, transport="fast"), "s3://held/b/")
    assert store.async_route() is not None

    async def main():
        async for result in store.aget_many(keys, max_in_flight=8):
            assert result.ok
            break
        for _ in range(5):
            await asyncio.sleep(0)
        assert engine_loop.foreign_in_flight() == 0
        assert _fetch_tasks() == []
        assert "call_soon_threadsafe" not in asyncio.get_running_loop().__dict__  # the loop's own method is back
        return proxy.stats["hold"]

    async def release_first():
        while proxy.stats["hold"] < 8:
            await asyncio.sleep(0.005)
        # the first window only: a key started after it stays held, so none can answer before the first key does
        # (released from the proxy together, the first key's answer may come after others': then keys started in
        # their place, answered at once, would start more before the first result, and the bound below would not
        # hold)
        proxy.release(hold_later=True)

    async def run():
        releaser = asyncio.create_task(release_first())
        held = await asyncio.wait_for(main(), 60)
        await releaser
        return held

    held = asyncio.run(run())
    assert held <= 8 + 8  # the first window, and the keys started after the first results, at most


# --- processes -------------------------------------------------------------------------------------------------
_EXIT_SCRIPT = """
import asyncio, os, sys
from bitstore import Sha1Store
from bitstore.backends.s3 import S3Raw
store = Sha1Store(S3Raw(endpoint_url=sys.argv[1], transport="fast"), "s3://exit/b/")
keys = sys.argv[2:]

async def main():
    return [r.status async for r in store.aget_many(keys * 20, max_in_flight=64)]

statuses = asyncio.run(main())
assert set(statuses) == {"found"}, statuses
pid = os.fork()
if pid == 0:  # obstore does not survive fork: the child reads through the SDK, on threads, off its loop
    data = asyncio.run(store.aget(keys[0]))
    os._exit(0 if len(data) > 0 else 5)
_, status = os.waitpid(pid, 0)
print("child", os.waitstatus_to_exitcode(status), flush=True)
"""


def test_a_process_exits_cleanly_after_aget_many_and_a_forked_child_reads(s3):
    s3.create_bucket("exit")
    keys = []
    for i in range(3):
        data = b"exit blob %d" % i
        keys.append(_sha1(data))
        s3.put("exit", f"b/{keys[-1]}", data)
    environ = {**os.environ, "PYTHONPATH": os.getcwd()}
    for _ in range(3):
        run = subprocess.run([sys.executable, "-c", textwrap.dedent(_EXIT_SCRIPT), s3.endpoint_url, *keys],
                             capture_output=True, text=True, timeout=100, env=environ)
        assert run.returncode == 0, run.stderr[-2000:]
        assert "child 0" in run.stdout

