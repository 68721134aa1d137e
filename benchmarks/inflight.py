"""The in-flight cases: many requests in flight, and more than one process.

- ``in flight``: 16 KiB blobs, each request delayed (100 ms: a cross-region read), N requests in flight for N in
  64, 256, 1,024, 2,048: ``get_many(max_workers=N)`` (engine ``auto``), the same forced onto threads, and
  obstore's async API with N in flight. The client's ceiling is N / latency.
- ``in flight`` also has a user's composite (``composite_store``): an empty local SHA1 cache read first, then S3,
  on each engine (``threads`` / ``async``); every key misses the cache and is found in S3, not written back, so
  every round is the same cold-key case.
- ``processes``: 16 KiB blobs at 0 ms (the client's CPU is the limit): ``get_many`` in one process and with
  ``processes=2``, and obstore's async API. Client CPU counts the worker processes too.
"""
from __future__ import annotations

from typing import Any

from .measure import Contender, Fetcher
from .remote import Target, _count, bitstore_store, obstore_async

__all__ = ["in_flight_contenders", "process_contenders", "IN_FLIGHT", "IN_FLIGHT_DELAY_MS", "blobs_for"]

IN_FLIGHT = (64, 256, 1024, 2048)
IN_FLIGHT_DELAY_MS = 100.0
PROCESSES_WORKERS = 64


def blobs_for(in_flight: int, n: int) -> int:
    """Keys per run: enough for many rounds of requests at this concurrency (at least ``n``)."""
    return max(n, 8 * in_flight)


def _get_many(**options: Any):
    def build(t: Target) -> Fetcher:
        store = bitstore_store(t)
        return lambda keys: _count(store.get_many(keys, progress=False, **options))

    return build


class _WithWorkers:
    """A fetcher that adds its worker processes' CPU time to ``cpu_s`` (``measure`` counts this process only)."""

    def __init__(self, fetch: Fetcher):
        self.fetch = fetch
        self.worker_cpu_s = 0.0

    def __call__(self, keys) -> tuple[int, int]:
        before = _workers_cpu()
        try:
            return self.fetch(keys)
        finally:
            self.worker_cpu_s = _workers_cpu() - before


def _workers_cpu() -> float:
    import psutil

    from bitstore.engine import procs as _procs

    executor = _procs._pool._executor
    total = 0.0
    for process in list(getattr(executor, "_processes", {}).values()) if executor else []:
        try:
            times = psutil.Process(process.pid).cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def composite_store(t: Target):
    """A ``Sha1Composite``: an empty local ``Sha1Cache`` (read first, in a temporary folder), then the S3 store of
    ``bitstore_store``, whose hits are not written back (every round misses the cache the same way)."""
    import tempfile

    from bitstore import LocalRaw, Sha1Cache, Sha1Composite

    folder = tempfile.mkdtemp(prefix="bench-composite-")
    composite = Sha1Composite(name="composite")
    composite.append_cache(Sha1Cache(LocalRaw(folder), ""))
    composite.append_source(bitstore_store(t), cache_result=False)
    return composite


def _composite_get_many(**options: Any):
    def build(t: Target) -> Fetcher:
        store = composite_store(t)
        return lambda keys: _count(store.get_many(keys, progress=False, **options))

    return build


def in_flight_contenders(n: int) -> list[Contender]:
    """``get_many`` as a user gets it (``engine="auto"``: threads for a single store), the event loop, obstore, and
    a composite on each engine."""
    other = "async"
    return [
        Contender(f"bitstore get_many, {n} in flight", _get_many(max_workers=n), warmup=n, reference=True),
        Contender(f"bitstore get_many [{other}], {n} in flight", _get_many(max_workers=n, engine=other), warmup=n),
        Contender(f"obstore async, {n} in flight", obstore_async(n), warmup=n),
        Contender(f"composite get_many [threads], {n} in flight", _composite_get_many(max_workers=n, engine="threads"),
                  warmup=n),
        Contender(f"composite get_many [async], {n} in flight", _composite_get_many(max_workers=n, engine="async"),
                  warmup=n),
    ]


def process_contenders() -> list[Contender]:
    def spread(t: Target) -> Fetcher:
        return _WithWorkers(_get_many(max_workers=PROCESSES_WORKERS, processes=2)(t))

    return [
        Contender(f"bitstore get_many, 1 process, {PROCESSES_WORKERS} in flight",
                  _get_many(max_workers=PROCESSES_WORKERS), reference=True),
        Contender(f"bitstore get_many, 2 processes, {PROCESSES_WORKERS} in flight each", spread, warmup=512),
        Contender(f"obstore async, {PROCESSES_WORKERS} in flight", obstore_async(PROCESSES_WORKERS)),
    ]
