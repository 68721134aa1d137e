"""``read_ahead``: a listing read on its own thread gives the same entries in the same order, raises its error
where it happened (never a short listing), holds a bounded number of entries ahead of its reader, and stops when
its reader stops or is dropped; ``replicate`` reads a listing that waits on a service that way."""
from __future__ import annotations

import gc
import hashlib
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bitstore
from bitstore import FetchFailed, MemoryRaw, Sha1Store
from bitstore.core.listed import Listed
from bitstore.core.listing import read_ahead
from tests.core_helpers import BrokenListing

pytestmark = pytest.mark.timeout(60)


def _entries(n: int) -> list[Listed]:
    return [Listed(f"{i:06d}", i) for i in range(n)]


class _Source:
    """A listing generator that counts what it gave, fails after ``fail_at`` entries if told, and says when it was
    closed (its ``finally`` ran)."""

    def __init__(self, n: int, fail_at: int | None = None):
        self.n, self.fail_at, self.given, self.closed = n, fail_at, 0, threading.Event()
        self.ahead: list[int] = []  # entries given and not yet read, at each entry given
        self.read = 0

    def __iter__(self):
        try:
            for entry in _entries(self.n):
                if self.given == self.fail_at:
                    raise FetchFailed(None, "mem://x/", "the listing broke")
                self.given += 1
                self.ahead.append(self.given - self.read)
                yield entry
        finally:
            self.closed.set()


def _threads(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"bitstore-{name}"]


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 40), batch=st.integers(1, 7), ahead=st.integers(1, 3))
def test_the_same_entries_in_the_same_order_and_a_bounded_lead(n, batch, ahead):
    source = _Source(n)
    out = []
    for entry in read_ahead(iter(source), "prop", batch, ahead):
        source.read += 1
        out.append(entry)
    assert out == _entries(n)
    # a batch being filled, ``ahead`` in the queue, one being read: never more than that is held
    assert max(source.ahead, default=0) <= (ahead + 2) * batch
    assert source.closed.wait(10)


@pytest.mark.parametrize("fail_at", [0, 1, 5, 6, 12])
def test_an_error_is_raised_where_it_happened_after_the_entries_before_it(fail_at):
    source = _Source(20, fail_at=fail_at)
    seen = []
    with pytest.raises(FetchFailed, match="the listing broke"):
        for entry in read_ahead(iter(source), "error", 3):
            seen.append(entry)
    assert seen == _entries(fail_at)


def test_a_reader_that_stops_early_or_never_starts_stops_the_thread():
    source = _Source(10_000)
    reader = read_ahead(iter(source), "early", 10, 2)
    assert next(reader) == _entries(1)[0]
    reader.close()
    assert source.closed.wait(10)
    dropped = _Source(10_000)
    read_ahead(iter(dropped), "dropped", 10, 2)  # never read
    gc.collect()
    assert dropped.closed.wait(10)
    assert dropped.given <= 50
    for name in ("early", "dropped"):
        for thread in _threads(name):
            thread.join(10)
        assert not _threads(name)


def test_replicate_raises_when_either_listing_fails_midway_never_a_short_copy():
    items = {hashlib.sha1(f"blob {i}".encode()).hexdigest(): f"blob {i}".encode() for i in range(3000)}

    class Broken(BrokenListing):
        breaks_after = 1500

        def lists_remotely(self) -> bool:  # read ahead on a thread, as a cloud tier's listing
            return True

    for broken_side in ("source", "destination"):
        src_raw, dst_raw = (Broken() if broken_side == "source" else MemoryRaw()), MemoryRaw()
        dst_raw = Broken() if broken_side == "destination" else dst_raw
        src, dst = Sha1Store(src_raw, "mem://s/"), Sha1Store(dst_raw, "mem://d/")
        for key, data in items.items():
            src_raw.put(f"mem://s/{key}", data)
            dst_raw.put(f"mem://d/{key}", data)
        with pytest.raises(FetchFailed, match="the listing broke"):
            bitstore.replicate(src, dst, max_workers=4, progress=False)


def test_only_listings_that_wait_on_a_service_are_read_ahead(tmp_path, monkeypatch):
    from bitstore import LocalRaw, Sha1Composite
    from bitstore.backends.s3 import S3Raw
    from bitstore.core import replicate as replicate_module

    local = Sha1Store(LocalRaw(tmp_path), f"{tmp_path}/")
    cloud = Sha1Store(S3Raw(endpoint_url="http://127.0.0.1:9"), "s3://bucket/blobs/")  # never asked: nothing listed
    both = Sha1Composite()
    both.append_source(local)
    both.append_source(cloud)
    assert [s.lists_remotely() for s in (local, cloud, both)] == [False, True, True]
    assert not Sha1Store(MemoryRaw(), "mem://m/").lists_remotely()
    ahead = []
    monkeypatch.setattr(replicate_module, "read_ahead", lambda entries, name: ahead.append(name) or entries)
    src = Sha1Store(MemoryRaw(), "mem://s/")
    src.put(hashlib.sha1(b"x").hexdigest(), b"x")
    bitstore.replicate(src, local, progress=False)
    assert ahead == []

    class Remote(MemoryRaw):
        def lists_remotely(self) -> bool:
            return True

    far = Sha1Store(Remote(), "mem://far/")
    far.put(hashlib.sha1(b"y").hexdigest(), b"y")
    report = bitstore.replicate(far, local, progress=False)
    assert ahead == ["source"] and report.copied == 1
