"""SHA-256 keys through the Beam transforms on the local Python runner (FnApiRunner, two worker processes):
keys are checked against the store's family (a SHA1 is ``invalid`` for a SHA-256 spec), ``found``/``missing``
keys are canonical, ``EnrichWithBlobs`` reads the ``sha256`` field by default, and the Enrichment handler answers
SHA-256 requests."""
from __future__ import annotations

import hashlib
import os

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that, equal_to

from beam_transforms import BitstoreEnrichmentHandler, EnrichWithBlobs, FetchBlobs
from beam_transforms._fetching import canonical_key
from bitstore.core.sha1 import SHA1
from bitstore.core.sha256 import SHA256

from .conftest import MULTI_PROCESS, counters


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def _spec(tmp_path) -> dict:
    archive = tmp_path / "archive"
    archive.mkdir(exist_ok=True)
    for i in range(6):
        (archive / sha256(b"blob %d" % i)).write_bytes(b"blob %d" % i)
    return {"keys": "sha256", "tier": [{"type": "local", "prefix": str(tmp_path / "cache"), "role": "cache"},
                                       {"type": "local", "prefix": str(archive), "cache_result": True}]}


def test_canonical_key_follows_the_family():
    key = sha256(b"x")
    assert canonical_key(f" SHA256://{key.upper()}\n", SHA256) == (key, None)
    assert canonical_key(sha1(b"x"), SHA256)[0] is None and "64 hex digits" in canonical_key("zz", SHA256)[1]
    assert canonical_key(key, SHA1)[0] is None and "40 hex digits" in canonical_key(key, SHA1)[1]


def test_fetch_blobs_with_sha256_keys(tmp_path):
    spec = _spec(tmp_path)
    found = [sha256(b"blob %d" % i) for i in range(6)]
    missing = [sha256(b"missing %d" % i) for i in range(3)]
    sha1_keys = [sha1(b"blob 0"), "sha1://" + sha1(b"blob 1")]
    elements = [*found[:4], "sha256://" + found[4].upper(), "  " + found[5] + "\n", *missing, *sha1_keys, None]
    with beam.Pipeline(options=PipelineOptions(MULTI_PROCESS)) as pipeline:
        result = pipeline | beam.Create(elements, reshuffle=False) | FetchBlobs(spec, max_batch_size=4)
        assert_that(result.found, equal_to([(k, b"blob %d" % i) for i, k in enumerate(found)]), label="found")
        assert_that(result.missing, equal_to(missing), label="missing")
        assert_that(result.failed, equal_to([]), label="failed")
        assert_that(result.invalid | beam.Map(lambda pair: pair[0]), equal_to([*sha1_keys, None]), label="invalid")
    run = pipeline.result
    assert counters(run)["found"] == 6 and counters(run)["invalid"] == 3 and counters(run)["cache_writes"] == 6
    assert sorted(os.listdir(tmp_path / "cache")) == sorted(found)  # written back under the canonical keys


def test_enrich_with_blobs_reads_the_sha256_field_by_default(tmp_path):
    spec = _spec(tmp_path)
    rows = [{"sha256": sha256(b"blob 1"), "n": 1}, {"sha256": sha1(b"blob 1"), "n": 2},
            {"sha256": sha256(b"nope"), "n": 3}]
    with beam.Pipeline(options=PipelineOptions(MULTI_PROCESS)) as pipeline:
        out = (pipeline | beam.Create(rows) | EnrichWithBlobs(spec)
               | beam.Map(lambda row: (row["n"], row["blob"], row["blob_status"])))
        assert_that(out, equal_to([(1, b"blob 1", "found"), (2, None, "invalid"), (3, None, "missing")]))


def test_the_enrichment_handler_answers_sha256_requests(tmp_path):
    handler = BitstoreEnrichmentHandler(_spec(tmp_path))
    with handler:
        answers = handler([beam.Row(sha256="SHA256://" + sha256(b"blob 2").upper()), beam.Row(sha256=sha1(b"x")),
                           beam.Row(sha256=sha256(b"gone"))])
        assert handler.get_cache_key(beam.Row(sha256=sha256(b"blob 2").upper())) == f"sha256: {sha256(b'blob 2')}"
    assert [(r.blob, r.blob_status) for _, r in answers] == [(b"blob 2", "found"), (None, "invalid"),
                                                            (None, "missing")]
