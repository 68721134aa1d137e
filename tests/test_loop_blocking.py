"""The event-loop engine never runs a user's blocking code on its loop: a tier whose ``is_valid`` blocks holds up
its own key only, while the loop goes on answering the others."""
from __future__ import annotations

import threading

from bitstore import Composite, NotFoundInStore, Store
from bitstore.engine.routes import Route


class Routed(Store):
    """A tier on the loop's fast path (answers ``async_route``); a GET of ``release`` sets ``released``."""

    def __init__(self, blobs: dict[str, bytes], released: threading.Event):
        self.blobs, self.released = blobs, released

    def is_valid(self, uri):
        return isinstance(uri, str)

    def get(self, uri):
        if uri in self.blobs:
            return self.blobs[uri]
        raise NotFoundInStore(self, uri)

    def async_route(self):
        return Route(self, self._attempt, lambda: True)

    async def _attempt(self, uri, views):
        if uri == "release":
            self.released.set()
        return self.blobs[uri] if uri in self.blobs else NotFoundInStore(self, uri)


class SlowCheck(Store):
    """A user's tier whose ``is_valid`` waits for ``released`` (at most ``timeout`` seconds, then says so)."""

    def __init__(self, released: threading.Event, timeout: float = 20.0):
        self.released, self.timeout, self.waited_out = released, timeout, []
        self.checked_on = []

    def is_valid(self, uri):
        self.checked_on.append(threading.current_thread().name)
        if uri == "slow" and not self.released.wait(self.timeout):
            self.waited_out.append(uri)
        return True

    def get(self, uri):
        return b"from the slow tier"


def test_a_slow_is_valid_does_not_block_the_loop():
    released = threading.Event()
    slow = SlowCheck(released)
    store = Composite().append_source(Routed({"release": b"r"}, released)).append_source(slow)
    assert store.async_route() is not None
    results = list(store.get_many(["slow", "release"], engine="async", max_workers=4))
    assert [(r.status, r.data) for r in results] == [("found", b"from the slow tier"), ("found", b"r")]
    assert slow.waited_out == []  # the "release" key was answered on the loop while "slow" was being checked
    assert "bitstore-engine-loop" not in slow.checked_on


def test_the_thread_engine_walks_the_same_way():
    released = threading.Event()
    released.set()
    slow = SlowCheck(released)
    store = Composite().append_source(Routed({"a": b"A"}, released)).append_source(slow)
    results = list(store.get_many(["a", "b", 7], engine="threads"))
    assert [(r.status, r.data) for r in results] == [("found", b"A"), ("found", b"from the slow tier"),
                                                     ("found", b"from the slow tier")]


def test_no_tier_accepting_is_invalid_on_both_engines():
    class Picky(Routed):
        def is_valid(self, uri):
            return uri == "a"

    store = Composite().append_source(Picky({"a": b"A"}, threading.Event()))
    for engine in ("threads", "async"):
        assert [r.status for r in store.get_many(["a", "zz"], engine=engine)] == ["found", "invalid"]
