"""The usage index of a bounded ``LocalRaw``: which blobs are under the root, their sizes and when each was last
used, in SQLite (WAL mode) beside them, shared by every process that writes the folder.

- ``admit`` (a ``put``, once its temp file is written): in one transaction, the blob's row is added (its size, a
  use stamp, the name of its temp file) and the least recently used other blobs are removed, files first, rows
  second, until the total fits ``max_bytes`` (and, when they are small, a few more: down to about 1/32 below it,
  so the next writes find room without evicting); then, still in its turn, the temp file is renamed into place.
  Writers of every process take turns on a ``flock`` of ``lock`` beside the index, so no evictor takes a row
  between its commit and its file's arrival.
- Reads are recorded in memory (``touch``) and written in batches: with the next ``admit`` of the process, or
  once ``FLUSH_READS`` reads or ``FLUSH_SECONDS`` have gathered (without waiting on a busy index), or at exit.
- Failure cases, by construction: a row never outlives a transaction that died (SQLite rolls it back); a file
  is removed before its row is committed gone, and added after its row is committed, so the rows' total is never
  below the bytes on disk. A writer killed between its transaction and its rename leaves a row and a temp file;
  temp files are held with ``flock`` while written, so one that nobody holds is dead: ``sweep`` (at the index's
  first use in a process, then every ``SWEEP_SECONDS``) removes it and settles its row by the file there.
"""
from __future__ import annotations

import atexit
import contextlib
import errno
import os
import stat
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..ground import tempfiles as _tempfiles

if TYPE_CHECKING:
    import sqlite3

__all__ = ["LruIndex", "STATE_DIR", "FLUSH_READS", "FLUSH_SECONDS", "ASIDE_GAP", "ASIDE_READS", "SWEEP_SECONDS",
           "EVICT_SLACK", "EVICT_AHEAD"]

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: temp files are judged by age only
    fcntl = None

#: The folder under the root holding the index and the temp files of writes in flight.
STATE_DIR = ".bitstore-lru"
_INDEX, _TMP, _LOCK = "index.sqlite3", "tmp", "lock"
#: Reads are written to the index at least this often (when the process reads or writes again) ...
FLUSH_SECONDS = 0.5
#: ... or once this many distinct blobs were read.
FLUSH_READS = 512
#: Reads made on an event loop are written on a thread, one started at most this often, once ``FLUSH_SECONDS``
#: have passed or this many distinct blobs were read.
ASIDE_GAP = 0.05
ASIDE_READS = 32768
#: A process looks for temp files of dead writers this often (and when it first uses the index).
SWEEP_SECONDS = 10.0
_BUSY_MS = 60_000  # a writer waits this long for the index (others hold it for one put's transaction)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | _CLOEXEC
_PROBE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | _CLOEXEC
#: A full cache evicts to 1/EVICT_SLACK below its bound (when its blobs are that small) ...
EVICT_SLACK = 32
#: ... removing at most this many blobs more than the bound needs in one pass (a write's latency stays bounded).
EVICT_AHEAD = 64
# A checkpoint (the one fsync of the index) every ~64 MiB of WAL rather than SQLite's 4 MiB: 16x fewer fsyncs.
_CHECKPOINT_PAGES = 16_384

_SCHEMA = """
CREATE TABLE IF NOT EXISTS blobs (name TEXT PRIMARY KEY, size INTEGER NOT NULL, used INTEGER NOT NULL, tmp TEXT)
    WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS blobs_by_use ON blobs (used);
CREATE TABLE IF NOT EXISTS meta (id INTEGER PRIMARY KEY CHECK (id = 0), total INTEGER NOT NULL,
    evictions INTEGER NOT NULL);
INSERT OR IGNORE INTO meta VALUES (0, 0, 0);
CREATE TRIGGER IF NOT EXISTS blobs_added AFTER INSERT ON blobs
    BEGIN UPDATE meta SET total = total + NEW.size WHERE id = 0; END;
CREATE TRIGGER IF NOT EXISTS blobs_removed AFTER DELETE ON blobs
    BEGIN UPDATE meta SET total = total - OLD.size WHERE id = 0; END;
CREATE TRIGGER IF NOT EXISTS blobs_resized AFTER UPDATE OF size ON blobs
    BEGIN UPDATE meta SET total = total - OLD.size + NEW.size WHERE id = 0; END;
"""
_UPSERT = ("INSERT INTO blobs (name, size, used, tmp) VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
           "size = excluded.size, used = excluded.used, tmp = excluded.tmp")
_TOTAL = "SELECT total FROM meta WHERE id = 0"
_VICTIMS = "SELECT name, size FROM blobs WHERE name != ? ORDER BY used"
_USED = "UPDATE blobs SET used = max(used, ?) WHERE name = ?"

_live: weakref.WeakSet[LruIndex] = weakref.WeakSet()


@atexit.register
def _flush_all() -> None:
    for index in list(_live):
        with contextlib.suppress(Exception):
            index.flush(wait=False)


class LruIndex:
    """The index of the folder ``root`` bounded to ``max_bytes``; ``remove(name)`` deletes a blob's file (a
    path relative to the root; a file already gone is not an error). Connected lazily, once per process."""

    def __init__(self, root: str, max_bytes: int, remove: Callable[[str], None], durable: bool = False):
        self.root, self.max_bytes, self._remove, self.durable = root, max_bytes, remove, durable
        self.evictions = 0  # made by this process
        self._lock = threading.RLock()
        self._pending: dict[str, int] = {}
        self._first_pending = 0  # the stamp of the oldest read not yet written
        self._last_stamp = 0
        self._pid = -1
        self._db: sqlite3.Connection | None = None
        self._tmp_fd = -1
        self._lock_fd = -1
        self._swept = 0.0
        self._flusher: threading.Thread | None = None
        self._aside_after = 0.0  # no flush aside is started before this (monotonic seconds)
        _live.add(self)

    # --- connection (per process) ------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        if self._pid == os.getpid() and self._db is not None:
            return self._db
        import sqlite3  # here: an unbounded store never needs it

        self._pid, self._db, self._tmp_fd, self._lock_fd = os.getpid(), None, -1, -1  # a forked child: its own
        state = os.path.join(self.root, STATE_DIR)
        os.makedirs(os.path.join(state, _TMP), exist_ok=True)
        self._tmp_fd = os.open(os.path.join(state, _TMP), _DIR_FLAGS)
        self._lock_fd = os.open(os.path.join(state, _LOCK), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | _CLOEXEC, 0o666)
        db = sqlite3.connect(os.path.join(state, _INDEX), timeout=_BUSY_MS / 1000, isolation_level=None,
                             check_same_thread=False)
        try:
            db.execute(f"PRAGMA busy_timeout = {_BUSY_MS}")
            if db.execute("PRAGMA journal_mode = WAL").fetchone()[0].lower() != "wal":
                raise sqlite3.OperationalError("the index cannot use WAL mode (a network file system?)")
            # NORMAL: no fsync at commit, at checkpoints only; FULL with LocalRaw(fsync=True), as durable as its files
            db.execute(f"PRAGMA synchronous = {'FULL' if self.durable else 'NORMAL'}")
            db.execute(f"PRAGMA wal_autocheckpoint = {_CHECKPOINT_PAGES}")
            db.executescript(f"BEGIN IMMEDIATE; {_SCHEMA} COMMIT;")  # one process makes it, the others wait
        except BaseException:
            db.close()
            raise
        self._db = db
        self._swept = 0.0
        return db

    def tmp_folder(self) -> int:
        """A descriptor of the folder where this process's temp files are created (opened once per process)."""
        with self._lock:
            self._connect()
            return self._tmp_fd

    def close(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                with contextlib.suppress(Exception):
                    self.flush(wait=False)
                if self._db is not None:
                    self._db.close()
                for fd in (self._tmp_fd, self._lock_fd):
                    if fd >= 0:
                        os.close(fd)
            self._db, self._tmp_fd, self._lock_fd, self._pid = None, -1, -1, -1

    # --- writes --------------------------------------------------------------------------------------
    def admit(self, name: str, size: int, tmp: str, place: Callable[[], None]) -> None:
        """Add (or resize) ``name`` as used now, with its temp file ``tmp``, and evict the least recently used
        other blobs until the total fits, in one transaction (the reads gathered so far are written first); then,
        still in this writer's turn (so no evictor can take the new row before its file is there), ``place()``
        renames the temp file into place. If ``place`` fails, the row is settled by the file that is there.
        The hot path of every bounded write: the turn and the transaction are taken inline (no context managers),
        and a write into a cache with room runs three statements between ``BEGIN`` and ``COMMIT`` at most."""
        with self._lock:
            db = self._connect()
            if not self._swept or time.monotonic() - self._swept >= SWEEP_SECONDS:
                self._maybe_sweep(db)
            lock_fd = self._lock_fd
            if fcntl is not None:
                fcntl.flock(lock_fd, fcntl.LOCK_EX)
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    if self._pending:
                        self._write_pending(db)
                    db.execute(_UPSERT, (name, size, self._stamp(), tmp))
                    total = db.execute(_TOTAL).fetchone()[0]
                    if total > self.max_bytes:
                        self._evict(db, name, total)
                except BaseException:
                    with contextlib.suppress(Exception):
                        db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
                try:
                    place()
                except BaseException:
                    with contextlib.suppress(Exception), _transaction(db):
                        self._settle(db, [tmp])
                    raise
            finally:
                if fcntl is not None:
                    fcntl.flock(lock_fd, fcntl.LOCK_UN)

    def _evict(self, db: sqlite3.Connection, keep: str, total: int) -> None:
        """Remove the least recently used blobs (not ``keep``) until ``total`` fits ``max_bytes``; then go on, by
        at most ``EVICT_AHEAD`` more, while the total stays at or above ``low_water()``: the next writes into a
        full cache then find room without evicting (one pass in many, not one per write). Each file is removed
        before its row (a rollback leaves a row without a file, never a file without a row). The victims are read
        from the index one at a time, as they are needed."""
        bound, low = self.max_bytes, self.low_water()
        gone: list[tuple[str]] = []
        ahead = 0
        victims = db.execute(_VICTIMS, (keep,))
        try:
            for victim, size in victims:
                if total <= bound:
                    if total - size < low or ahead >= EVICT_AHEAD:
                        break
                    ahead += 1
                self._remove(victim)
                gone.append((victim,))
                total -= size
        finally:
            victims.close()
        if gone:
            db.executemany("DELETE FROM blobs WHERE name = ?", gone)
            db.execute("UPDATE meta SET evictions = evictions + ? WHERE id = 0", (len(gone),))
            self.evictions += len(gone)

    def low_water(self) -> int:
        """A full cache evicts down to this many bytes when its blobs are small enough (``max_bytes`` less
        1/``EVICT_SLACK``): the room the next writes fill without evicting."""
        return self.max_bytes - self.max_bytes // EVICT_SLACK

    # --- reads ---------------------------------------------------------------------------------------
    def touch(self, name: str) -> None:
        """Record a read of ``name`` (in memory; written in a batch). The hot path of a hit: one clock read and one
        dict entry, no lock (a read recorded while a batch is being written may go to the next batch, or be lost:
        recency is advisory)."""
        stamp = time.time_ns()
        pending = self._pending
        if not pending:
            self._first_pending = stamp
        pending[name] = stamp
        late = stamp - self._first_pending >= FLUSH_SECONDS * 1e9
        if len(pending) < FLUSH_READS and not late:
            return
        if _on_event_loop():  # a read made on an event loop (a server's direct answer) never writes the index there
            if late or len(pending) >= ASIDE_READS:  # by time, mostly: a hot blob read often is written once
                self._flush_aside()
            return
        self._flush_if_free()

    def _flush_if_free(self) -> None:
        """Write the gathered reads if nobody is writing them and the index is free (a reader never waits for a
        writer); a failure is dropped: recency is advisory, and a busy index is tried again later."""
        if self._lock.acquire(blocking=False):
            try:
                self.flush(wait=False)
            except Exception:  # noqa: BLE001 - advisory (see the docstring)
                pass
            finally:
                self._lock.release()

    def _flush_aside(self) -> None:
        """Write the gathered reads on a thread of their own (one at a time, at most one started every
        ``ASIDE_GAP`` seconds: another process's writer may hold the index), without waiting on a busy index."""
        now = time.monotonic()
        if now < self._aside_after or (self._flusher is not None and self._flusher.is_alive()):
            return
        self._aside_after = now + ASIDE_GAP
        self._flusher = threading.Thread(target=self._flush_if_free, name="bitstore-lru-reads", daemon=True)
        self._flusher.start()

    def flush(self, wait: bool = True) -> None:
        """Write the reads gathered so far; without ``wait``, only if the index is free right now."""
        with self._lock:
            if not self._pending:
                return
            db = self._connect()
            with self._writing(db, wait):
                self._write_pending(db)

    @contextlib.contextmanager
    def _turn(self, wait: bool = True):
        """This process's turn among the writers of every process, on a ``flock`` (woken the moment it is free,
        where SQLite's own busy wait polls with sleeps of up to 100 ms); without ``wait``, ``BlockingIOError``
        when another writer holds it."""
        if fcntl is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def _writing(self, db: sqlite3.Connection, wait: bool = True):
        """A write transaction in this process's turn."""
        with self._turn(wait), _transaction(db):
            yield

    def _write_pending(self, db: sqlite3.Connection) -> None:
        if self._pending:
            pending, self._pending = self._pending, {}  # dropped with a rollback too: recency is advisory
            db.executemany(_USED, [(used, name) for name, used in list(pending.items())])

    def _stamp(self) -> int:
        """Nanoseconds of the wall clock (shared by the processes), strictly increasing within a process's writes."""
        stamp = max(time.time_ns(), self._last_stamp + 1)
        self._last_stamp = stamp
        return stamp

    # --- inspection ----------------------------------------------------------------------------------
    def total(self) -> int:
        """The bytes of every blob in the index (all processes)."""
        with self._lock:
            return self._connect().execute("SELECT total FROM meta WHERE id = 0").fetchone()[0]

    def order(self) -> list[str]:
        """Every blob, least recently used first (the reads of this process written first)."""
        self.flush()
        with self._lock:
            return [r[0] for r in self._connect().execute("SELECT name FROM blobs ORDER BY used, name")]

    # --- dead writers --------------------------------------------------------------------------------
    def _maybe_sweep(self, db: sqlite3.Connection) -> None:
        now = time.monotonic()
        if self._swept and now - self._swept < SWEEP_SECONDS:
            return
        self._swept = now
        self._sweep(db)

    def sweep(self) -> list[str]:
        """Remove the temp files of writers that died, settle their rows; returns the temp files' names."""
        with self._lock:
            db = self._connect()
            self._swept = time.monotonic()
            return self._sweep(db)

    def _sweep(self, db: sqlite3.Connection) -> list[str]:
        held: list[int] = []
        dead: list[str] = []
        try:
            with os.scandir(self._tmp_fd) as entries:
                names = [e.name for e in entries if e.name.endswith(".tmp")]
            for name in names:
                fd = _claim_dead(self._tmp_fd, name)
                if fd is not None:
                    held.append(fd)
                    dead.append(name)
            if dead:
                with self._writing(db):
                    self._settle(db, dead)
                for name in dead:
                    with contextlib.suppress(OSError):
                        os.unlink(name, dir_fd=self._tmp_fd)
        finally:
            for fd in held:
                os.close(fd)
        return dead

    def _settle(self, db: sqlite3.Connection, tmps: list[str]) -> None:
        """Rows written with one of ``tmps`` whose rename never happened: kept at the size of the file at their
        name (an older copy), else removed."""
        marks = ",".join("?" * len(tmps))
        for (name,) in db.execute(f"SELECT name FROM blobs WHERE tmp IN ({marks})", tmps).fetchall():
            try:
                info = os.stat(os.path.join(self.root, name), follow_symlinks=False)
            except OSError:
                info = None
            if info is not None and stat.S_ISREG(info.st_mode):
                db.execute("UPDATE blobs SET size = ?, tmp = NULL WHERE name = ?", (info.st_size, name))
            else:
                db.execute("DELETE FROM blobs WHERE name = ?", (name,))

    def __getstate__(self) -> dict:
        return {"root": self.root, "max_bytes": self.max_bytes, "remove": self._remove, "durable": self.durable}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)


def lock_temp(fd: int) -> bool:
    """Hold ``fd``'s temp file while it is written (released when it is closed, or its process dies); False when
    a sweep removed it before the lock was taken (the caller makes another)."""
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:  # a file system without flock: temp files are judged by age
            return True
    return os.fstat(fd).st_nlink > 0


def _claim_dead(folder: int, name: str) -> int | None:
    """A descriptor holding the lock of temp file ``name`` when its writer is gone (nobody holds it; or, without
    flock, it is older than ``STALE_SECONDS``), else None."""
    try:
        fd = os.open(name, _PROBE_FLAGS, dir_fd=folder)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise BlockingIOError
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise
            except OSError as exc:
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise BlockingIOError from None
                if time.time() - info.st_mtime < _tempfiles.STALE_SECONDS:
                    raise BlockingIOError from None
        elif time.time() - info.st_mtime < _tempfiles.STALE_SECONDS:
            raise BlockingIOError
        if os.stat(name, dir_fd=folder, follow_symlinks=False).st_ino != info.st_ino:
            raise BlockingIOError  # renamed away and replaced meanwhile: not ours to judge
    except OSError:
        os.close(fd)
        return None
    return fd


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection):
    """``BEGIN IMMEDIATE`` (the write lock at once: no upgrade deadlock between processes) ... ``COMMIT``."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


_running_loop: Callable[[], object] | None = None


def _on_event_loop() -> bool:
    """Whether this thread is running an asyncio event loop (asked only when reads are due to be written)."""
    global _running_loop
    if _running_loop is None:
        from asyncio import _get_running_loop

        _running_loop = _get_running_loop
    return _running_loop() is not None
