"""The original README's scenario, end to end on moto and fake-gcs-server: an S3 source and a GCS source,
a GCS cache, an API source whose hits are written back, then ``ultimap(blob_store.get, ...)`` on threads and
on worker processes (stores pickled into them, clients rebuilt there)."""
from __future__ import annotations

import hashlib

import pytest
from ultima import ultimap

from bitstore import GSRaw, NotFoundInStore, S3Raw, Sha1APISource, Sha1Cache, Sha1Composite, Sha1Store


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


class MyAPIStore(Sha1APISource):
    """The README's API source: a dict stands in for the remote API client."""

    def __init__(self, api_client: dict[str, bytes]):
        super().__init__()
        self.api_client = api_client

    def api_get(self, sha1: str) -> bytes | None:
        return self.api_client.get(sha1)


def _get_or_none(blob_store, key):
    try:
        return blob_store.get(key)
    except NotFoundInStore:
        return None


@pytest.fixture
def scenario(s3, gcs):
    s3.create_bucket("aws-customer-data")
    gcs.create_bucket("gcp-customer-data")
    gcs.create_bucket("cache-for-api")
    in_s3 = [f"s3 blob {i}".encode() * (i + 1) for i in range(20)]
    in_gcs = [f"gcs blob {i}".encode() * (i + 1) for i in range(20)]
    in_api = [f"api blob {i}".encode() * (i + 1) for i in range(20)]
    for data in in_s3:
        s3.put("aws-customer-data", f"files/{sha1(data)}", data)
    for data in in_gcs:
        gcs.put("gcp-customer-data", f"blobs/{sha1(data)}", data)

    blob_store = Sha1Composite()
    blob_store.append_source(Sha1Store(S3Raw(endpoint_url=s3.endpoint_url), "s3://aws-customer-data/files/"))
    blob_store.append_source(Sha1Store(GSRaw(endpoint=gcs.endpoint), "gs://gcp-customer-data/blobs/"))
    blob_store.append_cache(Sha1Cache(GSRaw(endpoint=gcs.endpoint), "gs://cache-for-api/"))
    blob_store.append_store(MyAPIStore({sha1(d): d for d in in_api}))
    expected = {sha1(d): d for d in in_s3 + in_gcs + in_api}
    absent = [sha1(f"nowhere {i}".encode()) for i in range(5)]
    return blob_store, expected, absent, gcs


def _cached(gcs) -> set[str]:
    return {blob.name for blob in gcs.client.list_blobs("cache-for-api")}


def test_readme_scenario_threading(scenario):
    blob_store, expected, absent, gcs = scenario
    hashes = list(expected) + absent
    results = list(ultimap(lambda h: _get_or_none(blob_store, h), hashes, backend="threading", n_workers=16,
                           ordered=True))
    assert results == list(expected.values()) + [None] * len(absent)
    api_hashes = {h for h, d in expected.items() if d.startswith(b"api blob")}
    assert _cached(gcs) == api_hashes  # written back inside the reads that fetched them
    served = {r.source for r in blob_store.get_many(sorted(api_hashes), progress=False)}
    assert served == {"gs://cache-for-api/"}  # a second pass is served by the cache


def test_readme_scenario_multiprocessing(scenario):
    blob_store, expected, _, gcs = scenario
    results = list(ultimap(blob_store.get, list(expected), backend="multiprocessing", n_workers=2, ordered=True))
    assert results == list(expected.values())
    api_hashes = {h for h, d in expected.items() if d.startswith(b"api blob")}
    assert _cached(gcs) == api_hashes  # the workers' own clients wrote back


def test_get_many_reports_sources(scenario):
    blob_store, expected, absent, _ = scenario
    results = list(blob_store.get_many(list(expected) + absent, progress=False))
    by_source = {}
    for r in results:
        by_source.setdefault(r.source, 0)
        by_source[r.source] += 1
    assert [r.status for r in results] == ["found"] * len(expected) + ["missing"] * len(absent)
    assert all(r.data == expected[r.key] for r in results if r.status == "found")
    assert by_source == {"s3://aws-customer-data/files/": 20, "gs://gcp-customer-data/blobs/": 20,
                         "MyAPIStore": 20, None: len(absent)}
