"""``Store``: a user subclass defining only ``is_valid`` and ``get`` works everywhere a store is accepted."""
from __future__ import annotations

import os

import pytest

from bitstore import Composite, FetchResult, InvalidURI, NotFoundInStore, Sha1Cache, Sha1Composite, Store
from tests.core_helpers import DictStore, WritableDictStore, sha1


class Minimal(Store):
    """The smallest possible store: no __init__ at all."""

    def is_valid(self, uri):
        return isinstance(uri, str) and uri.startswith("min:")

    def get(self, uri):
        self._check_valid(uri)
        if uri == "min:hello":
            return b"hello"
        raise NotFoundInStore(self, uri)


class Hinted(Minimal):
    URI_HINT = "min:<name>"


def test_store_is_abstract():
    with pytest.raises(TypeError):
        Store()

    class OnlyGet(Store):
        def get(self, uri):
            return b""

    with pytest.raises(TypeError):
        OnlyGet()


def test_minimal_subclass_get_and_name():
    store = Minimal()
    assert store.get("min:hello") == b"hello"
    assert store.name == "Minimal"
    assert repr(store) == "<Minimal 'Minimal'>"
    with pytest.raises(NotFoundInStore):
        store.get("min:other")


def test_name_on_a_subclass_that_never_calls_store_init():
    store = DictStore()
    assert store.name == "DictStore"
    store.name = "mine"
    assert store.name == "mine"
    with pytest.raises(TypeError):
        store.name = ""


def test_put_raises_not_implemented_with_the_exact_message():
    with pytest.raises(NotImplementedError) as info:
        Minimal().put("min:x", b"data")
    assert str(info.value) == "Minimal does not implement the 'put' method"


def test_check_valid_raises_invalid_uri_with_the_hint():
    with pytest.raises(InvalidURI) as info:
        Hinted().get("other:x")
    assert "(hint: min:<name>)" in str(info.value)
    assert "other:x" in str(info.value)
    with pytest.raises(InvalidURI) as info:
        Minimal()._check_valid("other:x")
    assert "hint" not in str(info.value)  # URI_HINT None: no hint
    assert Store.URI_HINT is None


def test_minimal_subclass_as_a_composite_tier():
    composite = Composite()
    composite.append_source(Minimal())
    composite.append_source(DictStore({"min:second": b"2"}))
    assert composite.get("min:hello") == b"hello"
    assert composite.get("min:second") == b"2"
    assert composite.tier_names == ["Minimal", "DictStore"]
    with pytest.raises(NotFoundInStore):
        composite.get("min:nothing")


def test_minimal_subclass_get_many():
    results = list(Minimal().get_many(["min:hello", "min:x", "other", None, 3]))
    assert [r.status for r in results] == ["found", "missing", "invalid", "invalid", "invalid"]
    assert results[0] == FetchResult("min:hello", b"hello", "found", source="Minimal")
    assert results[1].error == "Minimal does not contain 'min:x'"
    assert all(r.data is None for r in results[1:])


def test_minimal_subclass_as_a_write_back_target_and_sha1_source():
    data = b"payload"
    key = sha1(data)
    cache_base = WritableDictStore()
    composite = Sha1Composite()
    composite.append_cache(Sha1Cache(cache_base, "c/"))
    composite.append_source(DictStore({key: data}), cache_result=True)
    assert composite.get(key) == data
    assert cache_base.blobs == {f"c/{key}": data}


def test_fetch_never_raises():
    class Broken(Store):
        def is_valid(self, uri):
            raise RuntimeError("is_valid exploded")

        def get(self, uri):
            raise AssertionError("never called")

    class ReturnsStr(Minimal):
        def get(self, uri):
            return "not bytes"

    assert Broken().fetch("x").status == "invalid"
    result = ReturnsStr().fetch("min:a")
    assert result.status == "failed" and "str" in result.error
    result = DictStore(fail={"k": KeyError("boom")}).fetch("k")
    assert result.status == "failed" and result.error.startswith("KeyError")


def test_builtin_store_name_keyword():
    from bitstore import LocalRaw, MemoryRaw

    assert MemoryRaw(name="hot").name == "hot"
    assert MemoryRaw().name == "mem"
    assert LocalRaw("/tmp").name == f"local:{os.path.realpath('/tmp')}"
    assert Composite(name="c").name == "c"


def test_fetch_result_fields_and_repr():
    result = FetchResult("k", b"x" * 10, "found", source="tier")
    assert (result.key, result.data, result.status, result.source, result.error) == ("k", b"x" * 10, "found", "tier",
                                                                                     None)
    assert result.ok
    assert "10 bytes" in repr(result) and "xxxx" not in repr(result)
    assert not FetchResult("k", None, "missing", error="gone").ok
