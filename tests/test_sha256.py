"""The hash key families side by side: SHA1 and SHA-256 stores built from one implementation (``core.hashed``).

Every test runs for both families; a key of one family is never valid for the other (``invalid``, never
``missing``); bytes are verified by the family's own hash on get and put; the SHA1 names, behaviour and pickle
paths are unchanged.
"""
from __future__ import annotations

import hashlib
import logging
import pickle
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bitstore
from bitstore import (
    InvalidDataFound,
    InvalidURI,
    MemoryRaw,
    NotFoundInStore,
    Sha1APISource,
    Sha1Cache,
    Sha1Composite,
    Sha1Store,
    Sha256APISource,
    Sha256Cache,
    Sha256Composite,
    Sha256FormatMixin,
    Sha256Store,
    VerifySha256Mixin,
    sha1_hex,
    sha256_hex,
)
from bitstore.core.hashed import HashStore, family_of
from bitstore.core.keys import FAMILIES, key_column


@dataclass(frozen=True)
class Family:
    name: str
    hexlen: int
    hasher: object
    store: type
    cache: type
    composite: type
    api: type

    def key(self, data: bytes) -> str:
        return self.hasher(data).hexdigest()


SHA1 = Family("sha1", 40, hashlib.sha1, Sha1Store, Sha1Cache, Sha1Composite, Sha1APISource)
SHA256 = Family("sha256", 64, hashlib.sha256, Sha256Store, Sha256Cache, Sha256Composite, Sha256APISource)
BOTH = [pytest.param(SHA1, id="sha1"), pytest.param(SHA256, id="sha256")]
OTHER = {"sha1": SHA256, "sha256": SHA1}

DATA = b"the real bytes"
BAD = b"not the real bytes"


def api_class(family: Family):
    class DictAPI(family.api):
        def __init__(self, blobs, **kwargs):
            super().__init__(**kwargs)
            self.blobs, self.asked = blobs, []

        def api_get(self, key):
            self.asked.append(key)
            return self.blobs.get(key)

    return DictAPI


def stack(family: Family, api_blobs: dict | None = None, **cache_options):
    """A composite: a memory cache read first, a memory source, an API source; and the raw stores."""
    cache_raw, source_raw = MemoryRaw(), MemoryRaw()
    composite = family.composite()
    composite.append_cache(family.cache(cache_raw, "mem://cache/", **cache_options))
    composite.append_source(family.store(source_raw, "mem://src/"))
    composite.append_source(api_class(family)(api_blobs or {}))
    return composite, cache_raw, source_raw


def test_the_two_families_and_their_hex():
    assert sha1_hex(b"") == "da39a3ee5e6b4b0d3255bfef95601890afd80709"
    assert sha256_hex(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert set(FAMILIES) == {"sha1", "sha256"}
    assert family_of(Sha256Composite()).label == "SHA-256" and family_of(Sha1Store(MemoryRaw(), "")).name == "sha1"
    assert key_column(Sha256Composite()) == "sha256" and key_column(Sha1Composite()) == "sha1"
    assert key_column(bitstore.Composite()) == "sha1" and key_column("uri") == "sha1"


def test_sha1_classes_keep_their_names_hierarchy_and_module():
    for cls in (Sha1Store, Sha1Cache, Sha1APISource, Sha1Composite):
        assert cls.__module__ == "bitstore.core.sha1"
    for cls in (Sha256Store, Sha256Cache, Sha256APISource, Sha256Composite):
        assert cls.__module__ == "bitstore.core.sha256"
    assert issubclass(Sha1Cache, Sha1Store) and issubclass(Sha256Cache, Sha256Store)
    assert not issubclass(Sha256Store, Sha1Store) and not issubclass(Sha1Store, Sha256Store)
    assert issubclass(Sha256Store, (Sha256FormatMixin, VerifySha256Mixin, HashStore))
    assert Sha1Composite.SHA1_URI_REGEX.fullmatch("SHA1://" + "a" * 40)
    assert Sha256Composite.SHA256_URI_REGEX.fullmatch("Sha256://" + "A" * 64)
    assert Sha256Composite.URI_HINT == "<sha256> or sha256://<sha256>" and Sha256Store.URI_HINT == "<sha256>"


# --- keys: valid and invalid, across both families ------------------------------------------------
hex_digit = st.sampled_from("0123456789abcdefABCDEF")
spaces = st.text(" \t\r\n", max_size=3)


@pytest.mark.parametrize("family", BOTH)
@settings(max_examples=60, deadline=None)
@given(digits=st.data(), before=spaces, after=spaces, scheme=st.sampled_from(["", "lower", "upper", "mixed"]))
def test_a_key_of_the_family_is_accepted_in_any_case_and_looked_up_lowercase(family, digits, before, after,
                                                                             scheme):
    hexkey = "".join(digits.draw(st.lists(hex_digit, min_size=family.hexlen, max_size=family.hexlen)))
    prefix = {"": "", "lower": f"{family.name}://", "upper": f"{family.name.upper()}://",
              "mixed": f"{family.name.capitalize()}://"}[scheme]
    key = f"{before}{prefix}{hexkey}{after}"
    composite = family.composite()
    assert composite.is_valid(key) and composite.canonical_key(key) == hexkey.lower()
    assert family.store(MemoryRaw(), "mem://x/").is_valid(f"{before}{hexkey}{after}")  # a tier: bare keys
    other = OTHER[family.name].composite()
    assert not other.is_valid(key), "a key of one family must never be valid for the other"
    [result] = other.get_many([key], progress=False)
    assert result.status == "invalid"


@pytest.mark.parametrize("family", BOTH)
@settings(max_examples=80, deadline=None)
@given(text=st.one_of(st.text(max_size=80), st.binary(max_size=70), st.integers(), st.none()))
def test_anything_else_is_invalid_never_missing(family, text):
    composite, _, _ = stack(family)
    [result] = composite.get_many([text], progress=False)
    if composite.is_valid(text):  # the rare text that is a key: its canonical form is the family's hex
        canonical = composite.canonical_key(text)
        assert len(canonical) == family.hexlen and set(canonical) <= set("0123456789abcdef")
        assert result.status == "missing"
    else:
        assert result.status == "invalid" and result.data is None


@pytest.mark.parametrize("family", BOTH)
@pytest.mark.parametrize("length", [39, 41, 63, 65])
def test_wrong_lengths_and_the_other_scheme_are_invalid(family, length):
    composite, _, _ = stack(family)
    other = OTHER[family.name]
    for key in ["a" * length, f"{other.name}://{'a' * family.hexlen}", f"{family.name}:{'a' * family.hexlen}",
                f"{family.name}://{'a' * (family.hexlen - 1)}g", "a" * other.hexlen]:
        if len(key) == family.hexlen:
            continue
        assert not composite.is_valid(key), key
        with pytest.raises(InvalidURI) as info:
            composite.get(key)
        assert not isinstance(info.value, NotFoundInStore)
        assert family.name in str(info.value)  # the hint names the expected form


def test_a_sha1_given_to_a_sha256_store_is_invalid_even_when_the_sha1_blob_is_there():
    raw = MemoryRaw()
    key1 = sha1_hex(DATA)
    raw.put(f"mem://b/{key1}", DATA)  # a SHA1-named blob under the prefix: still not a SHA-256 key
    composite = Sha256Composite().append_source(Sha256Store(raw, "mem://b/"))
    assert [r.status for r in composite.get_many([key1, "sha1://" + key1], progress=False)] == ["invalid"] * 2
    assert composite.stat(key1).status == "invalid"
    with pytest.raises(InvalidURI):
        Sha256Store(raw, "mem://b/").get(key1)
    sha1_side = Sha1Composite().append_source(Sha1Store(raw, "mem://b/"))
    assert [r.status for r in sha1_side.get_many([sha256_hex(DATA)], progress=False)] == ["invalid"]


# --- verification on get and put ----------------------------------------------------------------------
@pytest.mark.parametrize("family", BOTH)
def test_verify_on_get_and_put(family):
    key = family.key(DATA)
    raw = MemoryRaw()
    raw.put(f"mem://v/{key}", BAD)
    store = family.store(raw, "mem://v/", verify=True)
    with pytest.raises(InvalidDataFound, match="they hash to " + family.key(BAD)):
        store.get(key)
    with pytest.raises(InvalidDataFound):
        store.put(key, BAD)
    store.put(key.upper(), DATA)
    assert raw.get(f"mem://v/{key}") == DATA and store.get(key) == DATA
    assert family.store(raw, "mem://v/", verify=False).get(key) == DATA
    assert store.key_for(DATA) == key
    api = api_class(family)({key: BAD}, verify=True)
    with pytest.raises(InvalidDataFound):
        api.get(key)


@pytest.mark.parametrize("family", BOTH)
def test_a_cache_never_stores_bytes_of_another_hash_and_never_raises(family, caplog):
    key = family.key(DATA)
    raw = MemoryRaw()
    cache = family.cache(raw, "mem://c/")
    with caplog.at_level(logging.WARNING):
        assert cache.put(key, BAD) is False
        assert cache.put(OTHER[family.name].key(DATA), DATA) is False  # the other family's key: refused, logged
    assert len(raw) == 0 and int(cache.write_failures) == 2
    assert cache.put(key, DATA) is True and raw.get(f"mem://c/{key}") == DATA


@pytest.mark.parametrize("family", BOTH)
def test_a_corrupt_copy_in_a_composite_is_missing_with_the_corruption_in_the_message(family):
    key = family.key(DATA)
    composite, cache_raw, source_raw = stack(family)
    source_raw.put(f"mem://src/{key}", BAD)
    composite.sources[1].verify = True
    [result] = composite.get_many([f"{family.name}://{key.upper()}"], progress=False)
    assert result.status == "missing" and "do not match" in result.error and family.key(BAD) in result.error
    assert len(cache_raw) == 0
    with pytest.raises(NotFoundInStore) as info:
        composite.get(key)
    assert isinstance(info.value, NotFoundInStore) and "do not match" in str(info.value)


@pytest.mark.parametrize("family", BOTH)
def test_write_back_is_checked_by_the_familys_hash_and_lands_under_the_canonical_key(family):
    key = family.key(DATA)
    composite, cache_raw, _ = stack(family, {key: DATA}, verify=False)
    assert composite.get(f"  {family.name.upper()}://{key.upper()}\n") == DATA
    assert cache_raw.get(f"mem://cache/{key}") == DATA and composite.cache_writes == 1
    poisoned, poisoned_cache, _ = stack(family, {key: BAD}, verify=False)
    assert poisoned.get(key) == BAD  # served: verifying is the source's choice ...
    assert len(poisoned_cache) == 0 and poisoned.cache_write_failures == 1  # ... never cached
    with pytest.raises(InvalidDataFound):
        poisoned.put(key, BAD)
    assert poisoned.put(key, DATA) is True and poisoned.get(key) == DATA


@pytest.mark.parametrize("family", BOTH)
def test_put_many_derives_keys_by_the_familys_hash(family, tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(DATA)
    composite, cache_raw, _ = stack(family)
    [stored] = composite.put_many([path], progress=False)
    assert stored.status == "stored" and stored.key == family.key(DATA)
    [wrong] = composite.put_many([(family.key(BAD), DATA)], progress=False)
    assert wrong.status == "invalid"
    [other] = composite.put_many([(OTHER[family.name].key(DATA), DATA)], progress=False)
    assert other.status == "invalid"
    assert cache_raw.get(f"mem://cache/{family.key(DATA)}") == DATA


@pytest.mark.parametrize("family", BOTH)
def test_stat_open_and_pickle(family):
    key = family.key(DATA)
    composite, _, source_raw = stack(family)
    source_raw.put(f"mem://src/{key}", DATA)
    info = composite.stat(f"{family.name}://{key}")
    assert info.status == "found" and info.size == len(DATA)
    with composite.open(key.upper()) as f:
        assert f.read() == DATA
    store = family.store(MemoryRaw(), "mem://p/", verify=True, name="p")
    again = pickle.loads(pickle.dumps(store))
    assert type(again) is family.store and again.verify and again.name == "p"
    cache = pickle.loads(pickle.dumps(family.cache(MemoryRaw(), "mem://q/")))
    assert type(cache) is family.cache and cache.put(key, DATA) is True


def test_sha1_pickles_keep_their_module_path():
    for obj in (Sha1Store(MemoryRaw(), "mem://a/"), Sha1Cache(MemoryRaw(), "mem://a/"), Sha1Composite()):
        assert b"bitstore.core.sha1" in pickle.dumps(obj)


@pytest.mark.parametrize("family", BOTH)
def test_memory_tiers_are_read_on_the_loop_and_a_subclass_is_not(family):
    store = family.store(MemoryRaw(), "mem://l/")
    assert store.reads_on_loop() and family.cache(MemoryRaw(), "mem://l/").reads_on_loop()

    class Mine(family.store):
        pass

    assert not Mine(MemoryRaw(), "mem://l/").reads_on_loop()


def test_the_guides_example_runs():
    from tests.docs_blocks import expected_output, run_block, runnable_blocks

    [block] = runnable_blocks("sha256")
    assert run_block(block, "tiers guide: SHA-256 keys") == expected_output(block)
