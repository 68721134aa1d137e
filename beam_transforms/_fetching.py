"""The engine behind the Beam transforms: check keys, buffer them, fetch each batch with ``get_many``, count.

``BatchFetchDoFn`` buffers valid keys (with their window, timestamp and pane) up to ``max_batch_size``,
fetches the batch concurrently through ``Store.get_many`` (so ``max_batch_bytes`` bounds the bytes
fetched but not yet emitted) and emits each result in its own window. ``finish_bundle`` flushes what
is left, so every write-back to a cache tier (done by the composite inside the fetch) has completed
before the bundle commits. Subclasses decide what a key is and what each outcome becomes.
"""
from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.utils.windowed_value import WindowedValue

from bitstore import FetchResult, Sha1Composite, Store
from bitstore.errors import short

from ._store import StoreSource

__all__ = [
    "BatchFetchDoFn", "FetchMetrics", "canonical_sha1", "field_of", "NAMESPACE",
    "DEFAULT_MAX_BATCH_SIZE", "DEFAULT_MAX_WORKERS", "DEFAULT_MAX_BATCH_BYTES",
]

NAMESPACE = "bitstore"
DEFAULT_MAX_BATCH_SIZE = 1024
DEFAULT_MAX_WORKERS = 64
DEFAULT_MAX_BATCH_BYTES = 64 * 1024 * 1024

_SHA1_KEY = Sha1Composite.SHA1_URI_REGEX


def canonical_sha1(element: Any) -> tuple[str | None, str | None]:
    """``(lowercase sha1, None)`` for ``<sha1>`` or ``sha1://<sha1>`` in any case (surrounding whitespace
    ignored), else ``(None, reason)``."""
    if not isinstance(element, str):
        return None, f"not a SHA1: expected a str, got {type(element).__name__}"
    match = _SHA1_KEY.fullmatch(element.strip())  # surrounding whitespace ignored, as by Sha1Composite
    if match is None:
        return None, f"not a SHA1: {short(element, 80)!r} (expected 40 hex digits, optionally after sha1://)"
    return match.group(1).lower(), None


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
    """Beam metrics under the ``bitstore`` namespace; created on the worker."""

    def __init__(self):
        self.found = Metrics.counter(NAMESPACE, "found")
        self.missing = Metrics.counter(NAMESPACE, "missing")
        self.invalid = Metrics.counter(NAMESPACE, "invalid")
        self.failed = Metrics.counter(NAMESPACE, "failed")
        self.bytes = Metrics.counter(NAMESPACE, "bytes")
        self.cache_writes = Metrics.counter(NAMESPACE, "cache_writes")
        self.cache_write_failures = Metrics.counter(NAMESPACE, "cache_write_failures")
        self.fetch_ms = Metrics.distribution(NAMESPACE, "fetch_ms")
        self._hits: dict[str, Any] = {}
        self._tier_metrics: dict[str, Any] = {}

    def record(self, result: FetchResult) -> None:
        getattr(self, result.status).inc()
        if result.status == "found":
            self.bytes.inc(len(result.data))
            if result.source:
                hits = self._hits.get(result.source)
                if hits is None:
                    hits = self._hits[result.source] = Metrics.counter(NAMESPACE, f"hits.{result.source}")
                hits.inc()
        if result.cached is True:
            self.cache_writes.inc()
        elif result.cached is False:
            self.cache_write_failures.inc()

    def fetch_batch(self, store: Store, keys: list[Any], *, max_workers: int,
                    max_batch_bytes: int) -> Iterator[FetchResult]:
        """``store.get_many(keys)``, recording each result and the time spent waiting for the batch."""
        results = store.get_many(keys, max_workers=max(1, min(max_workers, len(keys))),
                                 max_bytes_in_flight=max_batch_bytes, progress=False)
        waited = 0.0
        for _ in keys:
            start = time.perf_counter()
            result = next(results)
            waited += time.perf_counter() - start
            self.record(result)
            yield result
        self.fetch_ms.update(round(waited * 1000))
        self.record_tiers(store)

    def record_tiers(self, store: Store) -> None:
        """Per-tier counters of a composite (``calls.<tier>``, ``misses.<tier>``, ``failures.<tier>``,
        ``throttled.<tier>``, ``bytes.<tier>``, ``wait_ms.<tier>``) and a ``latency_ms.<tier>`` distribution of
        the batch's median call: the increments since the last report of this worker's shared store."""
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
    """Buffers keys, fetches them in batches and emits one output per element (see the module doc)."""

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
        self._metrics: FetchMetrics | None = None
        self._pending: list[tuple[WindowedValue, Any]] = []

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
        self._metrics = FetchMetrics()

    def start_bundle(self) -> None:
        self._pending = []

    def process(self, element: Any, timestamp=beam.DoFn.TimestampParam, window=beam.DoFn.WindowParam,
                pane_info=beam.DoFn.PaneInfoParam) -> Iterable[Any]:
        windowed = WindowedValue(element, timestamp, (window,), pane_info)
        key, reason = self.key_of(element)
        if key is None:
            self._metrics.invalid.inc()
            yield self.on_invalid(windowed, reason)
            return
        self._pending.append((windowed, key))
        if len(self._pending) >= self._max_batch_size:
            yield from self._flush()

    def finish_bundle(self) -> Iterable[Any]:
        yield from self._flush()

    def teardown(self) -> None:
        self._store = None

    def _flush(self) -> Iterator[Any]:
        pending, self._pending = self._pending, []
        if not pending:
            return
        results = self._metrics.fetch_batch(self._store, [key for _, key in pending],
                                            max_workers=self._max_workers, max_batch_bytes=self._max_batch_bytes)
        for (windowed, key), result in zip(pending, results, strict=True):
            yield self.on_result(windowed, key, result)

    def __getstate__(self) -> dict[str, Any]:
        # The worker's store (live clients, resolved credentials) and buffers never leave the worker.
        state = self.__dict__.copy()
        state.update(_store=None, _metrics=None, _pending=[])
        return state
