"""``composite.stats()``: per-tier counts, bytes, latency percentiles, waits, cache writes; drains; HTML."""
from __future__ import annotations

import pickle
import threading

import pytest

from bitstore import Sha1Cache, Sha1Composite, Sha1Store
from bitstore.backends.memory import MemoryRaw
from bitstore.ground.limits import ManualClock
from bitstore.ground.stats import TierStats
from tests.core_helpers import DictAPI, DictStore, sha1


class TimedAPI(DictAPI):
    """An API whose calls take ``latencies`` seconds in turn, on a manual clock."""

    def __init__(self, blobs, clock, latencies):
        super().__init__(blobs, name="api")
        self.clock, self.latencies, self.i = clock, latencies, 0

    def api_get(self, sha1_):
        self.clock.advance(self.latencies[self.i % len(self.latencies)])
        self.i += 1
        return super().api_get(sha1_)


def test_counts_bytes_latency_and_cache_writes_per_tier():
    clock = ManualClock()
    hits = {sha1(bytes([i]) * 10): bytes([i]) * 10 for i in range(19)}
    broken = DictStore(fail={"f" * 40: OSError("boom")})
    broken.name = "broken"
    store = Sha1Composite(clock=clock)
    store.append_cache(Sha1Cache(MemoryRaw(), "mem://cache/", name="cache"))
    store.append_source(broken)
    store.append_source(TimedAPI(hits, clock, [0.010] * 19 + [0.200]))
    keys = list(hits) + ["0" * 40]
    for key in keys:
        store.fetch(key)
    for key in list(hits)[:5]:  # served by the cache now
        store.fetch(key)
    assert store.fetch("f" * 40).status == "failed"
    stats = store.stats()
    cache, brk, api = stats["cache"], stats["broken"], stats["api"]
    assert (api.calls, api.hits, api.misses, api.failures, api.bytes) == (21, 19, 2, 0, 190)
    assert api.latency_p50 == pytest.approx(0.010, rel=0.1) and api.latency_p95 == pytest.approx(0.010, rel=0.1)
    assert (cache.calls, cache.hits, cache.misses, cache.bytes, cache.cache_writes) == (26, 5, 21, 50, 19)
    assert (brk.calls, brk.failures, brk.misses) == (21, 1, 20)
    assert api.wait_seconds == 0 and cache.cache_write_failures == 0
    assert list(stats) == ["cache", "broken", "api"] and stats.total_calls == 68


def test_p95_follows_the_slow_tail():
    stats = TierStats()
    for i in range(100):
        stats.call("hit", 0.001 if i < 90 else 0.5, 1)
    snap = stats.snapshot("t")
    assert snap.latency_p50 == pytest.approx(0.001, rel=0.1) and snap.latency_p95 == pytest.approx(0.5, rel=0.1)
    assert TierStats().snapshot("empty").latency_p50 is None


def test_a_write_back_target_that_is_not_read_has_its_own_row():
    blob = b"x"
    store = Sha1Composite()
    store.append_cache(Sha1Cache(MemoryRaw(), "mem://c/", name="write-only"), read=False)
    store.append_source(DictAPI({sha1(blob): blob}, name="api"))
    store.get(sha1(blob))
    assert store.stats()["write-only"].cache_writes == 1 and store.stats()["write-only"].calls == 0


def test_a_refused_write_back_counts_as_a_cache_write_failure():
    store = Sha1Composite()
    store.append_cache(Sha1Cache(MemoryRaw(), "mem://c/", name="cache"))
    store.append_source(DictAPI({"a" * 40: b"not a's bytes"}, name="liar"))
    store.fetch("a" * 40)
    assert store.stats()["cache"].cache_write_failures == 1


def test_drain_stats_hands_out_disjoint_increments_across_threads():
    blobs = {sha1(str(i).encode()): str(i).encode() for i in range(400)}
    store = Sha1Composite()
    store.append_source(DictAPI(blobs, name="api"))
    drained = []
    lock = threading.Lock()

    def work(part):
        for key in part:
            store.fetch(key)
            if len(key) and key[0] in "01":
                d = store.drain_stats()["api"]
                with lock:
                    drained.append(d.calls)

    keys = list(blobs)
    threads = [threading.Thread(target=work, args=(keys[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    drained.append(store.drain_stats()["api"].calls)
    assert sum(drained) == 400 == store.stats()["api"].calls
    assert store.drain_stats()["api"].calls == 0


def test_stats_are_per_process_and_restart_after_pickling():
    store = Sha1Composite()
    store.append_source(Sha1Store(MemoryRaw(), "mem://p/", name="mem"))
    store.fetch("a" * 40)
    back = pickle.loads(pickle.dumps(store))
    assert store.stats()["mem"].calls == 1 and back.stats()["mem"].calls == 0


def test_html_and_text_views_name_every_tier_and_escape_names():
    store = Sha1Composite()
    store.append_source(DictAPI({}, name="<api & co>"))
    store.fetch("a" * 40)
    stats = store.stats()
    html = stats._repr_html_()
    assert "&lt;api &amp; co&gt;" in html and "<api" not in html and "latency p95" in html
    assert str(stats).startswith("<api & co>: 1 calls, 0 hits, 1 misses, 0 failed")
    assert stats.rows()[0]["misses"] == 1 and "_histogram" not in stats.rows()[0]
