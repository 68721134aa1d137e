"""``FetchWindow``: ``get_many``'s engine driven one key at a time (offer, pop with or without waiting, close).

Order, one result per key, dedupe across offers, the window and byte bounds, non-blocking pops, cancellation,
argument checks, and a property test over any interleaving of offers and pops. No timing is asserted: waits
are on events, with a generous limit only so that a broken engine fails instead of hanging."""
from __future__ import annotations

import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bitstore import Sha1Composite
from bitstore.engine.batch import WINDOW_PER_WORKER, FetchWindow
from tests.core_helpers import DictStore, sha1

from .test_batch import SlowStore

BUDGET = 1 << 30


def eventually(condition, limit: float = 30.0) -> None:
    """Wait until ``condition()`` holds (the engine's threads get there on their own)."""
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "the engine never got there"
        time.sleep(0.0005)


class GatedStore(DictStore):
    """Answers ``key`` only once ``release(key)`` was called; records the keys whose get started."""

    def __init__(self, blobs=None, size: int = 10):
        super().__init__(blobs)
        self.size = size
        self.gates: dict[str, threading.Event] = {}
        self.started: list[str] = []
        self.finished: list[str] = []

    def _gate(self, uri) -> threading.Event:
        with self._lock:
            return self.gates.setdefault(uri, threading.Event())

    def release(self, *uris) -> None:
        for uri in uris:
            self._gate(uri).set()

    def get(self, uri):
        with self._lock:
            self.started.append(uri)
        assert self._gate(uri).wait(30)
        with self._lock:
            self.finished.append(uri)
        return uri.encode().ljust(self.size, b".")


def test_results_come_in_offer_order_one_per_key():
    store = SlowStore()  # answers out of order
    keys = [f"k{i}" for i in range(40)]
    got = []
    with FetchWindow(store, max_workers=4, max_bytes_in_flight=BUDGET) as window:
        for key in keys:
            while not window.has_room():
                got.append(window.pop())
            window.offer(key)
        while window:
            got.append(window.pop())
    assert [r.key for r in got] == keys
    assert [r.data for r in got] == [k.encode().ljust(10, b".") for k in keys]


def test_keys_in_the_window_share_one_fetch_and_keep_their_own_form():
    data = b"blob"
    key = sha1(data)
    source = DictStore({key: data})
    store = Sha1Composite()
    store.append_source(source)
    forms = [key, "sha1://" + key, key.upper(), 42, "SHA1://" + key.upper()]
    with FetchWindow(store, max_workers=2, max_bytes_in_flight=BUDGET) as window:
        for form in forms:
            window.offer(form)  # 2 workers, a window of 8: room for all
        got = [window.pop() for _ in forms]
        assert window.pop() is None and len(window) == 0
        window.offer(key)  # the first fetch was popped: a new one
        assert window.pop().data == data
    assert [r.key for r in got] == forms
    assert [r.status for r in got] == ["found"] * 3 + ["invalid", "found"]
    assert "42" in got[3].error
    assert source.calls == {key: 2}


def test_a_non_blocking_pop_returns_only_a_ready_head():
    store = GatedStore()
    with FetchWindow(store, max_workers=4, max_bytes_in_flight=BUDGET) as window:
        assert window.pop(block=False) is None and not window.ready()
        window.offer("a")
        window.offer("b")
        store.release("b")
        eventually(lambda: "b" in store.finished)
        assert window.pop(block=False) is None  # b is done, but a, the head, is not
        assert len(window) == 2
        store.release("a")
        eventually(window.ready)
        assert window.pop(block=False).key == "a"
        eventually(window.ready)
        assert window.pop(block=False).key == "b"
        assert window.pop(block=False) is None


def test_the_window_and_bytes_bound_what_is_offered():
    store = GatedStore(size=1000)
    keys = [f"k{i}" for i in range(20)]
    store.release(*keys)
    with FetchWindow(store, max_workers=2, max_bytes_in_flight=BUDGET) as window:
        for key in keys[:2 * WINDOW_PER_WORKER]:
            assert window.has_room()
            window.offer(key)
        assert not window.has_room()  # the window's cap, whatever the bytes
    with FetchWindow(store, max_workers=1, max_bytes_in_flight=1500) as window:
        window.offer("k0")
        eventually(window.ready)
        assert window.has_room()  # 1,000 bytes held, under the budget
        window.offer("k1")
        eventually(lambda: not window.has_room())  # 2,000 held once k1 is in
        assert len(window) == 2
        assert window.pop().key == "k0"
        assert window.has_room()  # popping gave k0's bytes back


def test_close_cancels_what_has_not_started_and_gives_the_threads_back():
    from bitstore.engine import batch

    store = GatedStore()
    window = FetchWindow(store, max_workers=1, max_bytes_in_flight=BUDGET)
    for key in ("a", "b", "c"):
        window.offer(key)
    eventually(lambda: store.started == ["a"])
    window.close()
    window.close()  # idempotent
    store.release("a", "b", "c")
    eventually(lambda: store.finished == ["a"])
    assert len(window) == 0 and window.pop() is None and window.pop(block=False) is None
    with pytest.raises(RuntimeError, match="closed"):
        window.offer("d")
    assert any(n == 1 for n, _ in batch._pools._idle)
    with FetchWindow(store, max_workers=1, max_bytes_in_flight=BUDGET) as again:  # the pool serves again
        again.offer("b")
        assert again.pop().data.startswith(b"b")
    assert store.started == ["a", "b"]  # the cancelled b and c never ran


def test_arguments_are_checked_like_get_many():
    store = DictStore()
    for kwargs in ({"max_workers": 0}, {"max_workers": 2.0}, {"max_bytes_in_flight": 0}, {"engine": "fibres"}):
        with pytest.raises(ValueError):
            FetchWindow(store, **{"max_bytes_in_flight": 10, **kwargs})


OPS = st.lists(st.one_of(st.tuples(st.just("offer"), st.sampled_from(["k0", "k1", "k2", "gone", 42, "k1"])),
                         st.just(("poll",)), st.just(("wait",))), max_size=40)


@given(ops=OPS, max_workers=st.integers(1, 3))
@settings(max_examples=40, deadline=None)
def test_any_interleaving_of_offers_and_pops_answers_each_key_once_in_order(ops, max_workers):
    blobs = {"k0": b"zero", "k1": b"one", "k2": b""}
    offered, got = [], []
    with FetchWindow(DictStore(blobs), max_workers=max_workers, max_bytes_in_flight=4) as window:
        for op in ops:
            if op[0] == "offer":
                while not window.has_room():
                    got.append(window.pop())
                window.offer(op[1])
                offered.append(op[1])
            elif op[0] == "poll":
                result = window.pop(block=False)
                if result is not None:
                    got.append(result)
            elif window:
                got.append(window.pop())
            assert len(window) == len(offered) - len(got)
        while window:
            got.append(window.pop())
    assert [r.key for r in got] == offered
    expected = {"k0": "found", "k1": "found", "k2": "found", "gone": "missing", 42: "invalid"}
    assert [r.status for r in got] == [expected[k] for k in offered]
    assert [r.data for r in got] == [blobs.get(k) for k in offered]
