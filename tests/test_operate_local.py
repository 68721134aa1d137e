"""``scrub`` and ``replicate`` over stores whose reads are local (``core.chunks``: keys in chunks, small blobs on the
caller's thread, large ones on a few threads):
the same results as the per-key path, in the same order, with the same guarantees (listing errors raised after the
results before them, large blobs streamed, corrupt sources never copied, progress, bounded destinations)."""
from __future__ import annotations

import hashlib
import os
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bitstore
from bitstore import FetchFailed, InvalidURI, LocalRaw, MemoryRaw, Sha1Store
from bitstore.core import chunks
from bitstore.core.chunks import _chunks, reads_locally, run_chunked
from tests.core_helpers import BrokenListing

LOCAL_SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


class PerKey(Sha1Store):
    """A subclass: not bitstore's own reading code, so ``reads_on_loop()`` is False and the per-key path is taken."""


def local(folder, cls=Sha1Store) -> Sha1Store:
    os.makedirs(folder, exist_ok=True)
    return cls(LocalRaw(folder), os.path.join(str(folder), ""))


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    monkeypatch.setattr(chunks, "CHUNK", 3)  # several chunks from a few keys


def test_which_stores_take_the_chunked_path(tmp_path):
    assert reads_locally(local(tmp_path / "a"))
    assert reads_locally(Sha1Store(MemoryRaw(), "mem://a/"))
    assert not reads_locally(local(tmp_path / "b", PerKey))
    assert not reads_locally(Sha1Store(LocalRaw(tmp_path / "c", max_bytes=1 << 20), f"{tmp_path}/c/"))
    assert not reads_locally(local(tmp_path / "a"), object())


# --- the chunker ------------------------------------------------------------------------------------------
class Broke(Exception):
    pass


@LOCAL_SETTINGS
@given(n=st.integers(0, 30), size=st.integers(1, 7), fail_at=st.none() | st.integers(0, 30))
def test_chunks_keep_every_item_in_order_and_raise_after_them(n, size, fail_at):
    def items():
        for i in range(n):
            if i == fail_at:
                raise Broke("the listing broke")
            yield i

    seen = []
    fails = fail_at is not None and fail_at < n
    try:
        for chunk in _chunks(items(), size):
            assert 1 <= len(chunk) <= size
            seen.extend(chunk)
    except Broke:
        assert fails
    else:
        assert not fails
    assert seen == list(range(fail_at if fails else n))


class Sized(tuple):
    """A result with a blob's ``size``, as scrub's and replicate's results have."""

    @property
    def size(self):
        return self[-1]


@given(sizes=st.lists(st.sampled_from([None, 0, 100, chunks.SMALL_BLOB - 1, chunks.SMALL_BLOB, 10 * chunks.SMALL_BLOB]),
                      max_size=40), size=st.integers(1, 7))
@settings(max_examples=60, deadline=None)
def test_run_chunked_works_small_blobs_on_the_callers_thread_and_large_ones_on_threads(sizes, size):
    import threading

    caller = threading.get_ident()
    groups = [sizes[i:i + size] for i in range(0, len(sizes), size)]
    large = next((i for i, group in enumerate(groups)
                  if sum(s or 0 for s in group) >= chunks.SMALL_BLOB * len(group)), None)
    out = [r for results in run_chunked(MemoryRaw(), range(len(sizes)),
                                        lambda i: Sized((i, threading.get_ident(), sizes[i])),
                                        lambda item, error: None, max_workers=16, chunk=size) for r in results]
    assert [r[0] for r in out] == list(range(len(sizes)))
    for i, (_, thread, _) in enumerate(out):  # the first large chunk on the caller's thread, what follows on others
        assert (thread == caller) == (large is None or i // size <= large), (i, large)


def test_run_chunked_answers_every_item_even_a_base_exception_on_its_threads():
    def call(item):
        if item == 4:
            raise KeyboardInterrupt("stop")
        if item == 5:
            raise ValueError("bad")
        return Sized(("ok", item, chunks.SMALL_BLOB))

    out = [r for results in run_chunked(MemoryRaw(), range(8), call, lambda item, error: ("failed", item, error),
                                        max_workers=16, chunk=3) for r in results]
    assert out[:4] == [("ok", i, chunks.SMALL_BLOB) for i in range(4)]
    assert out[6:] == [("ok", 6, chunks.SMALL_BLOB), ("ok", 7, chunks.SMALL_BLOB)]
    assert out[4] == ("failed", 4, "KeyboardInterrupt: stop") and out[5] == ("failed", 5, "ValueError: bad")


def test_run_chunked_on_the_callers_thread_answers_an_error_and_stops_at_ctrl_c():
    def call(item):
        if item == 1:
            raise ValueError("bad")
        if item == 4:
            raise KeyboardInterrupt
        return ("ok", item)

    seen = []
    with pytest.raises(KeyboardInterrupt):
        for results in run_chunked(MemoryRaw(), range(8), call, lambda item, error: ("failed", item, error),
                                   max_workers=16, chunk=3):
            seen.extend(results)
    assert seen == [("ok", 0), ("failed", 1, "ValueError: bad"), ("ok", 2)]


# --- scrub --------------------------------------------------------------------------------------------------
def _fill(folder, ids: set[int], corrupt: set[int], fifo: set[int]) -> dict[int, str]:
    """Blobs ``value <i>`` under their SHA1 in ``folder``: rotten bytes for ``corrupt``, a FIFO (unreadable as a
    blob: ``failed``) for ``fifo``."""
    os.makedirs(folder, exist_ok=True)
    keys = {}
    for i in ids:
        data = f"value {i}".encode()
        keys[i] = key = sha1(data)
        path = os.path.join(folder, key)
        if i in fifo:
            os.mkfifo(path)
        else:
            with open(path, "wb") as f:
                f.write(b"rotten" if i in corrupt else data)
    return keys


@LOCAL_SETTINGS
@given(ids=st.sets(st.integers(0, 40), max_size=25), corrupt=st.sets(st.integers(0, 40), max_size=6),
       fifo=st.sets(st.integers(0, 40), max_size=3), start=st.none() | st.integers(0, 40))
def test_scrub_chunked_gives_the_per_key_results(tmp_path_factory, ids, corrupt, fifo, start):
    folder = tmp_path_factory.mktemp("scrub")
    keys = _fill(folder, ids, corrupt - fifo, fifo)
    after = None if start is None else sha1(f"value {start}".encode())
    chunked = [(r.key, r.status, r.size, r.error) for r in
               bitstore.scrub(local(folder), start_after=after, max_workers=8, progress=False)]
    per_key = [(r.key, r.status, r.size, r.error) for r in
               bitstore.scrub(local(folder, PerKey), start_after=after, max_workers=8, progress=False)]
    assert chunked == per_key
    expected = sorted(k for k in keys.values() if after is None or k > after)
    assert [key for key, *_ in chunked] == expected
    status = {keys[i]: "failed" if i in fifo else "corrupt" if i in corrupt else "ok" for i in ids}
    assert all(s == status[key] for key, s, _, _ in chunked)


class LocalBrokenListing(BrokenListing):
    """Reads as local as a ``MemoryRaw`` (chunked path), and a listing that fails after five names."""

    def reads_on_loop(self) -> bool:
        return True


def _broken_source(n: int = 12) -> tuple[Sha1Store, list[str]]:
    store = Sha1Store(LocalBrokenListing(), "mem://b/")
    items = {sha1(f"blob {i}".encode()): f"blob {i}".encode() for i in range(n)}
    for key, data in items.items():
        store.put(key, data)
    assert reads_locally(store)
    return store, sorted(items)


def test_scrub_chunked_raises_after_the_results_before_a_broken_listing():
    store, keys = _broken_source()
    seen = []
    with pytest.raises(FetchFailed):
        for result in bitstore.scrub(store, progress=False):
            seen.append((result.key, result.status))
    assert seen == [(key, "ok") for key in keys[:5]]


class Bar:
    def __init__(self):
        self.n, self.closed = 0, False

    def update(self, n):
        self.n += n

    def close(self):
        self.closed = True


def test_scrub_and_replicate_chunked_update_their_progress_bar(tmp_path, monkeypatch):
    from bitstore.engine import batch

    bars = []
    def progress_bar(total, enabled, unit="blob"):
        if enabled:
            bars.append(Bar())
            return bars[-1]
        return None

    monkeypatch.setattr(batch, "_progress_bar", progress_bar)
    keys = _fill(tmp_path / "src", set(range(10)), set(), set())
    assert len(list(bitstore.scrub(local(tmp_path / "src"), progress=True))) == 10
    report = bitstore.replicate(local(tmp_path / "src"), local(tmp_path / "dst"), progress=True)
    assert report.copied == len(keys)
    assert [(bar.n, bar.closed) for bar in bars] == [(10, True), (10, True)]


# --- replicate ----------------------------------------------------------------------------------------------
@LOCAL_SETTINGS
@given(src_ids=st.sets(st.integers(0, 40), max_size=25), dst_ids=st.sets(st.integers(0, 40), max_size=25),
       corrupt=st.sets(st.integers(0, 40), max_size=6), fifo=st.sets(st.integers(0, 40), max_size=3))
def test_replicate_chunked_gives_the_per_key_report(tmp_path_factory, src_ids, dst_ids, corrupt, fifo):
    work = tmp_path_factory.mktemp("replicate")
    keys = _fill(work / "src", src_ids, corrupt - fifo, fifo)
    reports, contents = [], []
    for name, cls in (("chunked", Sha1Store), ("per-key", PerKey)):
        _fill(work / name, dst_ids, set(), set())
        report = bitstore.replicate(local(work / "src", cls), local(work / name, cls), max_workers=8, progress=False)
        reports.append(report)
        contents.append({p: (work / name / p).read_bytes() for p in os.listdir(work / name)})
    assert reports[0] == reports[1] and reports[0].problems == reports[1].problems
    assert contents[0] == contents[1]
    assert all(sha1(data) == key for key, data in contents[0].items())  # nothing corrupt was copied
    new = {keys[i] for i in src_ids} - {sha1(f"value {i}".encode()) for i in dst_ids}
    bad = {keys[i] for i in src_ids if i in corrupt or i in fifo}
    assert reports[0].copied == len(new - bad)
    assert {key for key, _, _ in reports[0].problems} == new & bad


def test_replicate_chunked_raises_after_copying_what_was_listed_before_a_broken_listing():
    src, keys = _broken_source()
    dst = Sha1Store(MemoryRaw(), "mem://d/")
    with pytest.raises(FetchFailed):
        bitstore.replicate(src, dst, progress=False)
    assert list(dst.iter_keys()) == keys[:5]


def test_replicate_chunked_streams_a_blob_larger_than_the_bytes_in_flight(tmp_path, monkeypatch):
    data = os.urandom(64 << 20)
    src = local(tmp_path / "a")
    src.put(sha1(data), data)

    def held_whole(self, uri):
        raise AssertionError("held whole")

    monkeypatch.setattr(LocalRaw, "get", held_whole)
    dst = local(tmp_path / "b")
    assert reads_locally(src, dst)
    tracemalloc.start()
    try:
        report = bitstore.replicate(src, dst, max_bytes_in_flight=256 << 10, progress=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (report.copied, report.bytes) == (1, len(data))
    assert peak < len(data) // 2  # never held whole (the destination writes 8 MiB at a time)
    assert (tmp_path / "b" / sha1(data)).read_bytes() == data


def test_replicate_chunked_never_copies_a_large_corrupt_blob(tmp_path):
    data = os.urandom(1 << 20)
    key = sha1(data)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / key).write_bytes(data[:-1] + b"!")
    report = bitstore.replicate(local(tmp_path / "a"), local(tmp_path / "b"), max_bytes_in_flight=1000,
                                progress=False)
    assert (report.copied, report.corrupt) == (0, 1) and not (tmp_path / "b" / key).exists()


def test_replicate_to_a_bounded_cache_accounts_its_writes(tmp_path):
    keys = _fill(tmp_path / "src", set(range(12)), set(), set())
    dst = Sha1Store(LocalRaw(tmp_path / "dst", max_bytes=1 << 20), f"{tmp_path}/dst/")
    report = bitstore.replicate(local(tmp_path / "src"), dst, progress=False)
    assert report.copied == len(keys)
    assert dst.usage().bytes_used == report.bytes == sum(len(f"value {i}".encode()) for i in range(12))


# --- LocalRaw's write of a name right under its root ---------------------------------------------------------
def test_a_put_through_a_symlink_under_the_root(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "target").write_bytes(b"old")
    (root / "alias").symlink_to(root / "target")
    (root / "escape").symlink_to(outside / "new")  # dangling, out of the root
    store = LocalRaw(root)
    store.put("alias", b"through the link")
    assert (root / "target").read_bytes() == b"through the link" and (root / "alias").is_symlink()
    for uri in ("escape", str(root / "escape")):
        with pytest.raises(InvalidURI):
            store.put(uri, b"x")
    assert list(outside.iterdir()) == []
    store.put(str(root / "plain"), b"abs")
    store.put("rel", b"rel")
    assert (root / "plain").read_bytes() == b"abs" and (root / "rel").read_bytes() == b"rel"
