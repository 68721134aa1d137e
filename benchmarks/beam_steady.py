"""``FetchBlobs`` and ``EnrichWithBlobs`` at steady state, against ``get_many`` on the same keys.

A Beam pipeline's wall time includes building and starting it (FnApiRunner: about a second here); at steady
state only the fetching counts. The transforms' DoFn is subclassed here to note the time its first bundle
starts and its last bundle finishes (``start_bundle`` / ``finish_bundle``: nothing per element), in this process
(FnApiRunner runs the DoFns in the pipeline's own process): the timed span covers every element decoded, offered,
fetched and emitted, as ``get_many``'s timed pass covers every key read, fetched and yielded. Blobs and bytes
are counted through the transforms' own ``bitstore`` metrics.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from .measure import Contender, Fetcher, Unavailable
from .remote import Target, bitstore_store

__all__ = ["beam_contenders", "FETCH_BLOBS_STEADY", "ENRICH_STEADY"]

FETCH_BLOBS_STEADY = "beam FetchBlobs (FnApiRunner, steady state)"
ENRICH_STEADY = "beam EnrichWithBlobs (FnApiRunner, steady state)"

_lock = threading.Lock()
_span: list[float] = []  # [first start_bundle, last finish_bundle] of the timed DoFn in this process
_bundles = [0]


def _note(start: bool) -> None:
    now = time.perf_counter()
    with _lock:
        _bundles[0] += start
        if not _span:
            _span.extend([now, now])
        elif start:
            _span[0] = min(_span[0], now)
        else:
            _span[1] = max(_span[1], now)


def _timed(dofn_class: type) -> type:
    """``dofn_class`` noting its bundles' start and finish (module-level, so pickling finds it)."""

    class Timed(dofn_class):
        def start_bundle(self):
            _note(True)
            return super().start_bundle()

        def finish_bundle(self):
            yield from super().finish_bundle()
            _note(False)

    Timed.__name__ = Timed.__qualname__ = f"Timed{dofn_class.__name__}"
    globals()[Timed.__name__] = Timed
    return Timed


def _run(build_pipeline) -> tuple[int, int, float, int]:
    from apache_beam.metrics.metric import MetricsFilter

    with _lock:
        _span.clear()
        _bundles[0] = 0
    result = build_pipeline().run()
    result.wait_until_finish()
    counters = result.metrics().query(MetricsFilter().with_namespace("bitstore"))["counters"]
    totals = {c.key.metric.name: c.committed if c.committed is not None else c.attempted for c in counters}
    with _lock:
        seconds = _span[1] - _span[0] if _span else 0.0
        bundles = _bundles[0]
    return int(totals.get("found", 0)), int(totals.get("bytes", 0)), seconds, bundles


class _SteadyFetcher:
    """A fetcher whose ``seconds`` is the steady-state span of its last run (``measure`` uses it over the wall), and
    ``details`` what else the row should say (the bundles the DoFn saw)."""

    def __init__(self, build):
        self._build = build
        self.seconds: float | None = None
        self.details: dict = {}

    def __call__(self, keys: Sequence[str]) -> tuple[int, int]:
        found, nbytes, self.seconds, bundles = _run(lambda: self._build(list(keys)))
        self.details = {"bundles": bundles}
        return found, nbytes


def _need_beam():
    try:
        import apache_beam as beam
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner

        import beam_transforms
    except ImportError as exc:
        raise Unavailable(f"apache-beam not installed: {exc}") from None
    logging.getLogger().setLevel(logging.ERROR)  # Beam warns about output type hints on every run
    return beam, FnApiRunner, beam_transforms


def _fetch_blobs(t: Target) -> Fetcher:
    beam, FnApiRunner, transforms = _need_beam()
    from beam_transforms import fetch as fetch_module

    transform = transforms.FetchBlobs(bitstore_store(t))  # one for every run: the worker's store is kept
    transform._dofn.__class__ = _timed(fetch_module._FetchBlobsDoFn)

    def build(keys):
        pipeline = beam.Pipeline(runner=FnApiRunner())
        _ = pipeline | beam.Create(keys) | transform
        return pipeline

    return _SteadyFetcher(build)


def _enrich(t: Target) -> Fetcher:
    beam, FnApiRunner, transforms = _need_beam()
    from beam_transforms import enrichment

    transform = transforms.EnrichWithBlobs(bitstore_store(t), key_field="sha1")
    transform._dofn.__class__ = _timed(enrichment._EnrichDoFn)

    def build(keys):
        pipeline = beam.Pipeline(runner=FnApiRunner())
        _ = pipeline | beam.Create([{"sha1": k} for k in keys]) | transform
        return pipeline

    return _SteadyFetcher(build)


def beam_contenders() -> list[Contender]:
    return [
        Contender(FETCH_BLOBS_STEADY, _fetch_blobs, warmup=64),
        Contender(ENRICH_STEADY, _enrich, warmup=64),
    ]
