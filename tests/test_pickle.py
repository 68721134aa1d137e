"""Stores travel to worker processes: pickle round trips keep tiers, names, counters and behaviour."""
from __future__ import annotations

import pickle

from bitstore import Composite, LocalRaw, MemoryRaw, Sha1Cache, Sha1Composite, Sha1Store
from tests.core_helpers import DictAPI, DictStore, sha1

DATA = b"travelling blob"
KEY = sha1(DATA)


def test_sha1_cache_keeps_its_counters():
    cache = Sha1Cache(MemoryRaw(), "mem://c/", name="c")
    cache.put(KEY, b"corrupt")
    cache.put(KEY, b"corrupt again")
    back = pickle.loads(pickle.dumps(cache))
    assert back.write_failures == 2 and back.name == "c" and back.verify is True and back.prefix == "mem://c/"
    back.put(KEY, b"still corrupt")  # the counter still counts after unpickling
    assert back.write_failures == 3 and cache.write_failures == 2


def test_composite_with_tiers_round_trips_and_still_writes_back(tmp_path):
    archive = LocalRaw(tmp_path / "archive")
    other = b"archived"
    archive.put(sha1(other), other)
    store = Sha1Composite(name="tiers")
    store.append_source(Sha1Store(archive, "", name="archive"))
    store.append_cache(Sha1Cache(MemoryRaw(), "mem://cache/", name="cache"))
    store.append_source(DictAPI({KEY: DATA}, name="api"))
    store.append_source(DictStore(), cache_result=False)
    assert store.get(KEY) == DATA

    back = pickle.loads(pickle.dumps(store))
    assert back.name == "tiers"
    assert back.tier_names == ["archive", "cache", "api", "DictStore"]
    assert back.cache is back.sources[1]  # the write-back target is still the tier it was
    assert back.cache_writes == 1
    assert back.get(sha1(other)) == other
    [result] = back.get_many([KEY])
    assert (result.status, result.source) == ("found", "cache")  # the cached copy travelled with it
    new = b"new blob"
    back.sources[2].blobs[sha1(new)] = new
    [result] = back.get_many([sha1(new)])
    assert (result.source, result.cached) == ("api", True)
    assert back.cache.get(sha1(new)) == new
    assert back.cache_writes == 2 and store.cache_writes == 1
    assert repr(back) == repr(store)


def test_plain_composite_round_trip():
    store = Composite(name="plain")
    store.append_source(MemoryRaw(name="m"))
    store.sources[0].put("mem://k", b"v")
    back = pickle.loads(pickle.dumps(store))
    assert back.get("mem://k") == b"v" and back.tier_names == ["m"]


def test_raw_stores_round_trip(tmp_path):
    mem = MemoryRaw(max_bytes=100, name="m")
    mem.put("mem://k", b"v")
    local = LocalRaw(tmp_path, max_blob_bytes=10, name="l")
    local.put("k", b"v")
    for store, uri in [(mem, "mem://k"), (local, "k")]:
        back = pickle.loads(pickle.dumps(store))
        assert back.name == store.name and back.get(uri) == b"v"
