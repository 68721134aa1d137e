"""``scrub``: every blob a store lists, re-hashed as it streams, and the corrupt ones reported (or removed).

Concurrent through the batch engine (``run_many``; a store whose reads are local: keys in chunks, small blobs on the
caller's thread, large ones on a few threads, ``chunks``), one ``ScrubResult`` per listed key in ascending order, so
the last key yielded is where a later run resumes (``start_after``). A blob is read with ``open`` in chunks: one
larger than memory is checked without being held whole. The hash is the store's own (``listing.hasher_for``).
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..ground.errors import InvalidDataFound, NotFoundInStore
from .bulk import failure
from .chunks import reads_locally, run_chunked
from .listing import can_delete, hasher_for

__all__ = ["scrub", "ScrubResult", "SCRUB_STATUSES"]

#: ``ok``: the bytes match the key; ``corrupt``: they do not; ``failed``: they could not be read.
SCRUB_STATUSES = ("ok", "corrupt", "failed")
_READ = 1024 * 1024  # per read of a blob: small blobs need one, a large one is hashed a MiB at a time


@dataclass(frozen=True, slots=True)
class ScrubResult:
    """One listed blob: ``status`` one of ``SCRUB_STATUSES``, its ``size`` in bytes as read, ``error`` a reason."""

    key: str
    status: str
    size: int | None = None
    error: str | None = None


def scrub(store: Any, *, start_after: str | None = None, max_workers: int = 16, delete_corrupt: bool = False,
          progress: bool | None = None) -> Iterator[ScrubResult]:
    """Re-hash every blob ``store`` lists after ``start_after``; with ``delete_corrupt``, remove corrupt copies.

    A store (or a composite's tier) that cannot list raises ``NotImplementedError`` at once; a listing that fails
    midway raises (``StoreNotAvailable``, ``FetchFailed``) after the results of the keys listed before it."""
    from ..engine.batch import run_many

    if delete_corrupt and not can_delete(store):
        raise ValueError(f"{store.name} cannot delete blobs: scrub it without delete_corrupt")
    new_hash = hasher_for(store)
    keys = store.iter_keys(start_after=start_after)

    def check(key: str) -> ScrubResult:
        digest, size = new_hash(), 0
        try:
            with store.open(key) as f:
                while chunk := f.read(_READ):
                    digest.update(chunk)
                    size += len(chunk)
        except InvalidDataFound as exc:  # a store that verifies as it reads found it corrupt
            return _corrupt(store, key, None, str(exc), delete_corrupt)
        except NotFoundInStore:
            return ScrubResult(key, "failed", error="listed, then not found (removed meanwhile?)")
        except Exception as exc:  # noqa: BLE001 - one key's failure is its result
            return ScrubResult(key, "failed", error=failure(store, exc)[1])
        actual = digest.hexdigest()
        if actual != key:
            return _corrupt(store, key, size, f"the bytes hash to {actual}", delete_corrupt)
        return ScrubResult(key, "ok", size)

    def failed(key: str, error: str) -> ScrubResult:
        return ScrubResult(key, "failed", error=error)

    if reads_locally(store):  # keys in chunks: a hand-off per key would cost more than its check
        return _chunked(store, keys, check, failed, max_workers, progress)
    return run_many(store, keys, check, failed, max_workers=max_workers, progress=progress, keyed=False)


def _chunked(store: Any, keys: Iterator[str], check: Any, failed: Any, max_workers: int,
             progress: bool | None) -> Iterator[ScrubResult]:
    from ..engine.batch import _progress_bar, want_progress

    bar = _progress_bar(None, want_progress(progress), "blob")
    try:
        for results in run_chunked(store, keys, check, failed, max_workers=max_workers):
            if bar is not None:
                bar.update(len(results))
            yield from results
    finally:
        if bar is not None:
            bar.close()


def _corrupt(store: Any, key: str, size: int | None, why: str, delete: bool) -> ScrubResult:
    if not delete:
        return ScrubResult(key, "corrupt", size, why)
    try:
        store.delete(key)
    except Exception as exc:  # noqa: BLE001 - reported with the corruption
        return ScrubResult(key, "corrupt", size, f"{why}; not removed: {failure(store, exc)[1]}")
    return ScrubResult(key, "corrupt", size, f"{why}; removed")
