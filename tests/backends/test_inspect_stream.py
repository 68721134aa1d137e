"""``head``/``stat`` by HEAD and ``open`` by ranged GETs on S3 (moto), GCS (fake-gcs-server) and Azure (Azurite)."""
from __future__ import annotations

import hashlib
import io
import os

import pytest

from bitstore import Composite, NotFoundInStore, Sha1Composite, Sha1Store, StoreNotAvailable
from bitstore.ground.errors import BlobTooLarge, FetchFailed

from .conftest import Cloud


@pytest.fixture(params=["s3", "gs", "az"])
def env(request):
    """(server env, scheme) for each cloud backend (Azure through the backends suite's ``Cloud`` helper)."""
    scheme = request.param
    if scheme == "az":
        return Cloud(request.getfixturevalue("azure_blob"), "az", "sdk"), scheme
    return request.getfixturevalue("s3" if scheme == "s3" else "gcs"), scheme


def endpoint(server) -> str:
    return getattr(server, "endpoint_url", None) or server.endpoint


def raw(server, scheme, **kwargs):
    if scheme == "az":
        return server.raw_via(kwargs.pop("endpoint"), **kwargs) if "endpoint" in kwargs else server.raw(**kwargs)
    if "endpoint" in kwargs and scheme == "s3":
        kwargs["endpoint_url"] = kwargs.pop("endpoint")
    return server.raw(transport="sdk", **kwargs)


def test_head_gives_the_size_without_reading_and_missing_only_for_a_missing_key(env):
    server, scheme = env
    server.create_bucket("blobs")
    uri = server.put("blobs", "a/b", b"x" * 1234)
    store = raw(server, scheme, max_blob_bytes=10)  # a HEAD never reads the body: the cap does not apply
    assert store.head(uri) == 1234
    with pytest.raises(BlobTooLarge):
        store.get(uri)
    with pytest.raises(NotFoundInStore):
        store.head(f"{scheme}://blobs/nope")
    info = store.stat(uri)
    assert (info.status, info.size, info.source) == ("found", 1234, store.name)


def test_a_404_for_a_bucket_that_does_not_exist_is_unavailable_never_missing(env):
    server, scheme = env
    store = raw(server, scheme)
    with pytest.raises(StoreNotAvailable, match="no-such-bucket"):
        store.head(f"{scheme}://no-such-bucket/key")
    with pytest.raises(StoreNotAvailable, match="no-such-bucket"):
        store.open(f"{scheme}://no-such-bucket/key")
    info = store.stat(f"{scheme}://no-such-bucket/key")
    assert info.status == "failed" and "does not exist" in info.error
    server.create_bucket("later")  # a bucket is only remembered once seen to exist
    with pytest.raises(NotFoundInStore):
        store.head(f"{scheme}://later/key")


def test_open_streams_with_seek_tell_and_ranges(env, fault_proxy):
    server, scheme = env
    server.create_bucket("blobs")
    data = os.urandom(3 * 1024 * 1024 + 17)
    uri = server.put("blobs", "big", data)
    proxy = fault_proxy(endpoint(server))
    store = raw(server, scheme, endpoint=proxy.url, max_blob_bytes=1000)
    with store.open(uri) as f:
        assert f.readable() and f.seekable()
        assert f.read(10) == data[:10] and f.tell() == 10
        f.seek(-7, io.SEEK_END)
        assert f.read() == data[-7:]
        f.seek(2_000_000)
        buffer = bytearray(5)
        assert f.readinto(buffer) == 5 and bytes(buffer) == data[2_000_000:2_000_005]
        f.seek(0)
        pieces = iter(lambda: f.read(1024 * 1024), b"")
        digest = hashlib.sha1()
        for piece in pieces:
            assert len(piece) <= 1024 * 1024  # never the whole blob at once
            digest.update(piece)
        assert digest.hexdigest() == hashlib.sha1(data).hexdigest()
    # one HEAD, then ranged GETs: at least four for the 3 MiB read alone, none of them the whole blob
    assert proxy.stats["forwarded"] >= 1 + 3 + 4


def test_open_retries_a_range_that_fails_and_resumes_there(env, fault_proxy):
    server, scheme = env
    server.create_bucket("blobs")
    data = os.urandom(2 * 1024 * 1024)
    uri = server.put("blobs", "k", data)
    proxy = fault_proxy(endpoint(server), rate=0.5, faults=("500", "reset", "truncate"), seed=3)
    store = raw(server, scheme, endpoint=proxy.url, retry={"attempts": 20, "base_delay": 0.0, "max_delay": 0.0})
    with store.open(uri) as f:
        assert f.read() == data
    assert sum(proxy.stats[k] for k in ("500", "reset", "truncate")) > 0


def test_open_of_a_missing_object_or_bucket(env):
    server, scheme = env
    server.create_bucket("blobs")
    store = raw(server, scheme)
    with pytest.raises(NotFoundInStore):
        store.open(f"{scheme}://blobs/nope")
    with pytest.raises(StoreNotAvailable):
        store.open(f"{scheme}://nobucket/nope")


def test_an_empty_object_opens_and_reads_empty(env):
    server, scheme = env
    server.create_bucket("blobs")
    uri = server.put("blobs", "empty", b"")
    with raw(server, scheme).open(uri) as f:
        assert f.read() == b"" and f.seek(0, io.SEEK_END) == 0


def test_stat_many_names_the_tier_that_has_each_blob(s3, gcs):
    s3.create_bucket("one")
    gcs.create_bucket("two")
    blobs = [os.urandom(n) for n in (10, 20, 30)]
    keys = [hashlib.sha1(b).hexdigest() for b in blobs]
    s3.put("one", f"f/{keys[0]}", blobs[0])
    gcs.put("two", f"g/{keys[1]}", blobs[1])
    store = Sha1Composite()
    store.append_source(Sha1Store(s3.raw(transport="sdk"), "s3://one/f/"))
    store.append_source(Sha1Store(gcs.raw(transport="sdk"), "gs://two/g/"))
    infos = list(store.stat_many([keys[0], keys[1].upper(), keys[2], "junk", f"sha1://{keys[0]}"], max_workers=4))
    assert [(i.status, i.size, i.source) for i in infos] == [
        ("found", 10, "s3://one/f/"), ("found", 20, "gs://two/g/"), ("missing", None, None),
        ("invalid", None, None), ("found", 10, "s3://one/f/")]
    assert infos[1].key == keys[1].upper()


def test_stat_reports_a_tier_that_fails_rather_than_missing(s3, gcs):
    gcs.create_bucket("two")
    store = Composite()
    store.append_source(s3.raw(transport="sdk"))  # no such bucket on S3
    store.append_source(gcs.raw(transport="sdk"))
    info = store.stat("s3://absent/k")
    assert info.status == "failed" and "does not exist" in info.error
    with pytest.raises(FetchFailed):
        store.head("s3://absent/k")


def test_put_many_stores_then_skips_on_each_cloud(env):
    server, scheme = env
    server.create_bucket("blobs")
    store = Sha1Store(raw(server, scheme), f"{scheme}://blobs/p/")
    items = [(hashlib.sha1(b).hexdigest(), b) for b in (b"one", b"two")]
    assert [r.status for r in store.put_many(items)] == ["stored", "stored"]
    assert [r.status for r in store.put_many(items + [("0" * 40, b"three")])] == ["skipped", "skipped", "invalid"]
    assert store.get(items[1][0]) == b"two"
