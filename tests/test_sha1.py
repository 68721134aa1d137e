"""SHA1 stores: key mapping, verification, cache poisoning, and the never-raising cache."""
from __future__ import annotations

import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bitstore import (
    FetchFailed,
    InvalidDataFound,
    InvalidURI,
    LocalRaw,
    MemoryRaw,
    NotFoundInStore,
    Sha1APISource,
    Sha1Cache,
    Sha1Composite,
    Sha1FormatMixin,
    Sha1Store,
    VerifySha1Mixin,
    sha1_hex,
)
from tests.core_helpers import DictAPI, DictStore, WritableDictStore, sha1

DATA = b"the real bytes"
KEY = sha1(DATA)
BAD = b"not the real bytes"


def test_sha1_hex():
    assert sha1_hex(b"") == "da39a3ee5e6b4b0d3255bfef95601890afd80709"


# --- Sha1Store -----------------------------------------------------------------------------------
def test_sha1_store_maps_to_prefix_plus_lowercase_sha1():
    raw = MemoryRaw()
    raw.put(f"mem://files/{KEY}", DATA)
    store = Sha1Store(raw, "mem://files/")
    assert store.get(KEY) == DATA
    assert store.get(KEY.upper()) == DATA
    store.put(sha1(b"x").upper(), b"x")
    assert f"mem://files/{sha1(b'x')}" in raw


def test_sha1_store_accepts_exactly_40_hex_digits():
    store = Sha1Store(MemoryRaw(), "mem://")
    assert store.is_valid(KEY) and store.is_valid(KEY.upper())
    for bad in [KEY[:-1], KEY + "0", f"sha1://{KEY}", "g" * 40, f"{KEY[:20]} {KEY[20:]}", None, 5, KEY.encode()]:
        assert not store.is_valid(bad)
        with pytest.raises(InvalidURI, match=r"hint: <sha1>"):
            store.get(bad)


def test_sha1_store_not_found_names_the_sha1_store():
    store = Sha1Store(MemoryRaw(), "mem://files/", name="files")
    with pytest.raises(NotFoundInStore) as info:
        store.get(KEY)
    assert type(info.value) is NotFoundInStore
    assert str(info.value).startswith("files does not contain")
    assert isinstance(info.value.__cause__, NotFoundInStore)


def test_sha1_store_names():
    assert Sha1Store(MemoryRaw(), "s3://bucket/files/").name == "s3://bucket/files/"
    assert Sha1Store(MemoryRaw(), "mem://x/").name == "mem://x/"
    assert Sha1Store(LocalRaw("/tmp"), "blobs/").name == "local:blobs/"
    assert Sha1Store(MemoryRaw(), "x/", name="given").name == "given"
    with pytest.raises(TypeError):
        Sha1Store(MemoryRaw(), None)


def test_sha1_store_verify():
    raw = MemoryRaw()
    raw.put(f"mem://{KEY}", BAD)
    assert Sha1Store(raw, "mem://").get(KEY) == BAD  # verify=False: bytes as stored
    with pytest.raises(InvalidDataFound) as info:
        Sha1Store(raw, "mem://", verify=True).get(KEY)
    assert sha1(BAD) in str(info.value)
    with pytest.raises(InvalidDataFound):
        Sha1Store(MemoryRaw(), "mem://", verify=True).put(KEY, BAD)
    verified = Sha1Store(MemoryRaw(), "mem://", verify=True)
    verified.put(KEY, DATA)
    assert verified.get(KEY) == DATA


# --- Sha1Cache -----------------------------------------------------------------------------------
def test_sha1_cache_verifies_by_default_and_never_stores_mismatched_bytes():
    raw = MemoryRaw()
    cache = Sha1Cache(raw, "mem://c/")
    assert cache.verify is True
    assert cache.put(KEY, BAD) is False
    assert len(raw) == 0 and cache.write_failures == 1
    assert cache.put(KEY, DATA) is True
    assert raw.get(f"mem://c/{KEY}") == DATA


def test_sha1_cache_put_never_raises():
    failing = WritableDictStore(put_error=PermissionError("read-only"))
    cache = Sha1Cache(failing, "c/")
    assert cache.put(KEY, DATA) is False
    assert cache.put("not a sha1", DATA) is False
    assert cache.write_failures == 2


def test_sha1_cache_logs_once_per_cause(caplog):
    """N failures with the same cause give one log line, even though each concerns a different blob."""
    raw = MemoryRaw(name="log-once-cache-a")
    cache = Sha1Cache(raw, "mem://c/", name="log-once-cache-a")
    with caplog.at_level(logging.DEBUG, logger="bitstore"):
        for i in range(10):
            assert cache.put(sha1(b"%d" % i), b"corrupt %d" % i) is False
    assert cache.write_failures == 10
    lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1, [r.getMessage() for r in lines]


def test_sha1_cache_logs_once_per_cause_for_backend_errors_naming_the_key(caplog):
    class KeyNamingFailure(WritableDictStore):
        def put(self, uri, data):
            raise OSError(f"cannot write {uri}: disk full")

    cache = Sha1Cache(KeyNamingFailure(), "c/", name="log-once-cache-b")
    with caplog.at_level(logging.WARNING, logger="bitstore"):
        for i in range(10):
            data = b"%d" % i
            assert cache.put(sha1(data), data) is False
    assert cache.write_failures == 10
    assert len(caplog.records) == 1, [r.getMessage() for r in caplog.records]
    assert "disk full" in caplog.records[0].getMessage()


# --- Sha1APISource -------------------------------------------------------------------------------
def test_api_source_is_abstract_and_gets_lowercase():
    with pytest.raises(TypeError):
        Sha1APISource()
    api = DictAPI({KEY: DATA})
    assert api.get(KEY.upper()) == DATA
    assert list(api.calls) == [KEY]
    with pytest.raises(NotFoundInStore):
        api.get(sha1(b"other"))
    with pytest.raises(InvalidURI):
        api.get(f"sha1://{KEY}")
    assert api.name == "DictAPI" and DictAPI(name="paid").name == "paid"


def test_api_source_verify():
    api = DictAPI({KEY: BAD}, verify=True)
    with pytest.raises(InvalidDataFound):
        api.get(KEY)
    assert DictAPI({KEY: BAD}).get(KEY) == BAD


def test_original_style_api_subclass():
    """The original README's subclass: ``super().__init__()`` with no arguments, ``api_get`` returning None."""

    class MyAPIStore(Sha1APISource):
        def __init__(self, api_client):
            super().__init__()
            self.api_client = api_client

        def api_get(self, sha1):
            return self.api_client.get(sha1)

    api = MyAPIStore({KEY: DATA})
    assert api.verify is False and api.get(KEY) == DATA and api.name == "MyAPIStore"


# --- Sha1Composite -------------------------------------------------------------------------------
@pytest.mark.parametrize("form", [KEY, KEY.upper(), f"sha1://{KEY}", f"SHA1://{KEY.upper()}", f"Sha1://{KEY}",
                                  f"{KEY}\n", f"  sha1://{KEY.upper()}\r\n", f"\t{KEY} "])
def test_sha1_composite_accepts_every_form_and_looks_up_lowercase(form):
    source = DictStore({KEY: DATA})
    store = Sha1Composite()
    store.append_source(source)
    assert store.is_valid(form)
    assert store.get(form) == DATA
    assert list(source.calls) == [KEY]
    [result] = store.get_many([form])
    assert result.key == form and result.status == "found"


@pytest.mark.parametrize("bad", ["", "sha1://", f"sha1:/{KEY}", f"md5://{KEY}", KEY[:39], KEY + "a", f"sha1:// {KEY}",
                                 f"{KEY[:10]}\n{KEY[10:]}", " ", None, 1, KEY.encode()])
def test_sha1_composite_rejects_other_keys(bad):
    store = Sha1Composite()
    store.append_source(DictStore({KEY: DATA}))
    assert not store.is_valid(bad)
    with pytest.raises(InvalidURI):
        store.get(bad)
    [result] = store.get_many([bad])
    assert result.status == "invalid"


def test_sha1_composite_write_back_never_poisons_a_cache():
    """A source serving wrong bytes: not written back, even to a cache that does not verify."""
    cache_raw = MemoryRaw()
    cache = Sha1Cache(cache_raw, "mem://c/", verify=False)
    store = Sha1Composite()
    store.append_cache(cache)
    store.append_source(DictAPI({KEY: BAD}))
    assert store.get(KEY) == BAD  # served (verification is the source's choice) ...
    assert len(cache_raw) == 0  # ... but never cached
    assert store.cache_write_failures == 1 and store.cache_writes == 0
    [result] = store.get_many([KEY])
    assert result.status == "found" and result.cached is False


@pytest.mark.parametrize("cache_class", [Sha1Store, Sha1Cache])
def test_write_back_hashes_the_blob_once(monkeypatch, cache_class):
    """The composite checks the bytes before writing them back; a verifying SHA1 cache of ours trusts that
    check instead of hashing the blob a second time."""
    from bitstore.core.hashed import KeyFamily

    calls = []
    real = KeyFamily.hex
    monkeypatch.setattr(KeyFamily, "hex", lambda family, data: calls.append(len(data)) or real(family, data))
    cache_raw = MemoryRaw()
    store = Sha1Composite()
    store.append_cache(cache_class(cache_raw, "mem://c/", verify=True))
    store.append_source(DictAPI({KEY: DATA}))
    assert store.get(KEY) == DATA and cache_raw.get(f"mem://c/{KEY}") == DATA
    assert calls == [len(DATA)] and store.cache_writes == 1
    calls.clear()
    assert store.get(KEY.upper()) == DATA and calls == [len(DATA)]  # served by the cache, verified on read


def test_write_back_goes_through_a_cache_subclass_own_put():
    class AuditedCache(Sha1Cache):
        def put(self, sha1, data):
            self.seen = sha1
            return super().put(sha1, data)

    cache = AuditedCache(MemoryRaw(), "mem://c/")
    store = Sha1Composite()
    store.append_cache(cache)
    store.append_source(DictAPI({KEY: DATA}))
    assert store.get(KEY) == DATA and cache.seen == KEY and store.cache_writes == 1


def test_sha1_composite_with_verifying_sources_skips_corrupt_tiers():
    corrupt_raw, good_raw = MemoryRaw(), MemoryRaw()
    corrupt_raw.put(f"mem://{KEY}", BAD)
    good_raw.put(f"mem://{KEY}", DATA)
    cache_raw = MemoryRaw()
    store = Sha1Composite()
    store.append_source(Sha1Store(corrupt_raw, "mem://", verify=True, name="corrupt"))
    store.append_cache(Sha1Cache(cache_raw, "mem://c/"))
    store.append_source(Sha1Store(good_raw, "mem://", verify=True, name="good"), cache_result=True)
    [result] = store.get_many([KEY])
    assert (result.status, result.source, result.data) == ("found", "good", DATA)
    assert cache_raw.get(f"mem://c/{KEY}") == DATA
    # if no tier has valid bytes the blob is missing, with the corruption in the message
    only_corrupt = Sha1Composite()
    only_corrupt.append_source(Sha1Store(corrupt_raw, "mem://", verify=True, name="corrupt"))
    with pytest.raises(NotFoundInStore, match=sha1(BAD)):
        only_corrupt.get(KEY)
    assert only_corrupt.get_many([KEY]).__next__().status == "missing"


def test_the_original_readme_flow():
    """Composite of passive stores + cache + API: the API is used once, then the cache."""
    files = MemoryRaw()
    other = b"in the bucket"
    files.put(f"mem://files/{sha1(other)}", other)
    api = DictAPI({KEY: DATA})
    cache_raw = MemoryRaw()
    store = Sha1Composite()
    store.append_source(Sha1Store(files, "mem://files/"))
    store.append_cache(Sha1Cache(cache_raw, "mem://cache/"))
    store.append_store(api)
    assert store.get(sha1(other)) == other
    assert store.get(KEY) == DATA
    assert store.get(f"sha1://{KEY.upper()}") == DATA
    assert api.calls[KEY] == 1
    assert cache_raw.get(f"mem://cache/{KEY}") == DATA


@pytest.mark.parametrize("form", [KEY, KEY.upper(), f"sha1://{KEY}", f"SHA1://{KEY.upper()}"])
def test_sha1_composite_put_stores_under_the_canonical_sha1(form):
    raw = MemoryRaw()
    store = Sha1Composite()
    store.append_cache(Sha1Cache(raw, "mem://c/"))
    assert store.put(form, DATA) is True
    assert raw.get(f"mem://c/{KEY}") == DATA and store.cache.write_failures == 0
    with pytest.raises(InvalidURI):
        store.put("not a sha1", DATA)


def test_failed_tier_in_a_sha1_composite():
    store = Sha1Composite()
    store.append_source(DictStore(fail={KEY: TimeoutError("read timed out")}))
    with pytest.raises(FetchFailed, match="read timed out"):
        store.get(KEY)


def test_mixins_as_in_the_original():
    class Checker(Sha1FormatMixin, VerifySha1Mixin):
        pass

    checker = Checker()
    assert checker.URI_HINT == "<sha1>"
    assert checker.is_valid(KEY) and not checker.is_valid("x")
    assert checker._verify_data(DATA, KEY.upper()) == DATA
    with pytest.raises(InvalidDataFound):
        checker._verify_data(BAD, KEY)


# --- hardening: one SHA1 check for every write, whitespace, the original's put message ----------------
@pytest.mark.parametrize("cache_factory", [
    lambda raw: Sha1Store(raw, "mem://c/"),  # verify=False: it would store anything
    lambda raw: Sha1Cache(raw, "mem://c/", verify=False),
    lambda raw: Sha1Cache(raw, "mem://c/"),
])
def test_put_through_a_sha1_composite_never_stores_wrong_bytes(cache_factory):
    raw = MemoryRaw()
    store = Sha1Composite()
    store.append_cache(cache_factory(raw))
    with pytest.raises(InvalidDataFound, match="do not match"):
        store.put(KEY, BAD)
    assert len(raw) == 0
    with pytest.raises(NotFoundInStore):
        store.get(KEY)
    store.put(f" sha1://{KEY.upper()}\n", DATA)
    assert store.get(KEY) == DATA and raw.get(f"mem://c/{KEY}") == DATA


def test_put_and_write_back_share_one_check(monkeypatch):
    """Both paths go through Sha1Composite._checked_put; replacing it shows every write passes there."""
    seen = []
    real = Sha1Composite._checked_put
    monkeypatch.setattr(Sha1Composite, "_checked_put",
                        lambda self, sha1_, data: seen.append(sha1_) or real(self, sha1_, data))
    raw = MemoryRaw()
    store = Sha1Composite()
    store.append_cache(Sha1Store(raw, "mem://c/"))
    store.append_source(DictAPI({KEY: DATA, sha1(b"other"): b"lie"}))
    store.put(sha1(b"put"), b"put")
    assert store.get(KEY) == DATA
    assert store.get(sha1(b"other")) == b"lie" and f"mem://c/{sha1(b'other')}" not in raw
    assert seen == [sha1(b"put"), KEY, sha1(b"other")]
    assert store.cache_writes == 1 and store.cache_write_failures == 1


@given(key_data=st.binary(max_size=64), upper=st.booleans(), scheme=st.sampled_from(["", "sha1://", "SHA1://"]),
       before=st.text(" \t\r\n\x0b\x0c\u00a0\u2003", max_size=4), after=st.text(" \t\r\n\x0b\x0c\u00a0", max_size=4))
@settings(max_examples=150, deadline=None)
def test_surrounding_whitespace_is_ignored_everywhere(key_data, upper, scheme, before, after):
    """A line read from a file (trailing newline, CRLF, indentation) names the same blob in every SHA1 store."""
    key = sha1(key_data)
    form = f"{before}{scheme}{key.upper() if upper else key}{after}"
    raw = MemoryRaw()
    raw.put(f"mem://{key}", key_data)
    composite = Sha1Composite()
    composite.append_source(Sha1Store(raw, "mem://", verify=True))
    composite.append_source(DictAPI({key: key_data}))
    assert composite.is_valid(form) and composite.canonical_key(form) == key
    assert composite.get(form) == key_data
    [result] = composite.get_many([form])
    assert result.key == form and result.data == key_data
    if not scheme:
        bare = f"{before}{key}{after}"
        assert Sha1Store(raw, "mem://", verify=True).get(bare) == key_data
        assert DictAPI({key: key_data}, verify=True).get(bare) == key_data


@pytest.mark.parametrize("factory", [lambda: __import__("bitstore").Composite(), Sha1Composite])
def test_composite_put_without_a_cache_has_the_original_message(factory):
    store = factory()
    store.append_source(DictStore({KEY: DATA}))
    with pytest.raises(NotImplementedError) as info:
        store.put(KEY, DATA)
    assert str(info.value) == f"{type(store).__name__} does not implement the 'put' method"
