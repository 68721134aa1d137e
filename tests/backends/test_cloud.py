"""Behaviour S3Raw, GSRaw and AZRaw share, against moto, fake-gcs-server and Azurite, with the SDK and the fast
transport."""
from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import pickle

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bitstore import BlobTooLarge, FetchFailed, InvalidURI, NotFoundInStore, Sha1Store, StoreNotAvailable
from bitstore.ground.views import VIEW_MIN_BYTES, allow, restore

_FORKED_STORE = None


def _get_in_child(uri: str) -> tuple[bytes, bool, bool]:
    """Run in a forked worker: the inherited store must build its own client for this process, and stay off
    obstore (whose runtime does not survive a fork)."""
    data = _FORKED_STORE.get(uri)
    return data, _FORKED_STORE._conn._pid == os.getpid(), _FORKED_STORE._fast.get() is None


def test_get_returns_exact_bytes(cloud):
    cloud.create_bucket("bkt")
    blobs = {"a": b"", "dir/b c.bin": b"\x00" * 3 + os.urandom(70_000), "ü/ñ+%": b"unicode key"}
    raw = cloud.raw()
    for key, data in blobs.items():
        uri = cloud.put("bkt", key, data)
        assert raw.get(uri) == data


def test_fast_transport_lends_large_bodies_only_where_views_are_allowed(cloud):
    cloud.create_bucket("views")
    big, small = os.urandom(VIEW_MIN_BYTES), b"s" * 1000
    big_uri, small_uri = cloud.put("views", "big", big), cloud.put("views", "small", small)
    raw = cloud.raw()
    assert type(raw.get(big_uri)) is bytes and raw.get(big_uri) == big
    token = allow()
    try:
        lent, copied = raw.get(big_uri), raw.get(small_uri)
    finally:
        restore(token)
    assert type(copied) is bytes and copied == small
    assert bytes(lent) == big
    if cloud.transport == "fast":
        assert type(lent) is memoryview and lent.readonly
    else:
        assert type(lent) is bytes


def test_get_many_views_lend_the_fast_transports_buffers(cloud):
    cloud.create_bucket("lend")
    blobs = [os.urandom(VIEW_MIN_BYTES + i) for i in range(3)] + [b"tiny"]
    for data in blobs:
        cloud.put("lend", f"blobs/{hashlib.sha1(data).hexdigest()}", data)
    store = Sha1Store(cloud.raw(), f"{cloud.scheme}://lend/blobs/")
    keys = [hashlib.sha1(data).hexdigest() for data in blobs]
    lent = list(store.get_many(keys, views=True, max_workers=4))
    assert [bytes(r.data) for r in lent] == blobs
    expected = memoryview if cloud.transport == "fast" else bytes
    assert [type(r.data) for r in lent] == [expected] * 3 + [bytes]
    assert all(type(r.data) is bytes for r in store.get_many(keys, max_workers=4))


def test_arrow_enrichment_of_large_blobs_through_each_transport(cloud):
    """enrich_batches copies lent views into its batches, enrich_table wraps them: the values are the blobs."""
    pa = pytest.importorskip("pyarrow")
    from bitstore.arrow import enrich_batches, enrich_table

    cloud.create_bucket("arrow")
    blobs = [os.urandom(VIEW_MIN_BYTES * 4 + i) for i in range(3)] + [os.urandom(VIEW_MIN_BYTES), b"small"]
    for data in blobs:
        cloud.put("arrow", f"b/{hashlib.sha1(data).hexdigest()}", data)
    store = Sha1Store(cloud.raw(), f"{cloud.scheme}://arrow/b/")
    keys = [hashlib.sha1(data).hexdigest() for data in blobs] + [hashlib.sha1(b"absent").hexdigest()]
    table = pa.table({"sha1": keys})
    assert enrich_table(table, store, max_workers=4).column("blob").to_pylist() == blobs + [None]
    batches = list(enrich_batches(table, store, batch_size=2, max_workers=4))
    assert [v for b in batches for v in b.column("blob").to_pylist()] == blobs + [None]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=40)
       .filter(lambda k: not k.startswith("/") and "//" not in k and not k.endswith("/")
               and all(part not in (".", "..") for part in k.split("/"))),
       data=st.binary(max_size=2048))
def test_put_then_get_any_key(cloud, key, data):
    raw = getattr(cloud, "keys_store", None)
    if raw is None:  # one store per test, not per example (building a client costs more than a request)
        raw = cloud.keys_store = cloud.raw()
        cloud.create_bucket("keys")
    uri = f"{cloud.scheme}://keys/{key}"
    raw.put(uri, data)
    assert raw.get(uri) == data


def test_missing_key_is_not_found_and_missing_bucket_is_unavailable(cloud):
    cloud.create_bucket("bkt")
    raw = cloud.raw()
    with pytest.raises(NotFoundInStore) as info:
        raw.get(f"{cloud.scheme}://bkt/absent")
    assert not isinstance(info.value, FetchFailed)
    with pytest.raises(StoreNotAvailable, match="no-such-bucket"):
        raw.get(f"{cloud.scheme}://no-such-bucket/absent")
    results = list(raw.get_many([f"{cloud.scheme}://bkt/absent", f"{cloud.scheme}://no-such-bucket/absent"],
                                progress=False))
    assert [r.status for r in results] == ["missing", "failed"]


def test_put_into_missing_bucket_is_unavailable_not_missing(cloud):
    raw = cloud.raw()
    with pytest.raises(StoreNotAvailable, match="no-such-bucket"):
        raw.put(f"{cloud.scheme}://no-such-bucket/key", b"data")


def test_size_limit_refuses_before_reading(cloud):
    cloud.create_bucket("bkt")
    big = cloud.put("bkt", "big", b"x" * 5000)
    small = cloud.put("bkt", "small", b"y" * 10)
    raw = cloud.raw(max_blob_bytes=1000)
    assert raw.get(small) == b"y" * 10
    with pytest.raises(BlobTooLarge) as info:
        raw.get(big)
    assert "5,000 bytes" in str(info.value) and "1,000" in str(info.value)
    assert [r.status for r in raw.get_many([big, small], progress=False)] == ["failed", "found"]


@pytest.mark.parametrize("bad", ["{s}://", "{s}://bucket", "{s}://bucket/", "{s}:/bucket/key", "file:///x",
                                 "http://bucket/key", "", None, 42, b"{s}://bucket/key"])
def test_invalid_uris(cloud, bad):
    raw = cloud.raw()
    uri = bad.replace("{s}", cloud.scheme) if isinstance(bad, str) else bad
    assert raw.is_valid(uri) is False
    with pytest.raises(InvalidURI) as info:
        raw.get(uri)
    assert raw.URI_HINT == f"{cloud.scheme}://{'container' if cloud.scheme == 'az' else 'bucket'}/key"
    assert raw.URI_HINT in str(info.value)
    with pytest.raises(InvalidURI):
        raw.put(uri, b"x")


@given(st.one_of(st.text(max_size=30),
                 st.builds(str.__add__, st.sampled_from(["s3://", "gs://", "az://", "abfs://", "azure://"]),
                           st.text(max_size=30))))
def test_is_valid_matches_the_uri_shape(text):
    from bitstore.backends.azure import AZRaw
    from bitstore.backends.gcs import GSRaw
    from bitstore.backends.s3 import S3Raw

    for store, schemes in ((S3Raw(), ("s3",)), (GSRaw(), ("gs",)), (AZRaw(), ("az", "abfs", "azure"))):
        scheme = next((s for s in schemes if text.startswith(f"{s}://")), None)
        rest = text[len(scheme) + 3:] if scheme else None
        bucket, _, key = (rest or "").partition("/")
        valid = rest is not None and bool(bucket) and bool(key) and (store.KIND != "az" or "@" not in bucket)
        assert store.is_valid(text) is valid


def test_names_and_kind(cloud):
    raw = cloud.raw()
    assert raw.name == cloud.scheme and raw.KIND == cloud.scheme
    assert cloud.raw(name="primary").name == "primary"
    assert Sha1Store(raw, f"{cloud.scheme}://bkt/files/").name == f"{cloud.scheme}://bkt/files/"


def test_pickle_drops_clients_and_works_after(cloud):
    cloud.create_bucket("bkt")
    uri = cloud.put("bkt", "k", b"payload")
    raw = cloud.raw()
    assert raw.get(uri) == b"payload"
    blob = pickle.dumps(raw)
    for marker in (b"botocore", b"urllib3", b"requests.sessions", b"AuthorizedSession", b"obstore", b"azure.core",
                   b"azure.storage"):
        assert marker not in blob
    clone = pickle.loads(blob)
    assert clone.get(uri) == b"payload"


def test_get_many_64_threads_no_pool_warnings(cloud, caplog):
    cloud.create_bucket("bkt")
    blobs = {cloud.put("bkt", f"blob/{i}", hashlib.sha1(str(i).encode()).digest() * (i % 7 + 1)): i
             for i in range(150)}
    expected = {uri: hashlib.sha1(str(i).encode()).digest() * (i % 7 + 1) for uri, i in blobs.items()}
    raw = cloud.raw()
    with caplog.at_level(logging.WARNING):
        results = list(raw.get_many(list(expected) * 2, max_workers=64, progress=False))
    assert [r.key for r in results] == list(expected) * 2
    assert all(r.status == "found" and r.data == expected[r.key] for r in results)
    assert not [r for r in caplog.records if "pool is full" in r.getMessage()]


def test_client_rebuilt_after_fork(cloud):
    global _FORKED_STORE
    cloud.create_bucket("bkt")
    uri = cloud.put("bkt", "k", b"from the child")
    _FORKED_STORE = cloud.raw()
    assert _FORKED_STORE.get(uri) == b"from the child"  # the parent's client exists before the fork
    try:
        with multiprocessing.get_context("fork").Pool(2) as pool:
            answers = pool.map(_get_in_child, [uri] * 4)
    finally:
        _FORKED_STORE = None
    assert answers == [(b"from the child", True, True)] * 4


@pytest.mark.parametrize("endpoint", ["ftp://127.0.0.1:1", "http://[bad", "not a url", "http://127.0.0.1:99999"])
def test_an_endpoint_no_transport_can_use_is_unavailable_at_once(cloud, endpoint):
    """A configuration error is StoreNotAvailable on the first attempt: never retried, never a crash (obstore
    panics on some malformed URLs), never missing."""
    from bitstore.ground.retry import RetryPolicy

    sleeps: list[float] = []
    raw = cloud.raw(endpoint=endpoint, retry=RetryPolicy(attempts=5, base_delay=0.001, sleep=sleeps.append))
    with pytest.raises(StoreNotAvailable, match="configuration error"):
        raw.get(f"{cloud.scheme}://bkt/key")
    assert sleeps == []
