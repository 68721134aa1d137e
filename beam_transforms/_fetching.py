"""The engine behind the Beam transforms: check keys, keep their fetches going across elements, count.

``BatchFetchDoFn`` keeps one ``bitstore.engine.batch.FetchWindow`` (``get_many``'s engine) open per bundle. Each valid
key is offered to it as its element arrives, and every result already fetched is emitted at once, in its
element's own windows, so Beam reads and decodes the next elements while the fetches run. The DoFn holds at most
``max_batch_size`` elements whose output is not yet emitted; the window fetches ``max_workers`` keys at once and
reads at most ``4 * max_workers`` ahead while the bytes fetched but not yet emitted are under
``max_batch_bytes``. ``process`` waits only when one of those bounds is reached. ``finish_bundle`` emits
everything left, so every write-back to a cache tier (done by the composite inside the fetch) has completed
before the bundle commits. Subclasses decide what a key is and what each outcome becomes.
"""
from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.utils.windowed_value import WindowedValue

from bitstore import FetchResult, Store
from bitstore.core.hashed import KeyFamily, family_of
from bitstore.core.sha1 import SHA1
from bitstore.engine.batch import FetchWindow

from ._store import StoreSource

__all__ = [
    "BatchFetchDoFn", "FetchMetrics", "canonical_sha1", "canonical_key", "family_for", "field_of", "NAMESPACE",
    "DEFAULT_MAX_BATCH_SIZE", "DEFAULT_MAX_WORKERS", "DEFAULT_MAX_BATCH_BYTES",
]

NAMESPACE = "bitstore"
DEFAULT_MAX_BATCH_SIZE = 1024
DEFAULT_MAX_WORKERS = 64
DEFAULT_MAX_BATCH_BYTES = 64 * 1024 * 1024

def family_for(store: Store | None) -> KeyFamily:
    """The key family of ``store`` (``Sha256Composite``: SHA-256), SHA1 for a store of no family."""
    return family_of(store) or SHA1


def canonical_key(element: Any, family: KeyFamily = SHA1) -> tuple[str | None, str | None]:
    """``(lowercase hex, None)`` for ``<hex>`` or ``<name>://<hex>`` of ``family`` in any case (surrounding
    whitespace ignored, as by the family's composite), else ``(None, reason)``."""
    canonical = family.canonical(element)
    return (canonical, None) if canonical is not None else (None, family.reason(element))


def canonical_sha1(element: Any) -> tuple[str | None, str | None]:
    """``canonical_key`` for SHA1 keys: ``<sha1>`` or ``sha1://<sha1>``."""
    return canonical_key(element, SHA1)


def field_of(element: Any, field: str) -> tuple[Any, str | None]:
    """``(value, None)`` of ``field`` in a dict or ``beam.Row``, else ``(None, reason)``."""
    if isinstance(element, dict):
        if field in element:
            return element[field], None
    elif hasattr(element, "_asdict"):  # beam.Row, named tuples
        if hasattr(element, field):
            return getattr(element, field), None
    else:
        return None, f"expected a dict or beam.Row, got {type(element).__name__}"
    return None, f"no field {field!r}"


class FetchMetrics:
    """Beam metrics under the ``bitstore`` namespace; created on the worker.

    Results are counted here in plain ints (a Beam counter's ``inc`` looks up the step's metrics container on every
    call) and ``report`` adds them to Beam's counters in one go: every ``max_batch_size`` outputs and at the end of
    each bundle. ``fetch_ms`` gets one value per report: the milliseconds the DoFn spent blocked waiting for
    fetches since the last one."""

    COUNTERS = ("found", "missing", "invalid", "failed", "bytes", "cache_writes", "cache_write_failures")

    def __init__(self):
        self._counters = {name: Metrics.counter(NAMESPACE, name) for name in self.COUNTERS}
        self.fetch_ms = Metrics.distribution(NAMESPACE, "fetch_ms")
        self._tier_metrics: dict[str, Any] = {}
        self._reset()

    def _reset(self) -> None:
        self._counts = dict.fromkeys(self.COUNTERS, 0)
        self._hits: dict[str, int] = {}
        self._waited = 0.0
        self._fetched = 0
        #: Outputs counted since the last report.
        self.outputs = 0

    def count(self, result: FetchResult) -> None:
        """One fetched key's outcome."""
        counts = self._counts
        status = result.status
        counts[status] += 1
        self._fetched += 1
        self.outputs += 1
        if status == "found":
            counts["bytes"] += len(result.data)
            source = result.source
            if source:
                self._hits[source] = self._hits.get(source, 0) + 1
        cached = result.cached
        if cached is True:
            counts["cache_writes"] += 1
        elif cached is False:
            counts["cache_write_failures"] += 1

    def count_invalid(self) -> None:
        """One element that is not a key (answered without a fetch)."""
        self._counts["invalid"] += 1
        self.outputs += 1

    def waited(self, seconds: float) -> None:
        self._waited += seconds

    def report(self, store: Store | None) -> None:
        """Add what was counted since the last report to Beam's metrics, with the store's per-tier counters."""
        for name, value in self._counts.items():
            if value:
                self._counters[name].inc(value)
        for source, value in self._hits.items():
            self._tier_metric(Metrics.counter, f"hits.{source}").inc(value)
        if self._fetched:
            self.fetch_ms.update(round(self._waited * 1000))
        self._reset()
        if store is not None:
            self.record_tiers(store)

    def record_tiers(self, store: Store) -> None:
        """Per-tier counters of a composite (``calls.<tier>``, ``misses.<tier>``, ``failures.<tier>``,
        ``throttled.<tier>``, ``bytes.<tier>``, ``wait_ms.<tier>``) and a ``latency_ms.<tier>`` distribution of
        the median call since the last report: the increments since the last report of this worker's shared
        store."""
        drain = getattr(store, "drain_stats", None)
        if drain is None:
            return
        for tier in drain().values():
            for field, value in (("calls", tier.calls), ("misses", tier.misses), ("failures", tier.failures),
                                 ("throttled", tier.throttled), ("bytes", tier.bytes),
                                 ("wait_ms", round(tier.wait_seconds * 1000))):
                if value:
                    self._tier_metric(Metrics.counter, f"{field}.{tier.name}").inc(value)
            if tier.latency_p50 is not None:
                self._tier_metric(Metrics.distribution, f"latency_ms.{tier.name}").update(
                    round(tier.latency_p50 * 1000))

    def _tier_metric(self, kind: Any, name: str) -> Any:
        metric = self._tier_metrics.get(name)
        if metric is None:
            metric = self._tier_metrics[name] = kind(NAMESPACE, name)
        return metric


class BatchFetchDoFn(beam.DoFn):
    """Fetches keys through one window per bundle and emits one output per element (see the module doc)."""

    def __init__(self, source: StoreSource, *, max_batch_size: int, max_workers: int, max_batch_bytes: int):
        super().__init__()
        for name, value in (("max_batch_size", max_batch_size), ("max_workers", max_workers),
                            ("max_batch_bytes", max_batch_bytes)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, not {value!r}")
        self._source = source
        self._max_batch_size = max_batch_size
        self._max_workers = max_workers
        self._max_batch_bytes = max_batch_bytes
        self._store: Store | None = None
        self._family: KeyFamily = SHA1  # the store's, once setup has it
        self._metrics: FetchMetrics | None = None
        self._window: FetchWindow | None = None
        self._waiting: deque[tuple[WindowedValue, str]] = deque()  # offered, output not yet emitted, in order

    # --- subclass hooks ----------------------------------------------------------------------------
    def key_of(self, element: Any) -> tuple[str | None, str | None]:
        """``(canonical key, None)`` to fetch, or ``(None, reason)`` for an invalid element."""
        raise NotImplementedError

    def on_invalid(self, element: WindowedValue, reason: str) -> Any:
        """The output for an element that is not a valid key."""
        raise NotImplementedError

    def on_result(self, element: WindowedValue, key: str, result: FetchResult) -> Any:
        """The output for a fetched key."""
        raise NotImplementedError

    # --- DoFn ----------------------------------------------------------------------------------------
    def setup(self) -> None:
        self._store = self._source.acquire()
        self._family = family_for(self._store)
        self._metrics = FetchMetrics()

    def start_bundle(self) -> None:
        self._discard()  # a bundle that failed part-way left its window open; its elements are retried

    def process(self, element: Any, windowed=beam.DoFn.WindowedValueParam) -> Iterable[Any]:
        # ``windowed``: the element with its windows, timestamp and pane, to emit its output in them later. Unlike
        # WindowParam it does not make Beam call ``process`` once per window or rebuild its arguments per element.
        key, reason = self.key_of(element)
        metrics = self._metrics
        if key is None:
            metrics.count_invalid()
            yield self.on_invalid(windowed, reason)
            if metrics.outputs >= self._max_batch_size:
                metrics.report(self._store)
            return
        window = self._window if self._window is not None else self._open()
        waiting = self._waiting
        while len(waiting) >= self._max_batch_size or not window.has_room():
            yield self._emit(self._wait(window))
        window.offer(key)
        waiting.append((windowed, key))
        while (result := window.pop(block=False)) is not None:
            yield self._emit(result)

    def finish_bundle(self) -> Iterable[Any]:
        window = self._window
        if window is not None:
            while self._waiting:
                yield self._emit(self._wait(window))
            self._discard()
        self._metrics.report(self._store)

    def teardown(self) -> None:
        self._discard()
        self._store = None

    def _open(self) -> FetchWindow:
        # No more threads than keys the DoFn may hold at once.
        self._window = FetchWindow(self._store, max_workers=min(self._max_workers, self._max_batch_size),
                                   max_bytes_in_flight=self._max_batch_bytes)
        return self._window

    def _discard(self) -> None:
        if self._window is not None:
            self._window.close()
            self._window = None
        self._waiting.clear()

    def _wait(self, window: FetchWindow) -> FetchResult:
        start = time.perf_counter()
        result = window.pop()
        self._metrics.waited(time.perf_counter() - start)
        return result

    def _emit(self, result: FetchResult) -> Any:
        windowed, key = self._waiting.popleft()
        metrics = self._metrics
        metrics.count(result)
        if metrics.outputs >= self._max_batch_size:
            metrics.report(self._store)
        return self.on_result(windowed, key, result)

    def __getstate__(self) -> dict[str, Any]:
        # The worker's store (live clients, resolved credentials), window and buffers never leave the worker.
        state = self.__dict__.copy()
        state.update(_store=None, _metrics=None, _window=None, _waiting=deque())
        return state
