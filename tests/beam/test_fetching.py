"""``BatchFetchDoFn`` driven by hand, as a runner drives it: outputs leave ``process`` as soon as their fetches are
done, ``max_batch_size`` bounds the elements held, ``finish_bundle`` emits the rest only after every write-back,
and a bundle that failed part-way leaves nothing behind. Waits are on events (no timing is asserted)."""
from __future__ import annotations

import hashlib
import threading

from apache_beam.transforms.window import IntervalWindow
from apache_beam.utils.timestamp import Timestamp
from apache_beam.utils.windowed_value import PANE_INFO_UNKNOWN, WindowedValue

from beam_transforms import EnrichWithBlobs, FetchBlobs
from bitstore import LocalRaw, Sha1APISource, Sha1Cache, Sha1Composite
from tests.test_batch_window import GatedStore, eventually


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


KEYS = [sha1(b"blob %d" % i) for i in range(8)]


def stamped(value, i: int) -> WindowedValue:
    return WindowedValue(value, Timestamp(i), (IntervalWindow(i, i + 1),), PANE_INFO_UNKNOWN)


def started(dofn):
    dofn.setup()
    dofn.start_bundle()
    return dofn


def placed(outputs) -> list[tuple]:
    """``(key, timestamp, windows)`` of each main output (FetchBlobs' found)."""
    return [(o.value[0], o.timestamp, o.windows) for o in outputs]


def test_outputs_leave_process_as_soon_as_their_fetches_are_done():
    store = GatedStore()
    dofn = started(FetchBlobs(store, max_workers=4, max_batch_size=64)._dofn)
    assert list(dofn.process(KEYS[0], windowed=stamped(KEYS[0], 0))) == []  # not fetched yet: nothing waits
    window = dofn._window
    store.release(KEYS[0])
    eventually(window.ready)
    out = list(dofn.process(KEYS[0], windowed=stamped(KEYS[0], 1)))  # shares the fetch that is done
    assert placed(out) == [(KEYS[0], Timestamp(i), (IntervalWindow(i, i + 1),)) for i in (0, 1)]
    assert not window  # every output emitted before finish_bundle; the bundle keeps its window
    store.release(*KEYS[1:])
    for i, key in enumerate(KEYS[1:], start=2):
        out += dofn.process(key, windowed=stamped(key, i))
        assert dofn._window is window
    out += dofn.finish_bundle()
    keys = [KEYS[0]] + KEYS
    assert placed(out) == [(key, Timestamp(i), (IntervalWindow(i, i + 1),)) for i, key in enumerate(keys)]
    assert [o.value[1] for o in out] == [key.encode().ljust(10, b".") for key in keys]
    assert store.started.count(KEYS[0]) == 1
    assert dofn._window is None and not dofn._waiting


def test_max_batch_size_bounds_the_elements_held():
    store = GatedStore()
    store.release(*KEYS)
    dofn = started(FetchBlobs(store, max_workers=8, max_batch_size=2)._dofn)
    out = []
    for i, key in enumerate(KEYS):
        out += dofn.process(key, windowed=stamped(key, i))
        assert len(dofn._waiting) <= 2
        assert len(out) >= i - 1  # the third element waits for the first one's output
    out += dofn.finish_bundle()
    assert [o.value[0] for o in out] == KEYS


class GatedArchive(Sha1APISource):
    """An archive answering each blob once the test opens its gate."""

    def __init__(self, blobs):
        super().__init__(name="archive")
        self.blobs, self.gate = blobs, threading.Event()

    def api_get(self, key):
        assert self.gate.wait(30)
        return self.blobs.get(key)


def test_every_write_back_is_done_when_finish_bundle_returns(tmp_path):
    blobs = {sha1(b"archived %d" % i): b"archived %d" % i for i in range(5)}
    archive = GatedArchive(blobs)
    store = Sha1Composite(name="tiered")
    (tmp_path / "cache").mkdir()
    store.append_cache(Sha1Cache(LocalRaw(str(tmp_path / "cache")), "", name="cache"))
    store.append_source(archive, cache_result=True)
    dofn = started(EnrichWithBlobs(store, max_workers=8)._dofn)
    out = []
    for i, key in enumerate(blobs):
        out += dofn.process({"sha1": key}, windowed=stamped({"sha1": key}, i))
    assert out == [] and list(tmp_path.joinpath("cache").iterdir()) == []
    archive.gate.set()
    out += dofn.finish_bundle()
    assert [o.value["blob"] for o in out] == list(blobs.values())
    assert sorted(p.name for p in tmp_path.joinpath("cache").iterdir()) == sorted(blobs)


def test_a_bundle_that_failed_part_way_leaves_nothing_behind():
    from bitstore.engine import batch

    store = GatedStore()
    dofn = started(FetchBlobs(store, max_workers=3)._dofn)
    for i, key in enumerate(KEYS[:2]):
        assert list(dofn.process(key, windowed=stamped(key, i))) == []
    dofn.start_bundle()  # the runner retries the failed bundle's elements elsewhere: its window is dropped
    assert dofn._window is None and not dofn._waiting
    store.release(KEYS[2])
    out = list(dofn.process(KEYS[2], windowed=stamped(KEYS[2], 2))) + list(dofn.finish_bundle())
    assert [o.value[0] for o in out] == [KEYS[2]]
    store.release(*KEYS[:2])
    dofn.teardown()
    assert any(n == 3 for n, _ in batch._pools._idle)


def test_invalid_elements_are_answered_at_once_and_only_once():
    store = GatedStore()
    store.release(KEYS[0])
    dofn = started(FetchBlobs(store, max_workers=2)._dofn)
    out = list(dofn.process(KEYS[0], windowed=stamped(KEYS[0], 0)))
    bad = list(dofn.process("not a sha1", windowed=stamped("not a sha1", 1)))
    assert [(o.tag, o.value.value[0], o.value.timestamp) for o in bad if hasattr(o, "tag")] == [
        ("invalid", "not a sha1", Timestamp(1))]
    out += [o for o in bad if not hasattr(o, "tag")] + list(dofn.finish_bundle())
    assert placed(out) == [(KEYS[0], Timestamp(0), (IntervalWindow(0, 1),))]
