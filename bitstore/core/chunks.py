"""Per-key work over stores whose reads are local (a file, a dict): small blobs on the caller's thread, large ones
on a few threads, keys in chunks.

``scrub`` and ``replicate`` hand each key to a thread of the batch engine when a store waits on a service, so
many requests wait at once. A local store does not wait: its reads and hashes are CPU and syscalls. On a small blob
each syscall is shorter than a hand-off of the GIL between threads, so threads take turns rather than run side by
side, and one thread copies faster than two. A large blob is mostly hashing and copying, which release the GIL:
there two threads use two cores. So the keys are worked ``CHUNK`` at a time on the caller's thread while the blobs
average under ``SMALL_BLOB`` bytes, and go to ``local_workers`` threads from the first chunk that averages more.
Results come back one per key, in order.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ..ground.errors import short

__all__ = ["reads_locally", "run_chunked", "local_workers", "CHUNK", "LOCAL_WORKERS", "SMALL_BLOB"]

#: Keys per hand-off to a thread (and per look at the blobs' sizes).
CHUNK = 64
#: Blobs averaging fewer bytes than this are worked on the caller's thread (see the module docstring).
SMALL_BLOB = 64 * 1024
#: Threads at most (fewer with fewer CPUs, never more than the caller's ``max_workers``).
LOCAL_WORKERS = 4


def reads_locally(*stores: Any) -> bool:
    """Whether every store says its reads are local (``Store.reads_on_loop()``: a syscall or a dict lookup away)."""
    for store in stores:
        local = getattr(store, "reads_on_loop", None)
        if not (callable(local) and local()):
            return False
    return True


def local_workers(max_workers: int) -> int:
    """Threads for local work: one per CPU, at least two (one hashes while another waits on the disk), at most
    ``LOCAL_WORKERS`` and ``max_workers``. More threads than CPUs measured slower on a folder in memory (tmpfs:
    the threads take turns at the GIL) and no faster on a disk."""
    return max(1, min(max_workers, LOCAL_WORKERS, max(2, os.cpu_count() or 2)))


@dataclass(frozen=True, slots=True)
class _Chunk:
    key: tuple  # the chunk's items (the engine's name for what a result answers)
    results: list
    status: str = "ok"


def run_chunked(store: Any, items: Iterable[Any], call: Callable[[Any], Any], failed: Callable[[Any, str], Any], *,
                max_workers: int, chunk: int | None = None) -> Iterator[list[Any]]:
    """``call(item)`` for every item, ``chunk`` (``CHUNK``) items at a time; yields each chunk's results (one per
    item, in order). A result's ``size`` (bytes, None when unknown) says how large its blob was: chunks are worked
    on the caller's thread while their blobs average under ``SMALL_BLOB`` bytes, and on ``local_workers(max_workers)``
    threads from the first that averages more. An exception from ``call`` is that item's ``failed(item, error)``
    (on a worker thread a ``BaseException`` too; on the caller's, a ``KeyboardInterrupt`` stops the run); an error of
    ``items`` itself is raised after the results of the items read before it."""
    chunks = _chunks(items, chunk or CHUNK)
    for group in chunks:
        results = _work(group, call, failed, Exception)
        yield results
        if sum(getattr(result, "size", None) or 0 for result in results) >= SMALL_BLOB * len(results):
            break
    else:
        return
    from ..engine.batch import run_many

    def work(items: tuple) -> _Chunk:
        return _Chunk(items, _work(items, call, failed, BaseException))

    def broken(items: tuple, error: str) -> _Chunk:
        return _Chunk(items, [failed(item, error) for item in items], "failed")

    for done in run_many(store, chunks, work, broken, max_workers=local_workers(max_workers), progress=False,
                         keyed=False):
        yield done.results


def _work(items: tuple, call: Callable[[Any], Any], failed: Callable[[Any, str], Any],
          catch: type[BaseException]) -> list[Any]:
    out = []
    for item in items:
        try:
            out.append(call(item))
        except catch as exc:  # noqa: BLE001 - that item's result, as the engine answers a key
            out.append(failed(item, f"{type(exc).__name__}: {short(str(exc), 1000)}"))
    return out


def _chunks(items: Iterable[Any], size: int) -> Iterator[tuple]:
    """``items`` in tuples of ``size`` (the last may be shorter); an error of ``items`` is raised after the tuple of
    the items read before it."""
    it = iter(items)
    while True:
        chunk: list[Any] = []
        try:
            for item in it:
                chunk.append(item)
                if len(chunk) == size:
                    break
        except Exception as exc:
            if chunk:
                yield tuple(chunk)
            raise exc
        if not chunk:
            return
        yield tuple(chunk)
        if len(chunk) < size:
            return
