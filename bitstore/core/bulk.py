"""Inspect and ingest: ``BlobInfo`` (one answer of ``stat``) and ``PutResult`` (one answer of ``put_many``).

``stat`` asks where a blob is and how large it is without reading it (HEAD on S3/GCS, ``stat`` on disk);
``put_many`` stores many blobs or files, skipping the ones already there. Both run through the batch engine
(``bitstore.engine.batch.run_many``): threads, a bounded window, results in input order, never raising for one item.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from ..ground.errors import BitstoreError, InvalidURI, NotFoundInStore, short

#: ``bitstore.core.store.Store``, which imports this module (its bulk methods are defined here).
Store = Any

__all__ = ["BlobInfo", "PutResult", "stat_one", "stat_many", "put_many", "DEFAULT_PUT_WORKERS"]

PutStatus = Literal["stored", "skipped", "failed", "invalid"]
DEFAULT_PUT_WORKERS = 16


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """Where one key's blob is and its size: ``status`` is ``found | missing | invalid | failed`` as for
    ``FetchResult``; ``size`` in bytes and ``source`` (the tier that has it) are set when found."""

    key: Any
    status: Literal["found", "missing", "invalid", "failed"]
    size: int | None = None
    source: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "found"


@dataclass(frozen=True, slots=True)
class PutResult:
    """One item of ``put_many``: ``key`` it was stored under (derived from the bytes on a SHA1 store; None when
    it could not be known), ``status`` ``stored | skipped`` (already there) ``| failed | invalid``, ``size`` of
    the blob, ``path`` when the item was a file, ``error`` a one-line reason."""

    key: Any
    status: PutStatus
    size: int | None = None
    path: str | None = None
    error: str | None = None
    #: Internal, never set on a result ``put_many`` yields: the status of an earlier write of the same key in the
    #: same call, which this item waited for.
    _claimed: str | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.status in ("stored", "skipped")


def failure(store: Store, exc: BaseException) -> tuple[str, str]:
    """``(status, error)`` for an exception a store raised while answering one key."""
    if isinstance(exc, InvalidURI):
        return "invalid", str(exc)
    if isinstance(exc, NotFoundInStore):
        return "missing", str(exc)
    if isinstance(exc, BitstoreError):
        return "failed", str(exc)
    return "failed", f"{type(exc).__name__}: {short(str(exc), 1000)}"


def stat_one(store: Store, key: Any) -> BlobInfo:
    """``store.stat`` for a key already known to be accepted."""
    try:
        size, source = store._locate(key)
    except Exception as exc:
        status, error = failure(store, exc)
        return BlobInfo(key, status, error=error)  # type: ignore[arg-type]
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        return BlobInfo(key, "failed", error=f"{store.name} gave size {short(size, 60)}, not a byte count")
    return BlobInfo(key, "found", size, source)


def stat_many(store: Store, keys: Iterable[Any], *, max_workers: int, progress: bool | None,
              total: int | None) -> Iterator[BlobInfo]:
    from ..engine.batch import run_many

    return run_many(store, keys, lambda key: stat_one(store, key), lambda key, error: BlobInfo(key, "invalid",
                    error=error), max_workers=max_workers, progress=progress,
                    total=total)


# --- put_many ---------------------------------------------------------------------------------------
def put_many(store: Store, items: Iterable[Any], *, max_workers: int, skip_existing: bool, progress: bool | None,
             total: int | None) -> Iterator[PutResult]:
    from ..engine.batch import run_many

    claims = _Claims()
    results = run_many(store, items, lambda item: _put_item(store, item, skip_existing, claims),
                       lambda item, error: PutResult(None, "invalid", error=error), max_workers=max_workers,
                       progress=progress, total=total, keyed=False)
    return _in_input_order(store, results)


def _in_input_order(store: Store, results: Iterator[PutResult]) -> Iterator[PutResult]:
    """Whichever thread wrote a key, the first item with it in input order reports what happened to the key
    (``stored`` or ``skipped``) and every later one ``skipped``: the same answers for the same items, always."""
    reported: set = set()
    for result in results:
        canonical = _canonical(store, result.key) if result.ok else None
        if canonical is not None:
            if canonical in reported:
                result = replace(result, status="skipped", _claimed=None)
            else:
                reported.add(canonical)
                result = replace(result, status=result._claimed or result.status, _claimed=None)
        yield result


def _canonical(store: Store, key: Any) -> Any:
    try:
        canonical = store.canonical_key(key)
        hash(canonical)
    except Exception:
        return None
    return canonical


class _Claims:
    """The keys of one ``put_many`` call being written: an item whose key another item claimed first waits for
    that write and is not written again when it succeeded (written once, whatever the threads' timing)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: dict[Any, threading.Event] = {}
        self._status: dict[Any, str] = {}

    def claim(self, key: Any) -> threading.Event | None:
        """None when this item is the first with ``key`` (it must call ``done``), else the first one's event."""
        with self._lock:
            event = self._events.get(key)
            if event is None:
                self._events[key] = threading.Event()
            return event

    def status(self, key: Any) -> str | None:
        """``stored`` or ``skipped`` when the claim's write succeeded, else None."""
        return self._status.get(key)

    def done(self, key: Any, status: str | None) -> None:
        with self._lock:
            if status is not None:
                self._status[key] = status
            self._events[key].set()


def _put_item(store: Store, item: Any, skip_existing: bool, claims: _Claims) -> PutResult:
    path = None
    if isinstance(item, (str, os.PathLike)):
        path = os.fspath(item)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as exc:
            status = "invalid" if isinstance(exc, (FileNotFoundError, IsADirectoryError)) else "failed"
            return PutResult(None, status, path=path,
                             error=f"cannot read {path}: {exc.strerror or type(exc).__name__}")
        key = store.key_for(data)
        if key is None:
            return PutResult(None, "invalid", path=path, error=f"{store.name} does not derive keys from content: "
                                                               "pass (key, bytes) pairs")
    elif isinstance(item, tuple) and len(item) == 2:
        key, data = item
        if not isinstance(data, (bytes, bytearray, memoryview)):
            return PutResult(key, "invalid", error=f"data must be bytes, not {type(data).__name__}")
        if not store.accepts(key):
            return PutResult(key, "invalid", len(data), error=str(InvalidURI(store, key, hint=store.URI_HINT)))
        derived = store.key_for(data)
        if derived is not None and derived != store.canonical_key(key):
            return PutResult(key, "invalid", len(data),
                             error=f"the data's key is {derived}, not {short(key, 80)}")
    else:
        return PutResult(None, "invalid", error=f"an item must be a (key, bytes) pair or a path, not "
                                                f"{type(item).__name__}")
    canonical = _canonical(store, key)
    first = claims.claim(canonical) if canonical is not None else None
    if first is not None:
        first.wait()
        claimed = claims.status(canonical)
        if claimed is not None:
            return PutResult(key, "skipped", len(data), path, _claimed=claimed)
    status = None
    try:
        result = _store_one(store, key, data, path, skip_existing)
        status = result.status if result.ok else None
    finally:
        if canonical is not None and first is None:
            claims.done(canonical, status)
    return result


def _store_one(store: Store, key: Any, data: Any, path: str | None, skip_existing: bool) -> PutResult:
    size = len(data)
    if skip_existing:
        try:
            if store._exists_for_put(key):
                return PutResult(key, "skipped", size, path)
        except Exception:  # a check that fails (denied HEAD, flaky tier) must not stop the write: the put decides
            pass
    try:
        stored = store.put(key, bytes(data))
    except Exception as exc:
        status, error = failure(store, exc)
        return PutResult(key, "invalid" if status == "invalid" else "failed", size, path, error)
    if stored is False:
        return PutResult(key, "failed", size, path, f"{store.name} refused the blob (see the warning logged)")
    return PutResult(key, "stored", size, path)
