"""How the threads engine starts its threads: a cold pool's threads are started by the pool's own threads, one
after another, while the consumer goes on filling the window (starting a thread blocks its starter until the
new thread runs); a warm pool's idle threads get their work from the consumer directly.

Waits are on events, bounded so that a broken engine fails instead of hanging; no timing is asserted."""
from __future__ import annotations

import threading

import pytest

from bitstore.engine import batch
from tests.core_helpers import DictStore

N = 24


class BarrierStore(DictStore):
    """Every get waits until ``n`` gets run at once (so reaching ``n`` proves ``n`` threads fetch together), then
    answers; records the most gets seen running at once."""

    def __init__(self, blobs, n: int):
        super().__init__(blobs)
        self.barrier = threading.Barrier(n, timeout=60)
        self.running = self.peak = 0

    def get(self, uri):
        with self._lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            if not self.barrier.broken:
                try:
                    self.barrier.wait()
                except threading.BrokenBarrierError:
                    pass
            return super().get(uri)
        finally:
            with self._lock:
                self.running -= 1


class CountingPools(batch._Pools):
    """``_Pools`` whose workforces record which thread submitted each task, and which started a new thread."""

    def __init__(self):
        super().__init__()
        self.submitters: list[str] = []
        self.starters: list[str] = []

    def take(self, n_workers):
        pool, warm = super().take(n_workers)
        if not hasattr(pool, "_bitstore_test_submit"):
            real = pool.submit
            pool._bitstore_test_submit = real

            def submit(fn, *args, **kwargs):
                me = threading.current_thread().name
                self.submitters.append(me)
                threads = len(pool.executor._threads)
                try:
                    return real(fn, *args, **kwargs)
                finally:
                    if len(pool.executor._threads) > threads:
                        self.starters.append(me)

            pool.submit = submit
        return pool, warm


@pytest.fixture
def pools(monkeypatch):
    counting = CountingPools()
    monkeypatch.setattr(batch, "_pools", counting)
    yield counting
    with counting._lock:
        idle, counting._idle = counting._idle, []
    for _, pool in idle:
        pool.shutdown(wait=True)


def _keys(n: int, offset: int = 0) -> list[str]:
    return [f"k{i}" for i in range(offset, offset + n)]


def test_a_cold_pool_reaches_max_workers_with_its_threads_started_by_the_pool(pools):
    """All ``max_workers`` fetches run at once (the barrier lets none finish before), yet the consumer started
    only the first thread (or two, if the first found the queue empty before the consumer's next key): the
    pool's threads started the others."""
    store = BarrierStore({k: b"x" for k in _keys(2 * N)}, N)
    consumer = threading.current_thread().name
    results = list(store.get_many(_keys(2 * N), max_workers=N, engine="threads", progress=False))
    assert [r.status for r in results] == ["found"] * (2 * N)
    assert store.peak == N
    assert len(pools.starters) == N
    assert 1 <= pools.starters.count(consumer) <= 2


def test_a_warm_pool_gets_its_drains_from_the_consumer(pools):
    """The second run finds the pool warm (it knows its N threads) and hands every drain straight to them."""
    store = BarrierStore({k: b"x" for k in _keys(4 * N)}, N)
    consumer = threading.current_thread().name
    assert all(r.ok for r in store.get_many(_keys(2 * N), max_workers=N, engine="threads", progress=False))
    assert list(pools._warm.values()) == [N]
    pools.submitters.clear()
    pools.starters.clear()
    store.barrier = threading.Barrier(N, timeout=60)
    results = list(store.get_many(_keys(2 * N, 2 * N), max_workers=N, engine="threads", progress=False))
    assert all(r.ok for r in results) and store.peak == N
    assert pools.submitters.count(consumer) == N and not pools.starters


def test_fewer_keys_than_workers_start_no_more_threads_than_keys(pools):
    """The chain stops when no key waits: a 3-key run on a 24-thread pool starts at most 4 threads (one more
    than keys, at worst: a drain asks for the next before taking its own key)."""
    store = DictStore({k: b"x" for k in _keys(3)})
    assert all(r.ok for r in store.get_many(_keys(3), max_workers=N, engine="threads", progress=False))
    assert 1 <= len(pools.starters) <= 4


def test_a_key_that_fails_to_start_its_successor_still_gets_answered(pools, monkeypatch):
    """A pool that refuses the tasks its own threads submit (as one shutting down would) leaves the drains the
    consumer started to work the whole queue: every key is answered, none hangs."""
    store = DictStore({k: b"x" for k in _keys(50)})
    real_take = pools.take

    def take(n_workers):
        pool, warm = real_take(n_workers)
        inner = pool.submit
        consumer = threading.current_thread()

        def submit(fn, *args, **kwargs):
            if threading.current_thread() is not consumer:
                raise RuntimeError("cannot schedule new futures after shutdown")
            return inner(fn, *args, **kwargs)

        pool.submit = submit
        return pool, warm

    monkeypatch.setattr(pools, "take", take)
    results = list(store.get_many(_keys(50), max_workers=8, engine="threads", progress=False))
    assert [r.status for r in results] == ["found"] * 50
