"""The negative cache (``missing_ttl``): "not found" answers remembered for a while, against a manual clock."""
from __future__ import annotations

import pickle

import pytest

from bitstore import Composite, FetchFailed, NotFoundInStore, Sha1Composite
from bitstore.core.missing import MissingCache
from bitstore.ground.limits import ManualClock
from bitstore.spec import from_spec
from tests.core_helpers import DictAPI, DictStore, WritableDictStore, sha1

KEY = "ab" * 20


def paid(ttl=10.0, **kwargs):
    clock = ManualClock()
    api = DictAPI(name="api")
    store = Sha1Composite(missing_ttl=ttl, clock=clock, **kwargs)
    store.append_cache(WritableDictStore())
    store.append_source(api)
    return store, api, clock


def test_a_missing_key_is_answered_from_memory_until_the_ttl_expires():
    store, api, clock = paid()
    for _ in range(3):
        with pytest.raises(NotFoundInStore):
            store.get(KEY)
    assert api.calls[KEY] == 1
    clock.advance(9.99)
    with pytest.raises(NotFoundInStore, match="less than 10s ago"):
        store.get(KEY.upper())  # the same key in another form
    assert api.calls[KEY] == 1
    clock.advance(0.01)
    with pytest.raises(NotFoundInStore):
        store.get(KEY)
    assert api.calls[KEY] == 2


def test_get_many_second_pass_makes_no_call():
    store, api, _ = paid()
    keys = [sha1(str(i).encode()) for i in range(20)]
    for _ in range(2):
        assert all(r.status == "missing" for r in store.get_many(keys, progress=False))
    assert sum(api.calls.values()) == 20
    assert store.stats()["api"].calls == 20


def test_a_failure_is_never_remembered():
    clock = ManualClock()
    flaky = DictStore(fail={KEY: OSError("down")})
    store = Sha1Composite(missing_ttl=60, clock=clock)
    store.append_source(flaky)
    store.append_source(DictAPI())
    for _ in range(2):
        with pytest.raises(FetchFailed):
            store.get(KEY)
    assert flaky.calls[KEY] == 2


def test_a_corrupt_copy_is_not_remembered_as_missing():
    store = Sha1Composite(missing_ttl=60, clock=ManualClock())
    api = DictAPI({KEY: b"not the bytes of that sha1"}, verify=True)
    store.append_source(api)
    for _ in range(2):
        with pytest.raises(NotFoundInStore):
            store.get(KEY)
    assert api.calls[KEY] == 2


def test_a_put_forgets_the_missing_answer():
    store, api, _ = paid()
    data = b"arrived later"
    key = sha1(data)
    with pytest.raises(NotFoundInStore):
        store.get(key)
    store.put(f"sha1://{key.upper()}", data)
    assert store.get(key) == data


def test_forget_missing():
    store, api, _ = paid()
    with pytest.raises(NotFoundInStore):
        store.get(KEY)
    store.forget_missing(KEY.upper())
    with pytest.raises(NotFoundInStore):
        store.get(KEY)
    store.forget_missing()
    with pytest.raises(NotFoundInStore):
        store.get(KEY)
    assert api.calls[KEY] == 3


def test_entries_are_bounded_least_recently_used_first():
    clock = ManualClock()
    cache = MissingCache(60, max_entries=2, clock=clock)
    cache.add("a")
    cache.add("b")
    assert "a" in cache  # a is now the most recently used
    cache.add("c")
    assert "a" in cache and "c" in cache and "b" not in cache and len(cache) == 2


def test_without_missing_ttl_every_read_asks_again():
    store = Composite()
    api = DictStore()
    store.append_source(api)
    for _ in range(2):
        with pytest.raises(NotFoundInStore):
            store.get("k")
    assert api.calls["k"] == 2 and store.missing_ttl is None


def test_spec_top_level_missing_ttl_and_pickles_empty():
    store = from_spec({"missing_ttl": 30, "tier": [{"type": "memory"}]})
    assert store.missing_ttl == 30
    with pytest.raises(NotFoundInStore):
        store.get(KEY)
    back = pickle.loads(pickle.dumps(store))
    assert back.missing_ttl == 30 and len(back._missing) == 0


@pytest.mark.parametrize("ttl", [0, -1, "10", True])
def test_bad_missing_ttl_fails_at_once(ttl):
    with pytest.raises(ValueError, match="missing_ttl"):
        Sha1Composite(missing_ttl=ttl)
