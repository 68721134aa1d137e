"""``MemoryRaw``: mem:// URIs, LRU eviction, size bound, thread safety, pickling."""
from __future__ import annotations

import pickle
import threading

import pytest

from bitstore import BlobTooLarge, InvalidURI, MemoryRaw, NotFoundInStore


def test_put_get_and_uris():
    store = MemoryRaw()
    store.put("mem://a/b", b"ab")
    store.put("mem://x", bytearray(b"xx"))
    assert store.get("mem://a/b") == b"ab"
    assert store.get("mem://x") == b"xx" and type(store.get("mem://x")) is bytes
    assert "mem://a/b" in store and len(store) == 2 and store.nbytes == 4
    with pytest.raises(NotFoundInStore):
        store.get("mem://missing")
    for bad in ["mem://", "a/b", "MEM://a", "s3://b/k", None, 1, b"mem://a"]:
        assert not store.is_valid(bad)
        with pytest.raises(InvalidURI):
            store.get(bad)
    with pytest.raises(TypeError):
        store.put("mem://s", "a str is not bytes")


def test_overwrite_keeps_the_size_exact():
    store = MemoryRaw()
    store.put("mem://k", b"12345")
    store.put("mem://k", b"12")
    assert store.nbytes == 2 and len(store) == 1


def test_lru_eviction_by_max_bytes():
    store = MemoryRaw(max_bytes=10)
    store.put("mem://a", b"aaaa")
    store.put("mem://b", b"bbbb")
    assert store.get("mem://a") == b"aaaa"  # a is now the most recently used
    store.put("mem://c", b"cccc")  # 12 bytes > 10: evict the least recently used, b
    assert "mem://b" not in store
    assert store.get("mem://a") == b"aaaa" and store.get("mem://c") == b"cccc"
    assert store.nbytes == 8
    store.put("mem://d", b"dddddddddd")  # exactly the bound: everything else goes
    assert len(store) == 1 and store.nbytes == 10


def test_a_blob_larger_than_max_bytes_is_refused_and_evicts_nothing():
    store = MemoryRaw(max_bytes=4)
    store.put("mem://a", b"aa")
    with pytest.raises(BlobTooLarge):
        store.put("mem://big", b"12345")
    assert store.get("mem://a") == b"aa" and "mem://big" not in store


@pytest.mark.parametrize("bad", [-1, 1.5, "10K", "ten", True])
def test_max_bytes_validation(bad):
    with pytest.raises(ValueError):
        MemoryRaw(max_bytes=bad)


def test_thread_safety_under_concurrent_put_and_get():
    store = MemoryRaw(max_bytes=64 * 100)
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def worker(w: int):
        try:
            barrier.wait()
            for i in range(400):
                key = f"mem://{(w * 7 + i) % 150}"
                data = key.encode().ljust(64, b".")
                store.put(key, data)
                try:
                    assert store.get(key) == data  # every writer of a key writes the same bytes
                except NotFoundInStore:
                    pass  # evicted by another thread in between: allowed
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.nbytes <= 64 * 100
    assert store.nbytes == sum(len(store.get(k)) for k in list(store._blobs))
    assert len(store) == 100


def test_get_many_on_memory():
    store = MemoryRaw(name="ram")
    store.put("mem://a", b"A")
    results = list(store.get_many(["mem://a", "mem://b", "nope"]))
    assert [(r.status, r.source) for r in results] == [("found", "ram"), ("missing", None), ("invalid", None)]


def test_pickle_round_trip_keeps_blobs_order_and_bound():
    store = MemoryRaw(max_bytes=8, name="ram")
    store.put("mem://a", b"aaaa")
    store.put("mem://b", b"bbbb")
    store.get("mem://a")
    back = pickle.loads(pickle.dumps(store))
    assert back.name == "ram" and back.max_bytes == 8 and back.get("mem://b") == b"bbbb"
    back.put("mem://c", b"cccc")  # LRU order survived: a (least recent after get b) is evicted
    assert "mem://a" not in back and "mem://b" in back
    assert store.get("mem://a") == b"aaaa"  # the original is untouched
