"""A quota-limited API tier under FetchBlobs with several DoFn threads (FnApiRunner, multi_threading): the
tier's limit holds across every DoFn thread of the process, no key fails because of the quota, and the
per-tier Beam metrics count the calls and the waits."""
from __future__ import annotations

import hashlib

import apache_beam as beam
from apache_beam.testing.util import assert_that, equal_to

from beam_transforms import FetchBlobs
from bitstore import Sha1Composite
from tests.core_helpers import QuotaAPI, quota_state

from .conftest import counters

THREADS = ["--runner=FnApiRunner", "--direct_running_mode=multi_threading", "--direct_num_workers=4"]


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def test_quota_holds_across_dofn_threads_and_every_key_is_answered():
    blobs = {sha1(b"beam quota %d" % i): b"beam quota %d" % i for i in range(240)}
    missing = [sha1(b"nobody has %d" % i) for i in range(10)]
    store = Sha1Composite(name="paid")
    store.append_source(QuotaAPI(blobs, quota=3, delay=0.002, group="beam-threads"), max_concurrency=3)

    pipeline = beam.Pipeline(argv=THREADS)
    result = (
        pipeline
        | beam.Create(list(blobs) + missing)
        | beam.Reshuffle()
        | FetchBlobs(store, max_batch_size=8, max_workers=64)
    )
    assert_that(result.found, equal_to(list(blobs.items())), label="found")
    assert_that(result.missing, equal_to(missing), label="missing")
    assert_that(result.failed, equal_to([]), label="failed")
    run = pipeline.run()
    run.wait_until_finish()

    state = quota_state("beam-threads")
    assert state.throttled == 0 and state.peak == 3  # the limit was reached, never passed
    assert state.calls == 250
    metrics = counters(run)
    assert metrics["calls.quota-api"] == 250 and metrics["misses.quota-api"] == 10
    assert metrics["bytes.quota-api"] == sum(map(len, blobs.values()))
    assert "throttled.quota-api" not in metrics and "failures.quota-api" not in metrics
    assert metrics["wait_ms.quota-api"] > 0  # 8 keys a batch, 3 at a time: calls queued for their place
