"""``bitstore demo``: a tiered store in a temporary folder, fetched twice, no network needed.

Tiers: a local "archive" source holding some blobs, a local cache, and a simulated slow paid API
holding the rest, limited to ``API_MAX_CONCURRENCY`` calls at once. The first pass is served by the
archive and the API (whose hits are written back to the cache); the second pass by the archive and the
cache, and the keys no tier has are answered from the negative cache (``missing_ttl``): no API call.
"""
from __future__ import annotations

import os
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable

from ..backends.local import LocalRaw
from ..core.sha1 import Sha1APISource, Sha1Cache, Sha1Composite, Sha1Store, sha1_hex

__all__ = ["SimulatedPaidAPI", "build_demo_store", "run_demo", "API_MAX_CONCURRENCY"]

API_MAX_CONCURRENCY = 4
MISSING_TTL = 300.0


class SimulatedPaidAPI(Sha1APISource):
    """An API source that answers from a dict after ``delay`` seconds and counts its (billable) calls and the
    most calls it saw at once (``peak``)."""

    def __init__(self, blobs: dict[str, bytes], delay: float = 0.02, *, name: str = "paid-api"):
        super().__init__(verify=False, name=name)
        self.blobs = dict(blobs)
        self.delay = delay
        self.calls = self.peak = self._now = 0
        self._lock = threading.Lock()

    def api_get(self, sha1: str) -> bytes | None:
        with self._lock:
            self.calls += 1
            self._now += 1
            self.peak = max(self.peak, self._now)
        try:
            time.sleep(self.delay)
            return self.blobs.get(sha1)
        finally:
            with self._lock:
                self._now -= 1

    def __getstate__(self):
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()


def sample_blobs(n: int, size: int = 4096) -> dict[str, bytes]:
    """``n`` deterministic pseudo-random blobs keyed by their SHA1."""
    blobs = {}
    for i in range(n):
        data = (f"bitstore demo blob {i}\n".encode() * (size // 20 + 1))[:size] + i.to_bytes(4, "big")
        blobs[sha1_hex(data)] = data
    return blobs


def build_demo_store(folder: str, n_archive: int = 60, n_api: int = 60,
                     api_delay: float = 0.02) -> tuple[Sha1Composite, SimulatedPaidAPI, list[str]]:
    """Create the demo tiers under ``folder``; returns the store, the API, and the keys to fetch."""
    archive_blobs = sample_blobs(n_archive + n_api)
    keys = list(archive_blobs)
    archive = LocalRaw(root=folder)
    for sha1 in keys[:n_archive]:
        archive.put(f"archive/{sha1}", archive_blobs[sha1])
    api = SimulatedPaidAPI({k: archive_blobs[k] for k in keys[n_archive:]}, delay=api_delay)
    store = Sha1Composite(name="demo", missing_ttl=MISSING_TTL)
    store.append_source(Sha1Store(archive, "archive/", name="archive"))
    store.append_cache(Sha1Cache(LocalRaw(root=folder), "cache/", name="cache"))
    store.append_source(api, max_concurrency=API_MAX_CONCURRENCY)  # cache_result defaults to True for API sources
    missing = [sha1_hex(f"never stored {i}".encode()) for i in range(3)]
    return store, api, keys + missing


def run_demo(out: Callable[[str], object] = print, folder: str | None = None, progress: bool | None = None) -> int:
    """Run the demo, printing what each tier served on each pass. Returns a process exit code."""
    with tempfile.TemporaryDirectory(prefix="bitstore-demo-") as tmp:
        root = folder or tmp
        store, api, keys = build_demo_store(root)
        out(f"demo store in {root}: {store!r}")
        out(f"fetching {len(keys)} keys twice ({len(keys) - 3} exist; the API answers in {api.delay * 1000:.0f} ms)")
        passes = []
        for n in (1, 2):
            calls_before = api.calls
            start = time.perf_counter()
            results = list(store.get_many(keys, max_workers=16, progress=progress))
            elapsed = time.perf_counter() - start
            served = Counter(r.source or r.status for r in results)
            passes.append(served)
            summary = ", ".join(f"{tier}: {count}" for tier, count in sorted(served.items()))
            out(f"pass {n}: {elapsed:.2f}s, {api.calls - calls_before} API calls -> {summary}")
        cached = len(os.listdir(os.path.join(root, "cache")))
        out(f"cache tier now holds {cached} blobs; write-backs: {store.cache_writes}, failures: "
            f"{store.cache_write_failures}")
        out(f"limiter: 16 threads, at most {api.peak} API calls at once (max_concurrency={API_MAX_CONCURRENCY})")
        out(f"negative cache: the {passes[1].get('missing', 0)} keys no tier has were answered from memory on "
            f"pass 2 (missing_ttl={MISSING_TTL:g}s)")
        out("per-tier statistics (composite.stats()):")
        for line in store.stats().lines():
            out(f"  {line}")
        ok = passes[1].get("paid-api", 0) == 0 and passes[1].get("cache", 0) == passes[0].get("paid-api", 0)
        ok = ok and api.peak <= API_MAX_CONCURRENCY
        out("second pass served from the cache: " + ("yes" if ok else "NO"))
        return 0 if ok else 1
