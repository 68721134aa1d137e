"""FetchBlobs with an S3 source (moto on 127.0.0.1) and a local cache, on two worker processes."""
from __future__ import annotations

import hashlib
import os

import apache_beam as beam
from apache_beam.testing.util import assert_that, equal_to

from beam_transforms import FetchBlobs
from bitstore import LocalRaw, Sha1Cache, Sha1Composite, Sha1Store

from .conftest import MULTI_PROCESS, counters
from .pickles import assert_clean, pickled_objects, run_bundle

BLOBS = {hashlib.sha1(data).hexdigest(): data for data in (b"s3 blob %d " % i * (i + 1) for i in range(10))}
MISSING = [hashlib.sha1(b"not in s3 %d" % i).hexdigest() for i in range(3)]
KEY_ID, SECRET = "AKIABITSTORECANARY01", "bitstore/beam/canary/secret/7d1c0"


def s3_spec(s3, cache_dir, **s3_tier) -> dict:
    return {"keys": "sha1", "tier": [
        {"type": "local", "prefix": f"{cache_dir}/", "role": "cache", "name": "cache"},
        {"type": "s3", "prefix": "s3://archive/files/", "endpoint_url": s3.endpoint_url, "name": "s3-archive",
         "cache_result": True, "attempts": 2, "base_delay": 0.001, "max_delay": 0.01, **s3_tier},
    ]}


def fill_bucket(s3) -> None:
    s3.create_bucket("archive")
    for key, data in BLOBS.items():
        s3.put("archive", f"files/{key}", data)


def test_fetch_blobs_from_s3_into_a_local_cache(s3, tmp_path):
    fill_bucket(s3)
    keys = [*BLOBS, *MISSING, list(BLOBS)[0].upper()]
    pipeline = beam.Pipeline(argv=MULTI_PROCESS)
    result = (pipeline | beam.Create(keys) | beam.Reshuffle()
              | FetchBlobs(s3_spec(s3, tmp_path / "cache"), max_batch_size=4, max_workers=4))
    assert_that(result.found, equal_to([*BLOBS.items(), (list(BLOBS)[0], BLOBS[list(BLOBS)[0]])]), label="found")
    assert_that(result.missing, equal_to(MISSING), label="missing")
    assert_that(result.failed, equal_to([]), label="failed")
    run = pipeline.run()
    run.wait_until_finish()

    assert sorted(os.listdir(tmp_path / "cache")) == sorted(BLOBS)
    for key, data in BLOBS.items():
        assert (tmp_path / "cache" / key).read_bytes() == data
    metrics = counters(run)
    assert metrics["found"] == len(BLOBS) + 1 and metrics["missing"] == len(MISSING)
    # The duplicate may be served by S3 or, once another batch wrote it back, by the cache.
    assert metrics["hits.s3-archive"] + metrics.get("hits.cache", 0) == len(BLOBS) + 1
    assert len(BLOBS) <= metrics["cache_writes"] <= len(BLOBS) + 1
    assert metrics["bytes"] == sum(map(len, BLOBS.values())) + len(BLOBS[list(BLOBS)[0]])


def test_dofn_pickles_hold_no_s3_client_or_resolved_credentials(s3, tmp_path, monkeypatch):
    fill_bucket(s3)
    monkeypatch.setenv("BITSTORE_TEST_KEY_ID", KEY_ID)
    monkeypatch.setenv("BITSTORE_TEST_SECRET", SECRET)
    spec = s3_spec(s3, tmp_path / "cache", credentials_env={"aws_access_key_id": "BITSTORE_TEST_KEY_ID",
                                                             "aws_secret_access_key": "BITSTORE_TEST_SECRET"})
    key = next(iter(BLOBS))
    dofn = FetchBlobs(spec)._dofn
    assert [wv.value for wv in run_bundle(dofn, [key])] == [(key, BLOBS[key])]
    assert_clean(dofn, KEY_ID, SECRET)

    # A Store object given directly travels with the DoFn; after use, its pickle still holds no client.
    store = Sha1Composite(name="direct")
    store.append_cache(Sha1Cache(LocalRaw(str(tmp_path / "direct-cache")), "", name="cache"))
    store.append_source(Sha1Store(s3.raw(), "s3://archive/files/", name="s3"))
    used = FetchBlobs(store)._dofn
    assert [wv.value for wv in run_bundle(used, [key])] == [(key, BLOBS[key])]
    assert [wv.value for wv in run_bundle(used, [key])] == [(key, BLOBS[key])]  # setup again: same process store

    held = pickled_objects(used)
    assert not any(type(v).__module__.startswith(("botocore", "boto3", "urllib3")) for v in held)
