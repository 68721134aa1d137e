"""``get_many``: order, one result per key, statuses, dedupe, laziness and bounded read-ahead, progress."""
from __future__ import annotations

import asyncio
import itertools
import statistics
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bitstore import Composite, FetchFailed, MemoryRaw, Sha1Composite, StoreNotAvailable
from bitstore.engine.batch import WINDOW_PER_WORKER
from tests.core_helpers import DictStore, sha1


class CountingKeys:
    """An iterator of keys that records how many were read."""

    def __init__(self, keys):
        self._it = iter(keys)
        self.read = 0

    def __iter__(self):
        return self

    def __next__(self):
        key = next(self._it)
        self.read += 1
        return key


class SlowStore(DictStore):
    """Answers ``k<i>`` after a key-dependent pause (so completions come out of order); tracks gets in flight."""

    def __init__(self, blobs=None, size: int = 10):
        super().__init__(blobs)
        self.size = size
        self.started = 0
        self.returned = 0
        self.cond = threading.Condition()

    def get(self, uri):
        with self.cond:
            self.started += 1
            self.calls[uri] += 1
        try:
            time.sleep((hash(uri) % 5) / 2000)
            if uri in self.blobs or not self.blobs:
                return uri.encode().ljust(self.size, b".")
            return super().get(uri)
        finally:
            with self.cond:
                self.returned += 1
                self.cond.notify_all()

    def wait_idle(self):
        with self.cond:
            assert self.cond.wait_for(lambda: self.returned == self.started, timeout=30)


def test_results_in_input_order_one_per_key():
    store = SlowStore()
    keys = [f"k{i}" for i in range(300)]
    results = list(store.get_many(keys, max_workers=16))
    assert [r.key for r in results] == keys
    assert all(r.status == "found" and r.data == k.encode().ljust(10, b".") for r, k in zip(results, keys))
    assert all(r.source == "SlowStore" for r in results)


def test_statuses_sources_and_errors():
    hot, cold = MemoryRaw(name="hot"), MemoryRaw(name="cold")
    hot.put("mem://a", b"A")
    cold.put("mem://b", b"B")
    broken = DictStore(prefix="mem://", fail={"mem://c": FetchFailed("x", "mem://c", "503 slow down"),
                                              "mem://d": StoreNotAvailable("x", "403")})
    store = Composite(name="tiers")
    for tier in (hot, broken, cold):
        store.append_source(tier)
    keys = ["mem://a", "mem://b", "mem://c", "mem://d", "mem://e", "nope", None, 7]
    results = list(store.get_many(keys))
    assert [(r.key, r.status, r.source, r.data) for r in results] == [
        ("mem://a", "found", "hot", b"A"),
        ("mem://b", "found", "cold", b"B"),
        ("mem://c", "failed", None, None),
        ("mem://d", "failed", None, None),  # unavailable for that key counts as failed
        ("mem://e", "missing", None, None),
        ("nope", "invalid", None, None),
        (None, "invalid", None, None),
        (7, "invalid", None, None),
    ]
    assert [r.error is None for r in results] == [True, True] + [False] * 6
    assert "503 slow down" in results[2].error


def test_never_raises_for_a_bad_key():
    class Nasty:
        def __eq__(self, other):
            raise RuntimeError("eq")

        def __hash__(self):
            raise RuntimeError("hash")

    class Unprintable:
        def __repr__(self):
            raise RuntimeError("repr")

    store = MemoryRaw()
    store.put("mem://ok", b"ok")
    keys = [[1, 2], {"a": 1}, Nasty(), Unprintable(), float("nan"), b"mem://ok", object(), "mem://ok", "",
            "x" * 1_000_000]
    results = list(store.get_many(keys))
    assert len(results) == len(keys)
    assert all(r.key is k for r, k in zip(results, keys))
    assert [r.status for r in results] == ["invalid"] * 7 + ["found"] + ["invalid"] * 2
    assert "Unprintable" in results[3].error and "Unprintable" in repr(results[3])


def test_varied_sizes_and_the_empty_blob_are_found(blobs):
    blobs = {**blobs, sha1(b""): b""}
    store = MemoryRaw()
    for key, data in blobs.items():
        store.put(f"mem://{key}", data)
    results = list(store.get_many([f"mem://{key}" for key in blobs]))
    assert [r.data for r in results] == list(blobs.values())
    assert [r.status for r in results] == ["found"] * len(blobs)  # b"" is a blob, not a miss


def test_duplicates_in_the_window_are_fetched_once():
    store = SlowStore()
    keys = ["a", "b", "a", "c", "a", "b"] * 3
    results = list(store.get_many(keys, max_workers=8))
    assert [r.key for r in results] == keys
    assert all(r.status == "found" for r in results)
    assert store.calls == {"a": 1, "b": 1, "c": 1}


def test_canonical_duplicates_are_fetched_once_and_keep_their_own_key():
    data = b"blob"
    key = sha1(data)
    source = DictStore({key: data})
    store = Sha1Composite()
    store.append_source(source)
    forms = [key, key.upper(), f"sha1://{key}", f"SHA1://{key.upper()}"]
    results = list(store.get_many(forms))
    assert [r.key for r in results] == forms
    assert all(r.data == data and r.status == "found" for r in results)
    assert source.calls == {key: 1}


def test_a_generator_is_read_lazily_within_the_window():
    max_workers = 3
    cap = max_workers * WINDOW_PER_WORKER
    keys = CountingKeys(f"k{i}" for i in range(200))
    ahead = []
    for received, _ in enumerate(SlowStore().get_many(keys, max_workers=max_workers), start=1):
        ahead.append(keys.read - received)
    assert len(ahead) == 200
    assert max(ahead) <= cap
    assert ahead[:200 - cap] == [cap - 1] * (200 - cap)  # with a large byte budget the window stays full


def test_max_bytes_in_flight_bounds_read_ahead():
    """With a byte budget smaller than one blob, completed-but-unread blobs stop the read-ahead at max_workers."""
    max_workers = 2
    store = SlowStore(size=1000)
    keys = CountingKeys(f"k{i}" for i in range(120))
    ahead = []
    results = store.get_many(keys, max_workers=max_workers, max_bytes_in_flight=100)
    for received, _ in enumerate(results, start=1):
        ahead.append(keys.read - received)
        store.wait_idle()  # let every fetch started so far finish before asking for more
        time.sleep(0.001)
    steady = ahead[40:-10]
    assert max(ahead) <= max_workers * WINDOW_PER_WORKER
    assert statistics.mode(steady) <= max_workers
    assert statistics.mode(steady) < max_workers * WINDOW_PER_WORKER - 1


def test_the_window_holds_at_least_max_workers_keys():
    """Every get waits until max_workers gets run at once: this completes only if that many are in flight,
    even with a tiny byte budget."""
    max_workers = 6
    barrier = threading.Barrier(max_workers, timeout=30)

    class Rendezvous(DictStore):
        def get(self, uri):
            barrier.wait()
            return b"x" * 100

    results = list(Rendezvous().get_many([f"k{i}" for i in range(max_workers * 3)], max_workers=max_workers,
                                         max_bytes_in_flight=1))
    assert [r.status for r in results] == ["found"] * (max_workers * 3), {r.error for r in results}


def test_an_infinite_generator_works_lazily():
    store = SlowStore()
    keys = CountingKeys(f"k{i}" for i in itertools.count())
    first = list(itertools.islice(store.get_many(keys, max_workers=4), 25))
    assert [r.key for r in first] == [f"k{i}" for i in range(25)]
    assert keys.read <= 25 + 4 * WINDOW_PER_WORKER


def test_stopping_early_fetches_little_more():
    store = SlowStore()
    results = store.get_many((f"k{i}" for i in range(10_000)), max_workers=4)
    assert next(results).key == "k0"
    results.close()
    store.wait_idle()
    assert store.started <= 1 + 4 * WINDOW_PER_WORKER


def test_argument_errors_are_raised_at_call_time():
    store = MemoryRaw()
    with pytest.raises(TypeError):
        store.get_many("mem://a")
    with pytest.raises(ValueError):
        store.get_many([], max_workers=0)
    with pytest.raises(ValueError):
        store.get_many([], max_bytes_in_flight=0)
    assert list(store.get_many([])) == []


def test_progress_false_prints_nothing(capsys):
    store = MemoryRaw()
    list(store.get_many(["mem://a"] * 5, progress=False))
    list(store.get_many(["mem://a"] * 5))  # None: not a terminal under pytest
    out, err = capsys.readouterr()
    assert out == "" and err == ""


def test_progress_true_shows_a_bar(capsys):
    store = MemoryRaw()
    store.put("mem://a", b"a")
    list(store.get_many(["mem://a"] * 7, progress=True))
    out, err = capsys.readouterr()
    assert out == ""
    assert "bitstore" in err and "7/7" in err and "blob" in err


# --- thread pools kept between runs ----------------------------------------------------------------
class ThreadRecorder(DictStore):
    """Records which thread served each get."""

    def __init__(self, blobs):
        super().__init__(blobs)
        self.threads = set()

    def get(self, uri):
        self.threads.add(threading.current_thread())
        time.sleep(0.001)
        return super().get(uri)


class GroupRecorder(ThreadRecorder):
    """Records which thread served each get, and lets gets through five at a time (so a run of five workers has
    all five threads fetching: a pool's threads are started one after another, as keys wait)."""

    def __init__(self, blobs):
        super().__init__(blobs)
        self.group = threading.Barrier(5, timeout=30)

    def get(self, uri):
        self.threads.add(threading.current_thread())
        self.group.wait()
        return DictStore.get(self, uri)


def test_a_run_reuses_the_threads_of_the_previous_one():
    blobs = {f"k{i}": bytes([i % 256]) for i in range(60)}
    first, second = GroupRecorder(blobs), GroupRecorder(blobs)
    assert [r.data for r in first.get_many(list(blobs), max_workers=5)] == list(blobs.values())
    assert [r.data for r in second.get_many(list(blobs), max_workers=5)] == list(blobs.values())
    assert second.threads == first.threads and len(first.threads) == 5


def test_runs_going_on_at_once_each_have_their_own_pool():
    """Two interleaved runs, each of whose fetches waits for the other run's: with a shared pool of one
    thread they would deadlock."""
    gate_a, gate_b = threading.Event(), threading.Event()

    class Gated(DictStore):
        def __init__(self, mine, other):
            super().__init__({"k": b"v"})
            self.mine, self.other = mine, other

        def get(self, uri):
            self.mine.set()
            if not self.other.wait(10):
                raise TimeoutError("the other run never started its fetch")
            return super().get(uri)

    a = Gated(gate_a, gate_b).get_many(["k"], max_workers=1)
    b = Gated(gate_b, gate_a).get_many(["k"], max_workers=1)
    holder = []
    thread = threading.Thread(target=lambda: holder.append(next(iter(a))))
    thread.start()
    result_b = next(iter(b))
    thread.join(15)
    assert result_b.status == "found" and holder and holder[0].status == "found"


def test_a_forked_child_does_not_use_its_parents_pools():
    """The parent's idle pool has threads only in the parent: the child must make its own (or it hangs)."""
    import os
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import os, sys
        from bitstore import MemoryRaw
        raw = MemoryRaw()
        raw.put("mem://a", b"x")
        assert [r.data for r in raw.get_many(["mem://a"] * 3, max_workers=2)] == [b"x"] * 3
        pid = os.fork()
        if pid == 0:
            ok = [r.data for r in raw.get_many(["mem://a", "mem://b"], max_workers=2)] == [b"x", None]
            os._exit(0 if ok else 3)
        _, status = os.waitpid(pid, 0)
        sys.exit(os.waitstatus_to_exitcode(status))
    """)
    if not hasattr(os, "fork"):
        pytest.skip("no fork on this platform")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=20)
    assert run.returncode == 0, run.stderr


def test_idle_pools_are_bounded_whatever_sizes_runs_use():
    """Runs of many different sizes (a Beam pipeline's last, smaller batches) keep at most IDLE_POOLS idle
    pools; the others are shut down, so idle threads do not pile up."""
    from bitstore.engine import batch

    before = threading.active_count()
    store = DictStore({f"k{i}": b"x" for i in range(40)})
    for workers in range(1, 31):
        assert all(r.status == "found" for r in store.get_many([f"k{i}" for i in range(40)], max_workers=workers))
    assert len(batch._pools._idle) <= batch.IDLE_POOLS
    kept = sum(n for n, _ in batch._pools._idle)
    deadline = time.monotonic() + 10
    while threading.active_count() > before + kept and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= before + kept, (threading.active_count(), before, kept)


# --- hardening: the key iterator failing, BaseException from a store ------------------------------------
def test_results_read_before_a_key_iterator_error_are_yielded_first():
    blobs = {f"k{i}": str(i).encode() for i in range(10)}

    def keys():
        yield from blobs
        raise OSError("the input file went away")

    got = []
    with pytest.raises(OSError, match="went away"):
        for result in DictStore(blobs).get_many(keys(), max_workers=4):
            got.append(result)
    assert [(r.key, r.data) for r in got] == list(blobs.items())


@given(n_before=st.integers(0, 60), max_workers=st.integers(1, 8))
@settings(max_examples=25, deadline=None)
def test_every_key_read_before_the_iterator_fails_gets_its_result(n_before, max_workers):
    store = DictStore({f"k{i}": b"x" for i in range(0, 60, 2)})

    def keys():
        for i in range(n_before):
            yield f"k{i}" if i % 5 else 42  # found, missing and invalid keys alike
        raise ValueError("bad row")

    got = []
    with pytest.raises(ValueError, match="bad row"):
        got.extend(store.get_many(keys(), max_workers=max_workers, progress=False))
    assert [r.key for r in got] == [f"k{i}" if i % 5 else 42 for i in range(n_before)]


class BaseExceptionStore(DictStore):
    """A user's store that raises BaseExceptions for some keys (asyncio cancellation, sys.exit)."""

    def get(self, uri):
        if uri.startswith("cancel"):
            raise asyncio.CancelledError("cancelled inside the store")
        if uri.startswith("exit"):
            raise SystemExit(3)
        if uri.startswith("interrupt"):
            raise KeyboardInterrupt
        return super().get(uri)


def test_a_base_exception_from_a_store_fails_that_key_only():
    keys = [f"k{i}" for i in range(20)] + ["cancel-1", "exit-1", "interrupt-1"] * 5
    store = BaseExceptionStore({f"k{i}": b"v" for i in range(20)})
    before = threading.active_count()
    for _ in range(3):  # threads that died would leave futures unresolved or pools shrinking
        results = list(store.get_many(keys, max_workers=4, progress=False))
        assert [r.key for r in results] == keys
        assert all(r.status == "found" for r in results[:20])
        errors = {r.key: r.error for r in results[20:]}
        assert all(r.status == "failed" for r in results[20:])
        assert "CancelledError" in errors["cancel-1"] and "SystemExit" in errors["exit-1"]
        assert "KeyboardInterrupt" in errors["interrupt-1"]
    assert threading.active_count() <= before + 4


def _fill_pool(n: int) -> None:
    """Run ``n`` fetches at once on the kept pool of ``n`` workers, so it has all its threads (a thread pool starts
    them lazily, and a run that finds its pool's only thread not yet idle would start another)."""
    barrier = threading.Barrier(n, timeout=10)

    class Gathering(DictStore):
        def get(self, uri):
            barrier.wait()
            return super().get(uri)

    keys = [f"w{i}" for i in range(n)]
    assert [r.status for r in Gathering({k: b"w" for k in keys}).get_many(keys, max_workers=n, progress=False)] \
        == ["found"] * n


def test_a_base_exception_in_the_consumer_returns_the_pool():
    """Interrupted while reading keys: the error propagates at once and the run's threads are reused next time."""
    from bitstore.engine import batch

    def keys():
        yield "k1"
        raise KeyboardInterrupt

    store = DictStore({"k1": b"1"})
    _fill_pool(3)
    threads = threading.active_count()
    with pytest.raises(KeyboardInterrupt):
        list(store.get_many(keys(), max_workers=3, progress=False))
    assert any(n == 3 for n, _ in batch._pools._idle)
    assert [r.status for r in store.get_many(["k1"] * 5, max_workers=3, progress=False)] == ["found"] * 5
    assert threading.active_count() <= threads
