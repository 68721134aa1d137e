"""``stat``/``stat_many``, ``put_many`` and ``open`` on the core stores (local, memory, user stores, composites)."""
from __future__ import annotations

import io
import os

import pytest
from hypothesis import given, settings
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
)
from bitstore.backends._streams import RangeReader
from bitstore.core.bulk import BlobInfo, PutResult

from .core_helpers import DictAPI, DictStore, WritableDictStore, sha1


def test_stat_on_local_and_memory_reads_no_body(tmp_path):
    (tmp_path / "a").write_bytes(b"x" * 50)
    (tmp_path / "d").mkdir()
    local = LocalRaw(tmp_path, max_blob_bytes=10)  # stat never reads: the whole-blob cap does not apply
    assert local.stat("a") == BlobInfo("a", "found", 50, local.name)
    assert local.stat("nope").status == "missing"
    assert local.stat("d").status == "missing"  # a folder is not a blob
    assert local.stat("../outside").status == "invalid"
    memory = MemoryRaw()
    memory.put("mem://k", b"abc")
    assert memory.head("mem://k") == 3
    assert memory.stat("mem://z").status == "missing"
    assert memory.stat(5).status == "invalid"


def test_local_stat_refuses_a_symlink_out_of_the_root(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.write_bytes(b"secret")
    os.symlink(outside, root / "link")
    store = LocalRaw(root)
    assert store.stat("link").status == "invalid"
    with pytest.raises(InvalidURI):
        store.open("link")


def test_a_user_store_with_only_get_gets_stat_from_its_length():
    store = DictStore({"k": b"12345"}, fail={"bad": RuntimeError("boom")})
    assert store.stat("k") == BlobInfo("k", "found", 5, "DictStore")
    assert store.stat("none").status == "missing"
    info = store.stat("bad")
    assert info.status == "failed" and "boom" in info.error
    assert store.open("k").read() == b"12345"


def test_composite_stat_asks_tiers_in_order_without_writing_back():
    data = b"blob"
    key = sha1(data)
    api = DictAPI({key: data}, name="api")
    cache = Sha1Cache(MemoryRaw(), "mem://c/")
    store = Sha1Composite()
    store.append_cache(cache)
    store.append_source(api)
    info = store.stat(f"SHA1://{key.upper()}")
    assert (info.status, info.size, info.source) == ("found", 4, "api")
    assert store.stat(key).source == "api"  # nothing was written back by stat
    assert store.cache_writes.value == 0
    store.get(key)  # a read writes back; stat then finds the cache first
    assert store.stat(key).source == cache.name
    assert store.open(key).read() == data


def test_composite_stat_failed_is_not_missing():
    store = Composite()
    store.append_source(DictStore({}, fail={"k": RuntimeError("tier down")}))
    store.append_source(DictStore({}))
    info = store.stat("k")
    assert info.status == "failed" and "tier down" in info.error
    with pytest.raises(FetchFailed):
        store.open("k")
    with pytest.raises(NotFoundInStore):
        Composite().append_source(DictStore({})).open("k")


def test_stat_many_is_in_order_and_one_per_key():
    store = MemoryRaw()
    for i in range(0, 100, 3):
        store.put(f"mem://{i}", b"x" * i)
    keys = [f"mem://{i}" for i in range(100)] + ["bad", None]
    infos = list(store.stat_many(iter(keys), max_workers=8))
    assert [i.key for i in infos] == keys
    assert [i.status for i in infos[:100]] == ["found" if i % 3 == 0 else "missing" for i in range(100)]
    assert [i.size for i in infos[:7:3]] == [0, 3, 6]
    assert [i.status for i in infos[100:]] == ["invalid", "invalid"]


def test_put_many_pairs_and_paths_on_a_sha1_store(tmp_path):
    files = tmp_path / "files"
    files.mkdir()
    (files / "a.txt").write_bytes(b"alpha")
    (files / "b.txt").write_bytes(b"beta")
    store = Sha1Store(LocalRaw(tmp_path / "blobs"), "")
    results = list(store.put_many([files / "a.txt", str(files / "b.txt"), (sha1(b"gamma"), b"gamma"),
                                   ("0" * 40, b"wrong"), ("not a key", b"x"), files / "missing", 42,
                                   (sha1(b"s"), "str")]))
    assert [r.status for r in results] == ["stored", "stored", "stored", "invalid", "invalid", "invalid", "invalid",
                                           "invalid"]
    assert results[0] == PutResult(sha1(b"alpha"), "stored", 5, str(files / "a.txt"))
    assert "the data's key is" in results[3].error
    assert store.get(sha1(b"beta")) == b"beta"
    again = list(store.put_many([files / "a.txt", (sha1(b"gamma"), b"gamma")]))
    assert [r.status for r in again] == ["skipped", "skipped"]
    forced = list(store.put_many([files / "a.txt"], skip_existing=False))
    assert forced[0].status == "stored"


def test_put_many_writes_a_key_given_twice_once():
    target = WritableDictStore()
    store = Sha1Store(target, "")
    items = [(sha1(b"same"), b"same")] * 40 + [(sha1(b"other"), b"other")]
    results = list(store.put_many(items, max_workers=8, skip_existing=False))
    assert [r.status for r in results] == ["stored"] + ["skipped"] * 39 + ["stored"]
    assert sorted(target.puts) == sorted([sha1(b"same"), sha1(b"other")])


def test_put_many_reports_failures_and_refusals():
    store = Composite()
    target = WritableDictStore(put_error=OSError("disk full"))
    store.append_cache(target)
    result = next(store.put_many([("k", b"x")]))
    assert result.status == "failed" and "disk full" in result.error
    cache = Sha1Cache(WritableDictStore(put_error=OSError("refused")), "")
    assert next(cache.put_many([(sha1(b"x"), b"x")])).status == "failed"  # Sha1Cache.put returns False
    assert next(DictStore({}).put_many([("k", b"x")])).status == "failed"  # no put at all
    no_keys = next(MemoryRaw().put_many([__file__]))
    assert no_keys.status == "invalid" and "pass (key, bytes) pairs" in no_keys.error


def test_put_many_skips_what_the_composites_write_target_has():
    data = b"present"
    key = sha1(data)
    cache = Sha1Cache(MemoryRaw(), "mem://c/")
    store = Sha1Composite()
    store.append_source(DictAPI({key: data}))
    store.append_cache(cache)
    assert next(store.put_many([(key, data)])).status == "stored"  # in the API, not in the write target
    assert next(store.put_many([(f"sha1://{key}", data)])).status == "skipped"
    assert cache.get(key) == data


def test_local_open_streams_the_file(tmp_path):
    (tmp_path / "f").write_bytes(b"0123456789")
    store = LocalRaw(tmp_path, max_blob_bytes=3)
    with store.open("f") as f:
        f.seek(4)
        assert f.read(3) == b"456" and f.tell() == 7
    with pytest.raises(NotFoundInStore):
        store.open("nope")
    (tmp_path / "d").mkdir()
    with pytest.raises(NotFoundInStore):
        store.open("d")


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300), st.lists(st.tuples(st.sampled_from(["seek", "read", "readinto"]),
                                                    st.integers(-400, 400), st.sampled_from([0, 1, 2])), max_size=12))
def test_range_reader_behaves_like_bytesio(data, ops):
    calls = []

    def read_range(start, stop):
        calls.append((start, stop))
        return data[start:stop]

    ours, model = io.BufferedReader(RangeReader(read_range, len(data), "x"), buffer_size=16), io.BytesIO(data)
    for op, n, whence in ops:
        if op == "seek":
            target = {0: 0, 1: model.tell(), 2: len(data)}[whence] + n
            if target < 0:
                with pytest.raises(ValueError):
                    ours.seek(n, whence)
                continue
            assert ours.seek(n, whence) == model.seek(n, whence)
        elif op == "read":
            assert ours.read(n if n >= 0 else -1) == model.read(n if n >= 0 else -1)
        else:
            a, b = bytearray(abs(n)), bytearray(abs(n))
            assert ours.readinto(a) == model.readinto(b) and a == b
        assert ours.tell() == model.tell()
    assert all(0 <= start < stop <= len(data) for start, stop in calls)
