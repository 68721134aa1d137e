"""EnrichWithBlobs (dicts and Rows) and BitstoreEnrichmentHandler inside Enrichment, on two worker processes."""
from __future__ import annotations

import functools
import hashlib
import os

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.enrichment import Enrichment

from beam_transforms import BitstoreEnrichmentHandler, EnrichWithBlobs

from .conftest import MULTI_PROCESS, counters
from .helpers import tiered_store


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


BLOBS = {sha1(data): data for data in (b"blob %d " % i * (i + 1) for i in range(7))}
FOUND = sorted(BLOBS)
MISSING = [sha1(b"nowhere %d" % i) for i in range(3)]
FAILING = [sha1(b"failing")]


@pytest.fixture
def tiers(tmp_path):
    os.makedirs(tmp_path / "archive")
    for key, data in BLOBS.items():
        (tmp_path / "archive" / key).write_bytes(data)
    return tmp_path


def spec_for(root) -> dict:
    return {"keys": "sha1", "tier": [
        {"type": "local", "prefix": f"{root / 'archive'}/", "name": "archive", "cache_result": True},
        {"type": "local", "prefix": f"{root / 'spec-cache'}/", "role": "cache", "name": "cache"},
    ]}


def test_enrich_and_enrichment_handler_answer_every_element(tiers):
    factory = functools.partial(tiered_store, str(tiers), str(tiers / "markers"), fail_keys=FAILING)
    requests = ([(i, k) for i, k in enumerate(FOUND)] + [(100 + i, k.upper()) for i, k in enumerate(MISSING)]
                + [(200, FAILING[0]), (300, "not-a-sha1"), (301, "")])
    expected = ([(i, BLOBS[k], "found") for i, k in enumerate(FOUND)]
                + [(100 + i, None, "missing") for i in range(len(MISSING))]
                + [(200, None, "failed"), (300, None, "invalid"), (301, None, "invalid")])

    pipeline = beam.Pipeline(argv=MULTI_PROCESS)
    rows = pipeline | "Rows" >> beam.Create([beam.Row(id=i, sha1=k) for i, k in requests])
    enriched = rows | Enrichment(BitstoreEnrichmentHandler(factory, max_batch_size=4), timeout=120)
    assert_that(enriched | "RowOut" >> beam.Map(lambda r: (r.id, r.blob, r.blob_status)), equal_to(expected),
                label="enrichment")
    assert_that(enriched | "RowFields" >> beam.Map(lambda r: sorted(r._asdict())),
                equal_to([["blob", "blob_status", "id", "sha1"]] * len(requests)), label="enrichment fields")

    by_rows = rows | "RowsEnriched" >> EnrichWithBlobs(factory, max_batch_size=3)
    assert_that(by_rows | "ByRows" >> beam.Map(lambda r: (r.id, r.blob, r.blob_status)), equal_to(expected),
                label="rows")

    dicts = [{"key": "sha1://" + FOUND[0], "n": 1}, {"key": MISSING[0], "n": 2}, {"key": None, "n": 3},
             {"n": 4}, {"key": b"bytes", "n": 5}, {"key": FOUND[1].upper(), "n": 6}]
    by_dicts = (pipeline | "Dicts" >> beam.Create(dicts)
                | "DictsEnriched" >> EnrichWithBlobs(spec_for(tiers), key_field="key", blob_field="data",
                                                     status_field="state", source_field="tier"))
    assert_that(by_dicts, equal_to([
        {"key": "sha1://" + FOUND[0], "n": 1, "data": BLOBS[FOUND[0]], "state": "found", "tier": "archive"},
        {"key": MISSING[0], "n": 2, "data": None, "state": "missing", "tier": None},
        {"key": None, "n": 3, "data": None, "state": "invalid", "tier": None},
        {"n": 4, "data": None, "state": "invalid", "tier": None},
        {"key": b"bytes", "n": 5, "data": None, "state": "invalid", "tier": None},
        {"key": FOUND[1].upper(), "n": 6, "data": BLOBS[FOUND[1]], "state": "found", "tier": "archive"},
    ]), label="dicts")
    run = pipeline.run()
    run.wait_until_finish()

    # EnrichWithBlobs reports metrics (rows + dicts); the spec's archive hits were written to its cache.
    metrics = counters(run)
    assert metrics["found"] == len(FOUND) + 2
    assert metrics["missing"] == len(MISSING) + 1
    assert metrics["invalid"] == 2 + 3
    assert metrics["failed"] == 1
    assert sorted(os.listdir(tiers / "spec-cache")) == sorted(FOUND[:2])


def test_handler_answers_batches_and_single_requests(tiers):
    factory = functools.partial(tiered_store, str(tiers), str(tiers / "markers"), fail_keys=FAILING)
    handler = BitstoreEnrichmentHandler(factory, max_batch_size=8, min_batch_size=2, max_batch_duration_secs=5,
                                        source_field="source")
    assert handler.batch_elements_kwargs() == {"min_batch_size": 2, "max_batch_size": 8,
                                               "max_batch_duration_secs": 5}
    batch = [beam.Row(sha1=FOUND[0]), beam.Row(sha1=MISSING[0]), beam.Row(sha1=FAILING[0]), beam.Row(other=1)]
    with handler:
        answers = handler(batch)
        single = handler(beam.Row(sha1="SHA1://" + FOUND[1].upper()))
    assert [request for request, _ in answers] == batch
    assert [(r.blob, r.blob_status, r.source) for _, r in answers] == [
        (BLOBS[FOUND[0]], "found", "archive"), (None, "missing", None), (None, "failed", None),
        (None, "invalid", None)]
    assert single[1].blob == BLOBS[FOUND[1]] and single[1].blob_status == "found"
    assert handler.get_cache_key(beam.Row(sha1=FOUND[0].upper())) == f"sha1: {FOUND[0]}"
    assert handler.get_cache_key(batch[:2]) == [f"sha1: {FOUND[0]}", f"sha1: {MISSING[0]}"]


@pytest.mark.parametrize("kwargs", [{"min_batch_size": 0}, {"min_batch_size": 5, "max_batch_size": 4},
                                    {"max_workers": 0}, {"blob_field": "sha1"}, {"status_field": ""}])
def test_handler_rejects_bad_options(kwargs):
    with pytest.raises(ValueError):
        BitstoreEnrichmentHandler(lambda: None, **kwargs)


def test_enrich_with_blobs_refuses_elements_it_cannot_extend(tiers):
    with pytest.raises(Exception, match="dict or beam.Row"):
        with beam.Pipeline(argv=["--runner=FnApiRunner"]) as pipeline:
            _ = pipeline | beam.Create([FOUND[0]]) | EnrichWithBlobs(spec_for(tiers))
