"""FetchBlobs on the local runner with two worker processes: partition, windows, write-back, setup, metrics."""
from __future__ import annotations

import functools
import hashlib
import os
import threading

import apache_beam as beam
import pytest
from apache_beam.internal import pickler
from apache_beam.testing import util as beam_testing
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.window import FixedWindows, IntervalWindow, TimestampedValue

from beam_transforms import FetchBlobs
from beam_transforms._fetching import canonical_sha1
from beam_transforms._store import StoreSource

from .conftest import MULTI_PROCESS, counters, distribution
from .helpers import BUILDS, WRONG_BYTES, count_builds, marker_pids, tiered_store


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def _write(folder, blobs):
    os.makedirs(folder, exist_ok=True)
    for key, data in blobs.items():
        with open(os.path.join(folder, key), "wb") as f:
            f.write(data)


def test_fetch_blobs_partitions_every_element_once_in_its_window(tmp_path):
    archived = {sha1(data): data for data in (b"archived %d " % i * (i + 1) for i in range(12))}
    cached = {sha1(b"cached %d" % i): b"cached %d" % i for i in range(3)}
    missing = [sha1(b"missing %d" % i) for i in range(5)]
    failing = [sha1(b"failing %d" % i) for i in range(2)]
    liar = sha1(b"the liar's key")
    _write(tmp_path / "archive", archived)
    _write(tmp_path / "cache", cached)
    markers = tmp_path / "markers"
    factory = functools.partial(tiered_store, str(tmp_path), str(markers), fail_keys=failing, lie_about=liar)

    cached_keys = list(cached)
    valid_forms = (
        list(archived)
        + cached_keys
        + [cached_keys[0].upper(), "sha1://" + cached_keys[1], "SHA1://" + cached_keys[2].upper()]
        + missing + failing + [liar]
    )
    invalid = ["zz", "", None, b"\x00bytes", 42, 3.5, "sha1:" + missing[0], missing[0][:20] + "\n" + missing[0][20:],
               missing[0] + "0", "sha1:// " + missing[1], "md5://" + missing[2]]
    elements = valid_forms + invalid

    def windowed(value, index):
        start = index - index % 10
        return beam_testing.TestWindowedValue(value, index, [IntervalWindow(start, start + 10)])

    expected_found, expected_missing, expected_failed, expected_invalid = [], [], [], []
    for index, element in enumerate(elements):
        key, reason = canonical_sha1(element)
        if key is None:
            expected_invalid.append(windowed(element, index))
        elif key in archived:
            expected_found.append(windowed((key, archived[key]), index))
        elif key in cached:
            expected_found.append(windowed((key, cached[key]), index))
        elif key == liar:
            expected_found.append(windowed((key, WRONG_BYTES), index))
        elif key in missing:
            expected_missing.append(windowed(key, index))
        else:
            expected_failed.append(windowed(key, index))

    pipeline = beam.Pipeline(argv=MULTI_PROCESS)
    result = (
        pipeline
        | beam.Create(list(enumerate(elements)))
        | "Stamp" >> beam.Map(lambda pair: TimestampedValue(pair[1], pair[0]))
        | beam.WindowInto(FixedWindows(10))
        | FetchBlobs(factory, max_batch_size=4, max_workers=3)
    )
    assert_that(result.found, equal_to(expected_found), reify_windows=True, label="found")
    assert_that(result.missing, equal_to(expected_missing), reify_windows=True, label="missing")
    assert_that(result.failed | beam.Map(lambda pair: (pair[0], "flaky backend exploded" in pair[1])),
                equal_to([(v.value, True) for v in expected_failed]), label="failed")
    assert_that(result.failed, lambda got: _same_windows(got, expected_failed), reify_windows=True,
                label="failed windows")
    assert_that(result.invalid | beam.Map(lambda pair: (pair[0], pair[1].startswith("not a SHA1"))),
                equal_to([(v.value, True) for v in expected_invalid]), label="invalid")
    assert_that(result.invalid | "InvalidElements" >> beam.Map(lambda pair: pair[0]),
                equal_to(expected_invalid), reify_windows=True, label="invalid windows")
    run = pipeline.run()
    run.wait_until_finish()

    # Write-back: every archived blob is now in the cache tier; the liar's bytes were refused.
    assert sorted(os.listdir(tmp_path / "cache")) == sorted(list(archived) + cached_keys)
    for key, data in archived.items():
        assert (tmp_path / "cache" / key).read_bytes() == data

    # The store was built on the workers, once per worker process.
    pids = marker_pids(str(markers))
    assert pids and os.getpid() not in pids
    assert len(pids) == len(set(pids)) <= 2

    metrics = counters(run)
    assert metrics["found"] == len(expected_found) == len(archived) + 6 + 1
    assert metrics["missing"] == len(missing)
    assert metrics["failed"] == len(failing)
    assert metrics["invalid"] == len(invalid)
    assert metrics["bytes"] == (sum(map(len, archived.values())) + sum(map(len, cached.values()))
                                + sum(len(cached[k]) for k in cached_keys) + len(WRONG_BYTES))
    assert metrics["hits.archive"] == len(archived)
    assert metrics["hits.cache"] == 6
    assert metrics["hits.lying-api"] == 1
    assert metrics["cache_writes"] == len(archived)
    assert metrics["cache_write_failures"] == 1
    fetch_ms = distribution(run, "fetch_ms")
    valid = len(valid_forms)
    assert fetch_ms.count >= -(-valid // 4) and fetch_ms.min >= 0 and fetch_ms.sum >= fetch_ms.max


def _same_windows(got, expected):
    keys = sorted((v.value[0], v.timestamp, tuple(v.windows)) for v in got)
    want = sorted((v.value, v.timestamp, tuple(v.windows)) for v in expected)
    assert keys == want, (keys, want)


def test_store_source_builds_once_per_process_across_copies_and_threads():
    source = StoreSource(count_builds)
    copies = [pickler.loads(pickler.dumps(source)) for _ in range(3)]  # as each DoFn instance unpickles it
    stores = []
    threads = [threading.Thread(target=lambda s=s: stores.append(s.acquire())) for s in copies * 8]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert BUILDS == [os.getpid()]
    assert len(stores) == 24 and len({id(s) for s in stores}) == 1
    assert StoreSource(count_builds).acquire() is not stores[0]  # another transform, another store
    assert BUILDS == [os.getpid()] * 2


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_fetch_blobs_rejects_bad_batching_options(bad):
    with pytest.raises(ValueError):
        FetchBlobs(dict(tier=[{"type": "memory", "prefix": "mem://x/"}]), max_batch_size=bad)


def test_fetch_blobs_rejects_a_store_it_cannot_use():
    with pytest.raises(TypeError, match="store must be"):
        FetchBlobs(42)


def test_store_source_keeps_its_store_while_other_shared_objects_come_and_go():
    import gc

    from apache_beam.utils.shared import Shared

    from beam_transforms._store import StoreSource
    from bitstore import MemoryRaw

    builds = []

    def factory():
        builds.append(1)
        return MemoryRaw()

    source = StoreSource(factory)
    first = source.acquire()
    other = Shared()
    for _ in range(3):  # another user of Shared in the same process (e.g. RunInference)
        other.acquire(lambda: type("Box", (), {})())
        gc.collect()
    assert source.acquire() is first and len(builds) == 1
    assert "_held" not in source.__getstate__()
