"""``replicate``: copy every key one store lists that another lacks, each blob checked against its key first.

The two listings are read side by side (both ascending) so only the difference is copied, without a request per
key already there; a destination that cannot list is asked per key (``head``). A blob is fetched, hashed with the
store's own hash and written only when it matches its key: a corrupt source copy is reported, never copied. Bytes
in flight are bounded by ``max_bytes_in_flight``: a blob larger than that streams through a temp file (``open``,
then the destination's ``put_stream``), never held whole. Writes are atomic, so a run that was killed is resumed by
running it again: it copies only what is still missing. Between stores whose reads are local, the keys are worked in
chunks (``chunks``: small blobs on the caller's thread, large ones on a few threads) and each blob is opened once,
its size read from the open file. From a source that waits on a service into one whose writes are local, the
blobs come from the source's ``get_many`` and are written on the caller's thread (``_fetched``).
"""
from __future__ import annotations

import itertools
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..ground.errors import InvalidDataFound, NotFoundInStore
from .bulk import failure
from .chunks import reads_locally, run_chunked
from .listed import Listed
from .listing import hasher_for, listed, read_ahead
from .store import DEFAULT_MAX_BYTES_IN_FLIGHT

__all__ = ["replicate", "ReplicateReport", "MAX_PROBLEMS"]

#: Corrupt and failed keys kept in a report (with their reasons); the counts go on past it.
MAX_PROBLEMS = 1000
_CHUNK = 8 * 1024 * 1024


@dataclass
class ReplicateReport:
    """What ``replicate`` did: keys ``copied``, ``skipped`` (already in the destination), ``corrupt`` (the source
    copy does not match its key: not copied), ``failed``; ``bytes`` copied; ``last_key``, the last source key
    dealt with (a later run may start after it); ``problems``, the first ``MAX_PROBLEMS`` ``(key, status, error)``."""

    copied: int = 0
    skipped: int = 0
    corrupt: int = 0
    failed: int = 0
    bytes: int = 0
    last_key: str | None = None
    problems: list[tuple[str, str, str]] = field(default_factory=list, repr=False)

    def _add(self, outcome: _Copy) -> None:
        if outcome.status == "copied":
            self.copied += 1
            self.bytes += outcome.size or 0
        elif outcome.status == "skipped":
            self.skipped += 1
        else:
            setattr(self, outcome.status, getattr(self, outcome.status) + 1)
            if len(self.problems) < MAX_PROBLEMS:
                self.problems.append((outcome.key, outcome.status, outcome.error or ""))


@dataclass(frozen=True, slots=True)
class _Copy:
    key: str
    status: str  # copied | skipped | corrupt | failed
    size: int | None = None
    error: str | None = None


class _Budget:
    """Bytes held by copies in flight: ``take(n)`` waits until ``n`` more fit (one blob always fits alone)."""

    def __init__(self, limit: int):
        self.limit, self.used = limit, 0
        self._cond = threading.Condition()

    def take(self, n: int) -> None:
        with self._cond:
            while self.used and self.used + n > self.limit:
                self._cond.wait()
            self.used += n

    def give(self, n: int) -> None:
        with self._cond:
            self.used -= n
            self._cond.notify_all()


def replicate(src: Any, dst: Any, *, start_after: str | None = None, max_workers: int = 64,
              max_bytes_in_flight: int = DEFAULT_MAX_BYTES_IN_FLIGHT, progress: bool | None = None) -> ReplicateReport:
    """Copy to ``dst`` every key ``src`` lists after ``start_after`` that ``dst`` lacks (see the module docstring).

    ``src`` must list (``NotImplementedError`` naming it otherwise); a listing that fails midway raises after the
    copies already started have finished (rerun: only what is missing is copied)."""
    from ..engine.batch import _check_limits, _progress_bar, run_many, want_progress

    _check_limits(max_workers, max_bytes_in_flight)
    new_hash = hasher_for(src)
    if hasher_for(dst)().name != new_hash().name:
        raise ValueError(f"{src.name} and {dst.name} key blobs by different hashes: nothing can be copied as is")
    dst.prepare_writes()  # a local destination's root is made, so an empty one lists as empty
    source = _ahead(src, listed(src, start_after), "source")
    try:
        present: Iterator[Listed] | None = _ahead(dst, listed(dst, start_after), "destination")
    except NotImplementedError:
        present = None
    report = ReplicateReport()
    bar = _progress_bar(None, want_progress(progress), "key")
    budget = _Budget(max_bytes_in_flight)

    def missing() -> Iterator[Listed]:
        """The source's entries the destination does not list (all of them when it cannot list)."""
        there = next(present, None) if present is not None else None
        for entry in source:
            report.last_key = entry.name
            while there is not None and there.name < entry.name:
                there = next(present, None)
            if there is not None and there.name == entry.name:
                report.skipped += 1
                if bar is not None:
                    bar.update(1)
                continue
            yield entry

    def copy(entry: Listed) -> _Copy:
        if present is None and _exists(dst, entry.name):
            return _Copy(entry.name, "skipped")
        size = entry.size if entry.size is not None else src.head(entry.name)
        if size > max_bytes_in_flight:
            return _streamed(src, dst, entry.name, new_hash)
        budget.take(size)
        try:
            return _in_memory(src, dst, entry.name, new_hash)
        finally:
            budget.give(size)

    def copy_local(entry: Listed) -> _Copy:
        """``copy`` between stores whose reads are local: the blob opened once, its size from the open stream."""
        key = entry.name
        if present is None and _exists(dst, key):
            return _Copy(key, "skipped")
        with src.open(key) as stream:
            size = entry.size if entry.size is not None else _size_of(stream)
            if size is None:
                size = src.head(key)
            if size > max_bytes_in_flight:
                return _spooled(stream, dst, key, new_hash, min(_CHUNK, max_bytes_in_flight))
            budget.take(size)
            try:
                return _checked(dst, key, stream.read(size + 1), new_hash)
            finally:
                budget.give(size)

    def failed(entry: Any, error: str) -> _Copy:
        return _Copy(getattr(entry, "name", entry), "failed", error=error)

    try:
        pending = missing()
        first = next(pending, None)  # nothing to copy (a rerun): no threads started
        if first is not None:
            if reads_locally(src, dst):  # keys in chunks: a hand-off per key costs more than a copy
                for outcomes in run_chunked(src, itertools.chain((first,), pending), _guarded(src, copy_local), failed,
                                            max_workers=max_workers):
                    for outcome in outcomes:
                        report._add(outcome)
                    if bar is not None:
                        bar.update(len(outcomes))
            else:
                entries = itertools.chain((first,), pending)
                if present is not None and reads_locally(dst) and callable(getattr(src, "get_many", None)):
                    outcomes = _fetched(src, dst, entries, _guarded(src, copy), new_hash, max_workers,
                                        max_bytes_in_flight)
                else:
                    outcomes = run_many(src, entries, _guarded(src, copy), failed, max_workers=max_workers,
                                        progress=False, keyed=False)
                for outcome in outcomes:
                    report._add(outcome)
                    if bar is not None:
                        bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return report


def _guarded(src: Any, copy: Callable[[Listed], _Copy]) -> Callable[[Listed], _Copy]:
    """``copy`` with a key's errors as its outcome: corrupt when a source that verifies as it reads says so, failed
    otherwise."""
    def run(entry: Listed) -> _Copy:
        try:
            return copy(entry)
        except InvalidDataFound as exc:  # a source that verifies as it reads found its copy corrupt
            return _Copy(entry.name, "corrupt", error=str(exc))
        except NotFoundInStore:
            return _Copy(entry.name, "failed", error="listed, then not found in the source (removed meanwhile?)")
        except Exception as exc:  # noqa: BLE001 - one key's failure is its result
            return _Copy(entry.name, "failed", error=failure(src, exc)[1])

    return run


def _fetched(src: Any, dst: Any, entries: Iterator[Listed], copy: Callable[[Listed], _Copy], new_hash: Any,
             max_workers: int, max_bytes_in_flight: int) -> Iterator[_Copy]:
    """Copies from a source that waits on a service into a destination whose writes are local: the blobs come from
    the source's own ``get_many`` (its engine, window and bound on bytes in flight) and each is checked and written
    on the caller's thread as it arrives (written on the fetching threads, each write's system calls handed the GIL
    around sixteen threads). A blob larger than ``max_bytes_in_flight``,
    or of unknown size, is copied by ``copy`` (streamed) after the others; so is a key the fetch did not find or
    failed, once more, which then says corrupt (a source that verifies as it reads) or failed."""
    later: list[Listed] = []
    asked: deque[Listed] = deque()

    def small() -> Iterator[str]:
        for entry in entries:
            if entry.size is None or entry.size > max_bytes_in_flight:
                later.append(entry)
            else:
                asked.append(entry)
                yield entry.name

    for result in src.get_many(small(), max_workers=max_workers, max_bytes_in_flight=max_bytes_in_flight,
                               progress=False):
        entry = asked.popleft()
        if not result.ok:
            yield copy(entry)
            continue
        try:
            outcome = _checked(dst, entry.name, result.data, new_hash)
        except Exception as exc:  # noqa: BLE001 - the write's failure is this key's result
            outcome = _Copy(entry.name, "failed", error=failure(dst, exc)[1])
        yield outcome
    for entry in later:
        yield copy(entry)


def _ahead(store: Any, entries: Iterator[Listed], name: str) -> Iterator[Listed]:
    """A listing that waits on a service is read on a thread, ahead (``read_ahead``): the two listings' waits
    overlap; a local one is read where it is compared."""
    remote = getattr(store, "lists_remotely", None)
    return read_ahead(entries, name) if callable(remote) and remote() else entries


def _exists(dst: Any, key: str) -> bool:
    try:
        dst.head(key)
    except NotFoundInStore:
        return False
    return True


def _in_memory(src: Any, dst: Any, key: str, new_hash: Any) -> _Copy:
    return _checked(dst, key, src.get(key), new_hash)


def _checked(dst: Any, key: str, data: bytes, new_hash: Any) -> _Copy:
    """``data`` hashed once and written only when it matches ``key``."""
    digest = new_hash()
    digest.update(data)
    actual = digest.hexdigest()
    if actual != key:
        return _Copy(key, "corrupt", len(data), f"the source's bytes hash to {actual}")
    return _written(key, len(data), _put(dst, key, data))


def _size_of(stream: Any) -> int | None:
    """The size of an open blob from its stream (``Store.open`` answers a seekable file object), None if it cannot
    seek: one ``lseek`` on a local file, where a ``head`` would look its path up again."""
    seekable = getattr(stream, "seekable", None)
    if not callable(seekable) or not seekable():
        return None
    size = stream.seek(0, 2)
    stream.seek(0)
    return size


def _streamed(src: Any, dst: Any, key: str, new_hash: Any) -> _Copy:
    """A blob larger than the bytes allowed in flight: spooled to a temp file while it is hashed, then streamed."""
    if not callable(getattr(dst, "put_stream", None)):
        return _cannot_stream(dst, key)
    with src.open(key) as stream:
        return _spooled(stream, dst, key, new_hash, _CHUNK)


def _cannot_stream(dst: Any, key: str) -> _Copy:
    return _Copy(key, "failed", error=f"larger than max_bytes_in_flight and {dst.name} cannot write a stream")


def _spooled(stream: Any, dst: Any, key: str, new_hash: Any, chunk_size: int) -> _Copy:
    """``stream`` spooled to a temp file ``chunk_size`` bytes at a time while it is hashed, then written with the
    destination's ``put_stream`` when it matches ``key``."""
    put_stream = getattr(dst, "put_stream", None)
    if not callable(put_stream):
        return _cannot_stream(dst, key)
    digest, size = new_hash(), 0
    with tempfile.TemporaryFile(prefix="bitstore-replicate-") as spool:
        while chunk := stream.read(chunk_size):
            digest.update(chunk)
            spool.write(chunk)
            size += len(chunk)
        if digest.hexdigest() != key:
            return _Copy(key, "corrupt", size, f"the source's bytes hash to {digest.hexdigest()}")
        spool.seek(0)
        return _written(key, size, put_stream(key, spool))


def _put(dst: Any, key: str, data: bytes) -> Any:
    """Bytes just checked against ``key``: a SHA1 store of ours is not asked to hash them again."""
    put = getattr(dst, "_put_verified", None)
    return put(key, data) if callable(put) else dst.put(key, data)


def _written(key: str, size: int, answer: Any) -> _Copy:
    if answer is False:  # a cache's put: it logged why
        return _Copy(key, "failed", size, "the destination did not store it (see the warning logged)")
    return _Copy(key, "copied", size)
