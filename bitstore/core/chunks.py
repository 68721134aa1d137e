"""Per-key work over stores whose reads are local (a file, a dict): keys handed to a few threads in chunks.

``scrub`` and ``replicate`` hand each key to a thread of the batch engine when a store waits on a service, so
many requests wait at once. A local store does not wait: its reads and hashes are CPU and syscalls, and a hand-off
per key (a lock, a condition, a thread woken) cost more than the work itself on a small blob, with sixteen threads
taking turns at the GIL. Here the keys go to ``LOCAL_WORKERS`` threads ``CHUNK`` at a time (hashlib and file I/O
release the GIL, so two threads use two cores); results come back one per key, in order, as before.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["reads_locally", "run_chunked", "local_workers", "CHUNK", "LOCAL_WORKERS"]

#: Keys per hand-off to a thread.
CHUNK = 64
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
    """``call(item)`` for every item on ``local_workers(max_workers)`` threads, ``chunk`` (``CHUNK``) items per
    hand-off; yields each chunk's results (one per item, in order). An exception from ``call`` (``BaseException``
    included) is that item's ``failed(item, error)``; an error of ``items`` itself is raised after the results of
    the items read before it."""
    from ..engine.batch import run_many
    from ..ground.errors import short

    def work(items: tuple) -> _Chunk:
        out = []
        for item in items:
            try:
                out.append(call(item))
            except BaseException as exc:  # noqa: BLE001 - that item's result, as the engine answers a key
                out.append(failed(item, f"{type(exc).__name__}: {short(str(exc), 1000)}"))
        return _Chunk(items, out)

    def broken(items: tuple, error: str) -> _Chunk:
        return _Chunk(items, [failed(item, error) for item in items], "failed")

    for done in run_many(store, _chunks(items, chunk or CHUNK), work, broken, max_workers=local_workers(max_workers),
                         progress=False, keyed=False):
        yield done.results


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
