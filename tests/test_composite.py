"""``Composite``: tier order, write-back, and "missing is not failed"."""
from __future__ import annotations

import logging

import pytest

from bitstore import (
    Composite,
    FetchFailed,
    InvalidDataFound,
    InvalidURI,
    MemoryRaw,
    NotFoundInStore,
    StoreNotAvailable,
)
from tests.core_helpers import DictAPI, DictStore, WritableDictStore, sha1

DATA = b"some blob"
KEY = sha1(DATA)


def test_tiers_are_tried_in_order_and_the_first_hit_wins():
    first, second = DictStore({"k": b"first"}), DictStore({"k": b"second", "j": b"j2"})
    store = Composite()
    store.append_source(first)
    store.append_source(second)
    assert store.get("k") == b"first"
    assert second.calls["k"] == 0
    assert store.get("j") == b"j2"
    assert first.calls["j"] == 1 and second.calls["j"] == 1


def test_sources_that_do_not_accept_the_uri_are_skipped():
    a, b = DictStore({"a:1": b"A"}, prefix="a:"), DictStore({"b:1": b"B"}, prefix="b:")
    store = Composite()
    store.append_source(a)
    store.append_source(b)
    assert store.get("b:1") == b"B"
    assert a.calls["b:1"] == 0
    assert store.is_valid("a:x") and store.is_valid("b:x") and not store.is_valid("c:x")


def test_invalid_uri_when_no_source_accepts():
    store = Composite()
    store.append_source(DictStore(prefix="a:"))
    with pytest.raises(InvalidURI):
        store.get("c:1")
    with pytest.raises(InvalidURI):
        Composite().get("anything")


def test_append_store_is_an_alias_of_append_source():
    assert Composite.append_store is Composite.append_source
    store = Composite()
    store.append_store(DictStore({"k": b"v"}))
    assert store.get("k") == b"v"


def test_not_found_only_when_every_source_said_not_found():
    store = Composite()
    store.append_source(DictStore())
    store.append_source(DictStore())
    with pytest.raises(NotFoundInStore) as info:
        store.get("k")
    assert type(info.value) is NotFoundInStore


@pytest.mark.parametrize("error", [
    FetchFailed("backend", "k", "8 attempts, last error: 503"),
    StoreNotAvailable("backend", "credentials rejected"),
    RuntimeError("user store exploded"),
    KeyError("k"),
], ids=lambda e: type(e).__name__)
def test_a_failing_tier_makes_a_miss_a_failure(error):
    store = Composite()
    store.append_source(DictStore(fail={"k": error}))
    store.append_source(DictStore())
    with pytest.raises(FetchFailed) as info:
        try:
            store.get("k")
        except NotFoundInStore:
            pytest.fail("a failure was reported as not found")
    assert "DictStore" in str(info.value)
    [result] = store.get_many(["k"])
    assert result.status == "failed" and result.data is None and result.source is None and result.error


@pytest.mark.parametrize("error", [FetchFailed("x", "k", "boom"), StoreNotAvailable("x"), OSError("disk")])
def test_a_failing_tier_does_not_hide_a_later_hit(error):
    store = Composite()
    store.append_source(DictStore(fail={"k": error}))
    store.append_source(DictStore({"k": b"v"}))
    assert store.get("k") == b"v"


def test_invalid_data_moves_on_and_ends_as_missing_with_the_corruption_in_the_message():
    corrupt = DictStore(fail={KEY: InvalidDataFound("tier", KEY, "data has SHA1 " + "0" * 40)})
    store = Composite()
    store.append_source(corrupt)
    store.append_source(DictStore())
    with pytest.raises(NotFoundInStore) as info:
        store.get(KEY)
    assert "0" * 40 in str(info.value)
    store.append_source(DictStore({KEY: DATA}))
    assert store.get(KEY) == DATA


def test_a_tier_returning_non_bytes_is_a_failure():
    class Bad(DictStore):
        def get(self, uri):
            return 42

    store = Composite()
    store.append_source(Bad())
    with pytest.raises(FetchFailed, match="int"):
        store.get("k")


def test_a_failing_cache_read_counts_in_the_verdict(caplog):
    """API.md: missing only when every tier asked, cache tiers included, answered "not found"."""
    cache = DictStore(fail={"k": OSError("cache disk gone")})
    cache.name = "flaky-cache-read"
    store = Composite()
    store.append_cache(cache)
    store.append_source(DictStore())
    with pytest.raises(FetchFailed, match="flaky-cache-read.*cache disk gone") as info:
        store.get("k")
    assert not isinstance(info.value, NotFoundInStore)
    assert store.cache_read_failures == 1
    # and a present blob is still served by a later tier
    store.append_source(DictStore({"k": b"v"}))
    assert store.get("k") == b"v"
    assert store.cache_read_failures == 2
    assert [r for r in caplog.records if "flaky-cache-read" in r.getMessage()]


def test_append_cache_read_true_is_a_source_at_its_position():
    cache_base = WritableDictStore({"k": b"cached"})
    later = DictStore({"k": b"later"})
    store = Composite()
    store.append_source(DictStore())
    store.append_cache(cache_base)
    store.append_source(later)
    assert store.get("k") == b"cached"
    assert later.calls["k"] == 0
    assert store.tier_names == ["DictStore", "WritableDictStore", "DictStore#2"]


def test_append_cache_read_false_is_only_a_write_target():
    cache = WritableDictStore({"k": b"cached"})
    api = DictStore({"k": b"fresh"})
    store = Composite()
    store.append_cache(cache, read=False)
    store.append_source(api, cache_result=True)
    assert store.get("k") == b"fresh"
    assert cache.calls["k"] == 0
    assert cache.blobs["k"] == b"fresh"
    assert store.tier_names == ["DictStore"]


def test_a_second_append_cache_replaces_the_target_and_warns(caplog):
    first, second = WritableDictStore(), WritableDictStore()
    first.name, second.name = "cache-one", "cache-two"
    store = Composite()
    store.append_cache(first)
    with caplog.at_level(logging.WARNING, logger="bitstore"):
        store.append_cache(second)
    assert store.cache is second
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "cache-one" in warnings[0].getMessage() and "cache-two" in warnings[0].getMessage()
    store.append_source(DictStore({"k": b"v"}), cache_result=True)
    store.get("k")
    assert second.blobs == {"k": b"v"} and first.blobs == {}


@pytest.mark.parametrize("make_source, cache_result, written", [
    (lambda: DictAPI({KEY: DATA}), None, True),     # API sources write back by default
    (lambda: DictAPI({KEY: DATA}), True, True),
    (lambda: DictAPI({KEY: DATA}), False, False),
    (lambda: DictStore({KEY: DATA}), None, False),  # other sources do not
    (lambda: DictStore({KEY: DATA}), True, True),
    (lambda: DictStore({KEY: DATA}), False, False),
])
def test_cache_result(make_source, cache_result, written):
    cache = WritableDictStore()
    store = Composite()
    store.append_cache(cache)
    store.append_source(make_source(), cache_result=cache_result)
    assert store.get(KEY) == DATA
    # write-back happened inside the read, before it returned
    assert (KEY in cache.blobs) is written
    assert store.cache_writes == (1 if written else 0)
    assert (store.cache_back != set()) is written


def test_write_back_before_get_many_yields_each_result():
    cache = WritableDictStore()
    api = DictAPI({sha1(bytes([i])): bytes([i]) for i in range(20)})
    store = Composite()
    store.append_cache(cache)
    store.append_source(api)
    for result in store.get_many(list(api.blobs), max_workers=4):
        assert result.status == "found" and result.cached is True
        assert cache.blobs[result.key] == result.data
    assert store.cache_writes == 20


def test_a_hit_from_the_cache_is_not_written_back():
    cache = WritableDictStore({"k": b"v"})
    store = Composite()
    store.append_cache(cache)
    store.append_source(DictStore(), cache_result=True)
    assert store.get("k") == b"v"
    assert cache.puts == [] and store.cache_writes == 0


def test_no_cache_means_no_write_back():
    store = Composite()
    store.append_source(DictAPI({KEY: DATA}))
    assert store.get(KEY) == DATA
    assert store.cache_writes == 0 and store.cache_write_failures == 0


def test_cache_write_failures_are_counted_and_never_raised(caplog):
    cache = WritableDictStore(put_error=OSError("disk full"))
    cache.name = "full-cache"
    store = Composite()
    store.append_cache(cache)
    store.append_source(DictStore({f"k{i}": b"v" for i in range(5)}), cache_result=True)
    with caplog.at_level(logging.WARNING, logger="bitstore"):
        assert [store.get(f"k{i}") for i in range(5)] == [b"v"] * 5
    assert store.cache_write_failures == 5 and store.cache_writes == 0
    assert len([r for r in caplog.records if "full-cache" in r.getMessage()]) == 1
    [result] = store.get_many(["k0"])
    assert result.status == "found" and result.cached is False


def test_unique_tier_names_and_provenance():
    store = Composite()
    store.append_source(MemoryRaw(name="hot"))
    store.append_source(MemoryRaw(name="hot"))
    store.append_source(MemoryRaw(name="hot"))
    store.sources[2].put("mem://k", b"v")
    assert store.tier_names == ["hot", "hot#2", "hot#3"]
    [result] = store.get_many(["mem://k"])
    assert result.source == "hot#3"
    assert "hot#3" in repr(store)


def test_put_goes_to_the_cache_tier():
    cache = WritableDictStore()
    store = Composite()
    with pytest.raises(NotImplementedError):
        store.put("k", b"v")
    store.append_cache(cache)
    store.put("k", b"v")
    assert cache.blobs == {"k": b"v"}


def test_a_non_store_tier_is_refused():
    with pytest.raises(TypeError):
        Composite().append_source(object())


def test_nested_composites():
    inner = Composite(name="inner")
    inner.append_source(DictStore({"k": b"v"}))
    outer = Composite(name="outer")
    outer.append_source(DictStore())
    outer.append_source(inner)
    assert outer.get("k") == b"v"
    [result] = outer.get_many(["k"])
    assert result.source == "inner"
