"""A local root that does not exist is unavailable, not empty; a cache's root is made when it becomes a cache."""
from __future__ import annotations

import hashlib

import pytest

from bitstore import FetchFailed, LocalRaw, NotFoundInStore, Sha1Cache, Sha1Composite, Sha1Store, StoreNotAvailable


def test_a_source_whose_root_does_not_exist_is_unavailable_naming_it(tmp_path):
    raw = LocalRaw(tmp_path / "typo")
    with pytest.raises(StoreNotAvailable, match="typo"):
        raw.get("a" * 40)
    store = Sha1Composite().append_source(Sha1Store(raw, ""))
    with pytest.raises(FetchFailed) as info:
        store.get("a" * 40)
    assert not isinstance(info.value, NotFoundInStore)


def test_an_empty_cache_whose_root_is_new_answers_missing_then_holds_write_backs(tmp_path):
    data = b"payload"
    key = hashlib.sha1(data).hexdigest()
    root = tmp_path / "new" / "cache"

    class API(Sha1Store):
        def __init__(self):
            pass

        def is_valid(self, uri):
            return True

        def get(self, sha1):
            if sha1 == key:
                return data
            raise NotFoundInStore(self, sha1)

    store = Sha1Composite()
    store.append_cache(Sha1Cache(LocalRaw(root), ""))
    store.append_source(API(), cache_result=True)
    assert root.is_dir()
    with pytest.raises(NotFoundInStore):
        store.get("b" * 40)
    assert store.get(key) == data
    assert (root / key).read_bytes() == data
