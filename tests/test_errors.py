"""Error types: hierarchy, messages, pickling, and no secrets in messages."""
from __future__ import annotations

import logging
import pickle

import pytest

from bitstore import (
    BitstoreError,
    BlobTooLarge,
    Composite,
    FetchFailed,
    InvalidDataFound,
    InvalidURI,
    MemoryRaw,
    NotFoundInStore,
    Sha1Composite,
    SpecError,
    StoreNotAvailable,
)
from tests.core_helpers import CANARY, SecretHoldingStore

STORE = MemoryRaw(name="tier-a")

ERRORS = [
    NotFoundInStore(STORE, "mem://k"),
    NotFoundInStore(STORE, "mem://k", "some detail"),
    InvalidDataFound(STORE, "ab" * 20),
    InvalidDataFound(STORE, "ab" * 20, "data has SHA1 " + "cd" * 20),
    StoreNotAvailable(STORE),
    StoreNotAvailable(STORE, "credentials rejected"),
    InvalidURI(STORE, "bad", hint="mem://<key>"),
    InvalidURI(STORE, None),
    FetchFailed(STORE, "mem://k", "8 attempts, last error: timeout"),
    FetchFailed(STORE, "mem://k", ConnectionResetError("reset by peer")),
    BlobTooLarge(STORE, "mem://k", 2_000_000, 1_000),
    SpecError("tier 1 has no type", key="tier[1].type", source="spec.toml"),
]


@pytest.mark.parametrize("exc", ERRORS, ids=lambda e: type(e).__name__)
def test_every_error_pickles_with_its_message(exc):
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is type(exc)
    assert str(back) == str(exc)
    assert isinstance(back, BitstoreError)


def test_hierarchy():
    assert issubclass(InvalidDataFound, NotFoundInStore)
    assert not issubclass(FetchFailed, NotFoundInStore)
    assert not issubclass(StoreNotAvailable, NotFoundInStore)
    assert issubclass(BlobTooLarge, FetchFailed)
    for cls in (NotFoundInStore, StoreNotAvailable, InvalidURI, FetchFailed, SpecError):
        assert issubclass(cls, BitstoreError)


def test_except_not_found_never_swallows_a_failure():
    with pytest.raises(FetchFailed):
        try:
            raise FetchFailed(STORE, "mem://k", "boom")
        except NotFoundInStore:  # must not match
            pytest.fail("FetchFailed was caught as NotFoundInStore")


def test_messages_name_the_store_and_key():
    assert str(NotFoundInStore(STORE, "mem://k")) == "tier-a does not contain 'mem://k'"
    assert "hint: mem://<key>" in str(InvalidURI(STORE, "bad", hint="mem://<key>"))
    assert "bad" in str(InvalidURI(STORE, "bad"))
    failed = FetchFailed(STORE, "mem://k", ConnectionResetError("reset by peer"))
    assert failed.cause == "ConnectionResetError: reset by peer"
    assert "tier-a" in str(failed) and "mem://k" in str(failed) and "reset by peer" in str(failed)
    assert "credentials rejected" in str(StoreNotAvailable(STORE, "credentials rejected"))
    too_large = BlobTooLarge(STORE, "mem://k", 2_000_000, 1_000)
    assert (too_large.size, too_large.limit) == (2_000_000, 1_000)
    assert "2,000,000" in str(too_large)


def test_corruption_detail_is_in_the_message():
    exc = InvalidDataFound(STORE, "ab" * 20, "data has SHA1 " + "cd" * 20)
    assert "cd" * 20 in str(exc)
    assert "does not match" in str(InvalidDataFound(STORE, "ab" * 20))


def test_huge_keys_are_cut_in_messages():
    exc = NotFoundInStore(STORE, "x" * 100_000)
    assert len(str(exc)) < 1_000


@pytest.mark.parametrize("make", [
    lambda s: NotFoundInStore(s, "k"),
    lambda s: InvalidDataFound(s, "k"),
    lambda s: StoreNotAvailable(s, "no credentials"),
    lambda s: InvalidURI(s, "k", hint="h"),
    lambda s: FetchFailed(s, "k", "boom"),
    lambda s: BlobTooLarge(s, "k", 10, 1),
])
def test_errors_use_the_store_name_never_its_repr(make):
    store = SecretHoldingStore()
    assert CANARY in repr(store)  # the trap is armed
    exc = make(store)
    assert CANARY not in str(exc)
    assert CANARY not in repr(exc)
    assert CANARY not in str(pickle.loads(pickle.dumps(exc)))


def test_composite_errors_do_not_leak_a_tier_secret():
    store = Composite(name="tiers")
    store.append_source(SecretHoldingStore(fail={"k": RuntimeError("backend exploded")}))
    with pytest.raises(FetchFailed) as info:
        store.get("k")
    assert "secret-holder" in str(info.value) and CANARY not in str(info.value)
    with pytest.raises(NotFoundInStore) as info2:
        store.get("other")
    assert CANARY not in str(info2.value)
    [result] = store.get_many(["k"])
    assert result.status == "failed" and CANARY not in (result.error or "")


def test_invalid_uri_from_a_sha1_composite_has_the_hint():
    with pytest.raises(InvalidURI, match=r"hint: <sha1> or sha1://<sha1>"):
        Sha1Composite().get("not-a-sha1")


def test_log_lines_do_not_leak_a_tier_secret(caplog):
    from tests.core_helpers import WritableDictStore

    class SecretCache(WritableDictStore):
        name = "secret-cache"

        def __init__(self):
            super().__init__(put_error=OSError("disk full"), fail={"k": OSError("cache read broke")})
            self.token = CANARY

        def __repr__(self):
            return f"SecretCache(token={self.token!r})"

    store = Composite(name="tiers-with-secret-cache")
    store.append_cache(SecretCache())
    store.append_source(SecretHoldingStore({"k": b"v"}), cache_result=True)
    with caplog.at_level(logging.DEBUG, logger="bitstore"):
        assert store.get("k") == b"v"
        store.append_cache(SecretCache())  # replacing the cache logs both names
    assert store.cache_write_failures == 1 and store.cache_read_failures == 1
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "secret-cache" in text
    assert CANARY not in text


def test_base_error_and_long_messages_survive_pickle_exactly():
    import pickle

    from bitstore.ground.errors import BitstoreError, FetchFailed, NotFoundInStore

    for error in (BitstoreError("boom"), NotFoundInStore("tier", "k" * 500), FetchFailed("tier", "u", "c" * 2000)):
        back = pickle.loads(pickle.dumps(error))
        assert type(back) is type(error) and str(back) == str(error)
