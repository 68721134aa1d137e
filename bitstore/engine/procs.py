"""``get_many(processes=N)``: the keys spread over N spawned worker processes, results in input order.

This process reads the keys lazily, answers invalid ones itself, and sends the others in chunks of unique keys
to the workers, each of which runs ``get_many`` on its own copy of the store (pickled once, when the pool
starts; clients are rebuilt there). A key whose canonical form equals one read and not yet yielded shares its
fetch, as in one process. At most ``2 * N`` chunks' worth of keys are read ahead; each worker bounds its own
bytes in flight by ``max_bytes_in_flight / N``, and chunks and the read-ahead shrink to that many bytes (per
chunk) and ``2 * max_bytes_in_flight`` (in all) at the mean blob size seen so far. Results come back as ``bytes``
(``views`` do not cross processes). The pool is kept for the next call with the same store and N.
"""
from __future__ import annotations

import atexit
import os
import pickle
import threading
from collections import deque
from collections.abc import Hashable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from ..ground.errors import InvalidURI
from ..ground.results import FetchResult
from .answers import canonical_of
from .routes import Fetchable

__all__ = ["run_in_processes"]

#: Keys per chunk sent to a worker, per request it keeps in flight (a chunk keeps it busy for a few rounds).
CHUNK_PER_WORKER = 4
MAX_CHUNK = 4096

_worker_store: Any = None


def _init_worker(payload: bytes) -> None:
    global _worker_store
    _worker_store = pickle.loads(payload)


def _fetch_chunk(keys: list, max_workers: int, budget: int, engine: str) -> list[FetchResult]:
    return list(_worker_store.get_many(keys, max_workers=max_workers, max_bytes_in_flight=budget, progress=False,
                                       engine=engine))


class _Pool:
    """The one process pool kept between calls (its store and size), rebuilt for another store or size."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple[bytes, int] | None = None
        self._executor: ProcessPoolExecutor | None = None

    def get(self, store: Fetchable, processes: int) -> ProcessPoolExecutor:
        import multiprocessing

        payload = pickle.dumps(store)
        with self._lock:
            if self._executor is None or self._key != (payload, processes):
                if self._executor is not None:
                    self._executor.shutdown(wait=False, cancel_futures=True)
                self._executor = ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"),
                                                     initializer=_init_worker, initargs=(payload,))
                self._key = (payload, processes)
            return self._executor

    def shutdown(self) -> None:
        with self._lock:
            if self._executor is not None:
                self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor, self._key = None, None

    def _after_fork(self) -> None:  # the parent's worker processes are not this child's
        self._lock = threading.Lock()
        self._executor, self._key = None, None


_pool = _Pool()
atexit.register(_pool.shutdown)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_pool._after_fork)


class _Ref:
    """Where one key's answer will be: a chunk's future and the index in it, shared by duplicates."""

    __slots__ = ("future", "index", "canonical", "refs")

    def __init__(self, future: Future | None, index: int, canonical: Hashable | None):
        self.future, self.index, self.canonical, self.refs = future, index, canonical, 1


def run_in_processes(store: Fetchable, keys: Iterator[Any], processes: int, max_workers: int, budget: int, bar,
                     engine: str) -> Iterator[FetchResult]:

    executor = _pool.get(store, processes)
    chunk_size = min(MAX_CHUNK, max_workers * CHUNK_PER_WORKER)
    window_cap = 2 * processes * chunk_size
    per_worker = max(1, budget // processes)
    window: deque[tuple[Any, _Ref | FetchResult]] = deque()
    by_canonical: dict[Hashable, _Ref] = {}
    chunk: list = []
    chunk_refs: list[_Ref] = []
    seen = [0, 0]  # bytes and blobs received so far: the mean blob size bounds chunks and the window in bytes

    def send() -> None:
        nonlocal chunk, chunk_refs
        future = executor.submit(_fetch_chunk, chunk, max_workers, per_worker, engine)
        for ref in chunk_refs:
            ref.future = future
        chunk, chunk_refs = [], []

    def too_many_bytes(n_keys: int, limit: int) -> bool:
        return seen[1] > 0 and n_keys * seen[0] / seen[1] >= limit

    exhausted = False
    try:
        while True:
            while not exhausted and len(window) < window_cap and not too_many_bytes(len(window), 2 * budget):
                try:
                    key = next(keys)
                except StopIteration:
                    exhausted = True
                    break
                if not store.accepts(key):
                    error = str(InvalidURI(store, key, hint=getattr(store, "URI_HINT", None)))
                    window.append((key, FetchResult(key, None, "invalid", error=error)))
                    continue
                canonical = canonical_of(store, key)
                ref = by_canonical.get(canonical) if canonical is not None else None
                if ref is not None:
                    ref.refs += 1
                else:
                    ref = _Ref(None, len(chunk), canonical)
                    chunk.append(key)
                    chunk_refs.append(ref)
                    if canonical is not None:
                        by_canonical[canonical] = ref
                window.append((key, ref))
                if len(chunk) >= chunk_size or too_many_bytes(len(chunk), per_worker):
                    send()
            if not window:
                return
            key, ref = window.popleft()
            if isinstance(ref, _Ref):
                if ref.future is None:  # its chunk is the one being filled: send it as it is
                    send()
                result = _result_of(ref, key)
                ref.refs -= 1
                if ref.refs == 0 and ref.canonical is not None and by_canonical.get(ref.canonical) is ref:
                    del by_canonical[ref.canonical]
                if result.data is not None:
                    seen[0] += len(result.data)
                    seen[1] += 1
                if result.key is not key:
                    result = FetchResult(key, result.data, result.status, result.source, result.error,
                                         result.cached)
            else:
                result = ref
            if bar is not None:
                bar.update(1)
            yield result
    finally:
        for _, ref in window:
            if isinstance(ref, _Ref) and ref.future is not None:
                ref.future.cancel()
        if bar is not None:
            bar.close()


def _result_of(ref: _Ref, key: Any) -> FetchResult:

    try:
        return ref.future.result()[ref.index]
    except Exception as exc:  # a worker died or the store did not unpickle: this key failed, the run goes on
        return FetchResult(key, None, "failed", error=f"worker process failed: {type(exc).__name__}: {exc}")
