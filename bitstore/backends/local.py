"""``LocalRaw``: files on local disk, the embedded default store. Atomic writes, optional root confinement.

Writes go through directory descriptors: each folder below the root is opened relative to the one above
it with ``O_NOFOLLOW``, and the temp file is created and renamed inside the last one, so a folder swapped
for a symlink while a write runs makes the write fail; it never places a byte outside the root. Reads
open regular files only and never read more than ``max_blob_bytes`` plus one byte.

With ``max_bytes`` the folder is a bounded cache (``_lru``: an SQLite index of sizes and uses beside the blobs,
shared by every process writing the folder): temp files are made in the index's folder, held with ``flock`` while
written, and renamed into place once the index has made room for them.
"""
from __future__ import annotations

import contextlib
import errno
import io
import os
import secrets
import stat
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlsplit

from ..core.listed import Listed
from ..core.store import Store
from ..ground import tempfiles as _tempfiles
from ..ground.errors import BitstoreError, BlobTooLarge, FetchFailed, InvalidURI, NotFoundInStore, StoreNotAvailable
from ..ground.fields import COMMON, MAX_BLOB_BYTES, MAX_BYTES, Build, Field, TierType
from ..ground.sizes import byte_size
from ..ground.stats import Usage
from . import _lru

__all__ = ["LocalRaw", "TEMP_PREFIX", "TEMP_SUFFIX"]

_UMASK = os.umask(0o022)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK
_NOT_FOUND = {errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG}
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
# O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused once fstat shows what it is).
_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | _CLOEXEC
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | _CLOEXEC
# Folders on the way are opened for lookups only (O_PATH: search permission is enough, as for a path).
_WALK_FLAGS = (_DIR_FLAGS & ~os.O_RDONLY) | getattr(os, "O_PATH", os.O_RDONLY)
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | _CLOEXEC
#: Temp files of ``put`` are ``.bitstore-<random>.tmp`` beside their target.
TEMP_PREFIX, TEMP_SUFFIX = ".bitstore-", ".tmp"
_STREAM_CHUNK = 8 << 20  # bytes per read of put_stream
#: Names a listing sorts at once: a larger folder is listed in ranges of names, each scanned and sorted alone.
LIST_PAGE_NAMES = 100_000
_MAX_READ = 1 << 30  # one read call never asks for more (Linux returns at most ~2 GiB per call anyway)


class LocalRaw(Store):
    """``file:///abs/path`` and plain paths. Relative paths resolve against ``root`` (else the working
    directory). With a ``root``, no read or write reaches outside it, whatever ``..``, symlinks, ``file://``
    forms or concurrent symlink swaps are used: such a uri raises ``InvalidURI`` (a swap during a write
    makes that write fail).

    ``max_blob_bytes``: larger files are refused (``BlobTooLarge``) without reading more than that many
    bytes plus one. ``fsync=True``: ``put`` flushes the file and its folder to the disk before it returns
    (durable across a power cut, slower); by default a write is atomic but may sit in the page cache.
    Temp files of writes that died (``.bitstore-*.tmp``) are removed once older than ``STALE_TEMP_SECONDS``,
    when their folder is next written.

    ``max_bytes`` (an int, or a string with a unit: ``"20GiB"``) makes the root a bounded cache, safe to share
    between processes: once a ``put`` returns, the blobs under the root total at most ``max_bytes`` (plus writes
    still in flight); the least recently used (read or written) go first; a blob larger than ``max_bytes`` is
    refused (``BlobTooLarge``). Every writer of the folder must be bounded (files written by other means are
    not counted). Its index and temp files live in ``<root>/.bitstore-lru/``; a local file system is needed
    (SQLite's WAL mode does not work over NFS).
    """

    URI_HINT = "a path, or file:///absolute/path"
    KIND = "local"
    #: A temp file this old is taken as left by a crashed write.
    STALE_TEMP_SECONDS = _tempfiles.STALE_SECONDS

    def __init__(self, root: str | os.PathLike | None = None, *, max_blob_bytes: int | None = None,
                 name: str | None = None, fsync: bool = False, max_bytes: int | str | None = None):
        super().__init__(name=name)
        self.root = None if root is None else os.path.realpath(os.fspath(root))
        self.max_blob_bytes = max_blob_bytes
        self.fsync = fsync
        try:
            self.max_bytes = None if max_bytes is None else byte_size(max_bytes)
        except ValueError as exc:
            raise ValueError(f"max_bytes {exc}") from None
        if self.max_bytes is not None and self.root is None:
            raise ValueError("a LocalRaw with max_bytes needs a root folder (the one it bounds)")
        self._index = None if self.max_bytes is None else self._new_index()
        self._cut = 0 if self.root is None else len(self.root.rstrip(os.sep)) + 1  # root + "/" + name: the name
        self._root_slash = _root_slash(self.root)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_index"] = None  # per process: made again where it is unpickled
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._root_slash = _root_slash(self.root)
        if self.max_bytes is not None:
            self._index = self._new_index()

    def _new_index(self) -> _lru.LruIndex:
        return _lru.LruIndex(self.root, self.max_bytes, self._remove, durable=self.fsync)

    def _default_name(self) -> str:
        return "local" if self.root is None else f"local:{self.root}"

    # --- uris ------------------------------------------------------------------------------------
    @staticmethod
    def _raw_path(uri: Any) -> str | None:
        if not isinstance(uri, str) or not uri or "\x00" in uri:
            return None
        if uri.startswith("file:"):
            parts = urlsplit(uri)
            if not uri.startswith("file://") or parts.netloc not in ("", "localhost") or not parts.path:
                return None
            return unquote(parts.path)
        if "://" in uri:
            return None
        return uri

    def _path(self, uri: Any) -> str:
        raw = self._raw_path(uri)
        if raw is None:
            raise InvalidURI(self, uri, hint=self.URI_HINT)
        base = self.root if self.root is not None else os.getcwd()
        try:
            resolved = os.path.realpath(os.path.join(base, raw))
        except OSError as exc:  # a link on the path changed while it was resolved
            raise FetchFailed(self, uri, f"cannot resolve the path ({exc.strerror or type(exc).__name__})") from None
        if self.root is not None and not self._inside(resolved):
            raise InvalidURI(self, uri, hint=f"paths must stay inside {self.root}")
        return resolved

    def is_valid(self, uri: Any) -> bool:
        try:
            self._path(uri)
        except (BitstoreError, ValueError, OSError):
            return False
        return True

    def _lexical_path(self, uri: Any) -> str:
        """The absolute path ``uri`` names, symlinks not followed (no system call unless it has ``..``)."""
        raw = self._raw_path(uri)
        if raw is None:
            raise InvalidURI(self, uri, hint=self.URI_HINT)
        root = self._root_slash
        if root is not None:  # one name right under the root (a realpath): it is its own normal form, inside
            name = raw[len(root):] if raw.startswith(root) else raw if raw[:1] != "/" else "/"
            if name and "/" not in name and name != "." and name != "..":
                return root + name
        if ".." in raw.split("/"):  # "link/.." is the link target's parent for the OS: resolve as put does
            return self._path(uri)
        path = os.path.normpath(os.path.join(self.root if self.root is not None else os.getcwd(), raw))
        if self.root is not None and not self._inside(path):
            raise InvalidURI(self, uri, hint=f"paths must stay inside {self.root}")
        return path

    def _inside(self, path: str) -> bool:
        return path == self.root or path.startswith(self.root.rstrip(os.sep) + os.sep)

    # --- reading ---------------------------------------------------------------------------------
    def reads_on_loop(self) -> bool:
        """A read is a syscall away: the event loop makes it itself. A subclass may do anything in ``get``, so only
        this class says so; and not a bounded one, whose read may write its uses to the index (and wait there for
        another process's writer)."""
        return type(self) is LocalRaw and self.max_bytes is None

    def hits_on_loop(self) -> bool:
        """A bounded one too: its read records the use in memory and, on an event loop, writes the gathered uses to
        the index on a thread of its own (``_lru.LruIndex.touch``), never there."""
        return type(self) is LocalRaw

    def get(self, uri: Any) -> bytes:
        """Reads follow symlinks, then check where the opened file really is (one readlink of the open file
        on Linux, instead of resolving every path component before opening)."""
        path = self._lexical_path(uri)
        try:
            fd = os.open(path, _READ_FLAGS)
            try:
                if self.root is not None:
                    self._check_opened(fd, uri)
                data = self._read(fd, uri)
            finally:
                os.close(fd)
        except OSError as exc:
            if self.root is not None:
                self._path(uri)  # a miss through a symlink pointing out of the root is InvalidURI, not missing
            raise self._map_error(exc, uri) from None
        if self._index is not None:
            self._index.touch(path[self._cut:])
        return data

    def _check_opened(self, fd: int, uri: Any) -> None:
        try:
            real = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # no /proc (not Linux): resolve the path the slow way
            real = self._path(uri)
        if not self._inside(real):
            raise InvalidURI(self, uri, hint=f"paths must stay inside {self.root}")

    def _read(self, fd: int, uri: Any) -> bytes:
        """The bytes of the regular file open on ``fd``: exactly the size ``fstat`` gave, never more than the
        cap plus one byte."""
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise NotFoundInStore(self, uri, "a folder, not a file")
        if not stat.S_ISREG(info.st_mode):
            raise FetchFailed(self, uri, f"not a regular file (a {_kind(info.st_mode)}); refused")
        size, cap = info.st_size, self.max_blob_bytes
        if cap is not None and size > cap:
            raise BlobTooLarge(self, uri, size, cap)
        data = read_at_most(fd, size + 1 if cap is None else min(size, cap) + 1, size)
        if cap is not None and len(data) > cap:
            raise BlobTooLarge(self, uri, len(data), cap)
        if len(data) != size:
            raise FetchFailed(self, uri, f"the file has {len(data):,}+ bytes where its size says {size:,}: it "
                                         "changed while it was read, or is not an ordinary file (/proc, /sys); "
                                         "refused")
        return data

    # --- writing ---------------------------------------------------------------------------------
    def prepare_writes(self) -> None:
        """A cache's root is made when it becomes a cache (a root that does not exist is unavailable, not empty)."""
        if self.root is not None:
            with contextlib.suppress(OSError):
                os.makedirs(self.root, exist_ok=True)

    def put(self, uri: Any, data: bytes) -> None:
        """Write ``data`` atomically (a temp file renamed over the target) through directory descriptors."""
        self._write(uri, lambda fd: _write_all(fd, data), data)

    def put_stream(self, uri: Any, stream: IO[bytes]) -> None:
        """Write what ``stream`` reads, atomically as ``put``, in chunks (a blob larger than memory is never
        held whole). A bounded cache admits a blob by its size: it reads at most ``max_bytes`` + 1 bytes, then
        stores them as ``put``."""
        if self._index is not None:
            data = stream.read(self.max_bytes + 1)
            return self.put(uri, data)  # BlobTooLarge when it is more than max_bytes
        self._write(uri, lambda fd: _copy_stream(stream, fd))

    def _write(self, uri: Any, write: Callable[[int], None], data: bytes | None = None) -> None:
        base, folders, filename = self._target(uri)
        if self._index is not None:
            return self._put_bounded(uri, data, folders, filename)
        try:
            folder, listable = self._open_folder(base, folders, uri)
            try:
                if listable:
                    self._sweep(folder)
                self._write_in(folder, filename, write)
            finally:
                os.close(folder)
        except OSError as exc:
            raise self._map_error(exc, uri, writing=True) from None

    def _target(self, uri: Any) -> tuple[str, list[str], str]:
        """Where a write of ``uri`` goes: ``(base folder, folders below it, file name)``. A name right under the root
        that is not a symlink is its own answer (one ``lstat``); any other path is resolved first (``_path``: a
        symlink out of the root is ``InvalidURI``)."""
        root, raw = self._root_slash, self._raw_path(uri)
        if root is not None and raw is not None:
            name = raw[len(root):] if raw.startswith(root) else raw if raw[:1] != "/" else ""
            if name and "/" not in name and name != "." and name != "..":
                try:
                    plain = not stat.S_ISLNK(os.lstat(root + name).st_mode)
                except FileNotFoundError:
                    plain = True
                except OSError:  # (a root that is not a folder...) the slow way says what it is
                    plain = False
                if plain:
                    return self.root, [], name
        path = self._path(uri)
        base = self.root if self.root is not None else os.sep
        if path == base:  # its temp file would be created outside the root
            raise InvalidURI(self, uri, hint="a path to a file inside the root")
        *folders, filename = os.path.relpath(path, base).split(os.sep)
        return base, folders, filename

    # --- the bounded cache (``max_bytes``) ------------------------------------------------------------
    def _put_bounded(self, uri: Any, data: bytes, folders: list[str], filename: str) -> None:
        """The temp file is written in the index's folder, then admitted (room made for it) and renamed into place
        in one turn of the writers sharing the folder."""
        size = memoryview(data).nbytes
        if size > self.max_bytes:
            raise BlobTooLarge(self, uri, size, self.max_bytes)
        if (folders or [filename])[0] == _lru.STATE_DIR:
            raise InvalidURI(self, uri, hint=f"'{_lru.STATE_DIR}' holds the cache's index")
        name = "/".join((*folders, filename))
        index = self._index
        try:
            folder, _ = self._open_folder(self.root, folders, uri, listable=False)  # a rename target only
            try:
                fd, tmp, tmp_folder = self._locked_temp(index)
                try:
                    _write_all(fd, data)
                    if self.fsync:
                        os.fsync(fd)
                    index.admit(name, size, tmp, lambda: os.rename(tmp, filename, src_dir_fd=tmp_folder,
                                                                   dst_dir_fd=folder))
                except BaseException:
                    with contextlib.suppress(OSError):
                        os.unlink(tmp, dir_fd=tmp_folder)
                    raise
                finally:
                    os.close(fd)  # after the rename: a sweep never takes a temp file whose writer is alive
                if self.fsync:
                    _fsync_folder(folder)
            finally:
                os.close(folder)
        except OSError as exc:
            raise self._map_error(exc, uri, writing=True) from None
        except sqlite3_errors() as exc:
            raise FetchFailed(self, uri, f"its usage index failed: {exc}") from None

    @staticmethod
    def _locked_temp(index: _lru.LruIndex) -> tuple[int, str, int]:
        """A new temp file in the index's folder, held (``flock``) until it is closed. A folder removed since this
        process opened it (the cache cleared by hand) is made again, with a new index."""
        folder = index.tmp_folder()
        while True:
            try:
                fd, tmp = _create_temp(folder)
            except FileNotFoundError:
                index.close()
                folder = index.tmp_folder()
                fd, tmp = _create_temp(folder)
            if _lru.lock_temp(fd):
                return fd, tmp, folder
            os.close(fd)  # a sweep took it between its creation and the lock

    def _remove(self, name: str) -> None:
        """Remove the blob ``name`` (a path below the root) for eviction, folders walked without following a
        symlink; a file already gone, or a folder on its path replaced, is left alone."""
        *folders, filename = name.split("/")
        try:
            fd = os.open(self.root, _WALK_FLAGS)
        except OSError:
            return
        try:
            for part in folders:
                below = os.open(part, _WALK_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = below
            os.unlink(filename, dir_fd=fd)
        except OSError:
            pass
        finally:
            os.close(fd)

    def usage(self) -> Usage | None:
        """For a bounded root: the bytes its blobs take (counted by every process sharing it), ``max_bytes`` and
        the evictions this process made."""
        if self._index is None:
            return None
        return Usage(self._index.total(), self.max_bytes, self._index.evictions)

    def _open_folder(self, base: str, folders: list[str], uri: Any, listable: bool = True) -> tuple[int, bool]:
        """A descriptor of ``base/folders...``, each opened under the one above without following a symlink,
        created when missing (the root too: it is configured, so trusted), and whether it can be listed (a
        folder we may write but not read is written all the same). Without ``listable``, the lookup-only
        descriptor itself (enough for ``renameat``; its listing is not asked for)."""
        if not folders and listable and _WALK_FLAGS != _DIR_FLAGS:  # the base itself: one open when it can be read
            try:
                return os.open(base, _DIR_FLAGS), True
            except (FileNotFoundError, PermissionError):
                pass  # made, or opened for lookups only, below
        try:
            fd = os.open(base, _WALK_FLAGS)
        except FileNotFoundError:
            os.makedirs(base, exist_ok=True)
            fd = os.open(base, _WALK_FLAGS)
        try:
            for name in folders:
                fd_below = self._open_or_make(fd, name, uri)
                os.close(fd)
                fd = fd_below
            if _WALK_FLAGS == _DIR_FLAGS or not listable:
                return fd, _WALK_FLAGS == _DIR_FLAGS
            try:
                listable = os.open(".", _DIR_FLAGS, dir_fd=fd)  # the same folder, whatever happens to its path
            except PermissionError:
                return fd, False
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
        return listable, True

    def _open_or_make(self, parent: int, name: str, uri: Any) -> int:
        misses = 0
        while True:  # another writer may create or remove it between our two calls
            try:
                return os.open(name, _WALK_FLAGS, dir_fd=parent)
            except FileNotFoundError:
                misses += 1
                if misses == 3:
                    raise
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, 0o777, dir_fd=parent)
                    if self.fsync:
                        _fsync_folder(parent)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):  # a symlink (or a file) stands there
                    raise FetchFailed(self, uri, f"'{name}' on its path is not a folder (replaced while writing?); "
                                                 "refused rather than follow it") from None
                raise

    def _write_in(self, folder: int, filename: str, write: Callable[[int], None]) -> None:
        fd, tmp = _create_temp(folder)
        try:
            try:
                write(fd)
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, filename, src_dir_fd=folder, dst_dir_fd=folder)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=folder)
            raise
        if self.fsync:
            _fsync_folder(folder)

    def _sweep(self, folder: int) -> None:
        """Remove temp files of writes that died in this folder (at most once per interval per folder)."""
        _tempfiles.sweep(folder, TEMP_PREFIX, TEMP_SUFFIX, self.STALE_TEMP_SECONDS)

    def _map_error(self, exc: OSError, uri: Any, writing: bool = False) -> Exception:
        """A failed write is never "not found" (e.g. writing onto a folder)."""
        not_found = exc.errno in _NOT_FOUND or isinstance(exc, (FileNotFoundError, IsADirectoryError,
                                                                NotADirectoryError))
        if not_found and not writing:
            if self.root is not None and not os.path.isdir(self.root):  # no root: nothing can be said to be absent
                return StoreNotAvailable(self, f"its root folder {self.root} does not exist")
            return NotFoundInStore(self, uri)
        if isinstance(exc, PermissionError):
            return StoreNotAvailable(self, f"permission denied for '{Path(exc.filename or '').name}'")
        return FetchFailed(self, uri, f"{type(exc).__name__}: {exc.strerror or exc}")


    # --- inspect and stream (new methods; the read and write paths above are unchanged) -------------------
    def head(self, uri: Any) -> int:
        """The file's size by ``stat`` (symlinks followed; with a root, the file must really be inside it)."""
        path = self._path(uri) if self.root is not None else self._lexical_path(uri)
        try:
            info = os.stat(path)
        except OSError as exc:
            raise self._map_error(exc, uri) from None
        self._check_kind(info, uri)
        return info.st_size

    def open(self, uri: Any) -> io.BufferedReader:
        """The file itself, opened for reading (streamed from disk: ``max_blob_bytes`` does not apply)."""
        path = self._lexical_path(uri)
        try:
            fd = os.open(path, _READ_FLAGS)
        except OSError as exc:
            if self.root is not None:
                self._path(uri)  # a miss through a symlink pointing out of the root is InvalidURI, not missing
            raise self._map_error(exc, uri) from None
        try:
            if self.root is not None:
                self._check_opened(fd, uri)
            self._check_kind(os.fstat(fd), uri)
            os.set_blocking(fd, True)  # opened non-blocking (a FIFO must not hang the open): reads block as usual
            if self._index is not None:
                self._index.touch(path[self._cut:])
            return io.BufferedReader(io.FileIO(fd, "rb"))  # what os.fdopen makes, minus its isatty probe
        except BaseException:
            os.close(fd)
            raise

    # --- listing and deleting ------------------------------------------------------------------------
    def delete(self, uri: Any) -> None:
        """Remove the file; one that is not there is fine (a folder is refused)."""
        path = self._path(uri) if self.root is not None else self._lexical_path(uri)
        try:
            os.unlink(path)
        except FileNotFoundError:
            if self.root is not None and not os.path.isdir(self.root):
                raise StoreNotAvailable(self, f"its root folder {self.root} does not exist") from None
        except OSError as exc:
            raise self._map_error(exc, uri, writing=True) from None

    def list_names(self, prefix: str, *, start_after: str | None = None) -> Iterator[Listed]:
        """The files directly in ``prefix``'s folder whose names start with its last part (``/data/blobs/``: every
        file of ``/data/blobs``), ascending; folders and temp files of writes under way are left out; sizes are not
        read (None). A folder of more than ``list_page_names`` names is read in ranges of names (one scan each),
        so memory stays bounded whatever its size. A root that does not exist is ``StoreNotAvailable``; a folder
        under it that does not exist is empty."""
        folder, head = self._list_folder(prefix)
        try:
            yield from _sorted_names(folder, head, start_after, getattr(self, "list_page_names", LIST_PAGE_NAMES))
        except FileNotFoundError:
            if self.root is not None and not os.path.isdir(self.root):
                raise StoreNotAvailable(self, f"its root folder {self.root} does not exist") from None
        except NotADirectoryError:
            return
        except PermissionError as exc:
            raise StoreNotAvailable(self, f"permission denied for '{Path(exc.filename or folder).name}'") from None
        except OSError as exc:
            raise FetchFailed(self, prefix, f"cannot list the folder: {exc.strerror or exc}") from None

    def _list_folder(self, prefix: str) -> tuple[str, str]:
        """``(folder, start of the names)`` of a listed prefix; with a root, the folder must be inside it."""
        raw = self._raw_path(prefix)
        if raw is None:
            raise InvalidURI(self, prefix, hint=self.URI_HINT)
        base = self.root if self.root is not None else os.getcwd()
        folder, head = os.path.split(os.path.join(base, raw))
        folder = os.path.normpath(folder)
        if self.root is not None and not self._inside(os.path.realpath(folder)):
            raise InvalidURI(self, prefix, hint=f"paths must stay inside {self.root}")
        return folder, head

    def _check_kind(self, info: os.stat_result, uri: Any) -> None:
        """As ``get``: a folder is not a blob (missing), any other file that is not a regular one is refused."""
        if stat.S_ISDIR(info.st_mode):
            raise NotFoundInStore(self, uri, "a folder, not a file")
        if not stat.S_ISREG(info.st_mode):
            raise FetchFailed(self, uri, f"not a regular file (a {_kind(info.st_mode)}); refused")


def _root_slash(root: str | None) -> str | None:
    """``root`` and a separator: the start of every path one name under it (None: no root, or not POSIX paths)."""
    return None if root is None or os.sep != "/" else root.rstrip("/") + "/"


def read_at_most(fd: int, limit: int, expected: int | None = None) -> bytes:
    """Up to ``limit`` bytes from ``fd`` (fewer only at the end of the file): one read call when it can. A first read
    that gives exactly ``expected`` bytes (the size ``fstat`` gave; ``limit`` asks one more, so a file that grew
    shows) is the whole file: no second call to see its end."""
    data = os.read(fd, min(limit, _MAX_READ))
    if len(data) == limit or not data or len(data) == expected:
        return data
    parts = [data]
    got = len(data)
    while got < limit and (chunk := os.read(fd, min(limit - got, _MAX_READ))):
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def _names_in(folder: str, head: str, start_after: str | None) -> Iterator[str]:
    """The names (after ``head``) of the files in ``folder`` that start with ``head``, in directory order."""
    cut = len(head)
    with os.scandir(folder) as entries:
        for entry in entries:
            name = entry.name
            if not name.startswith(head) or (name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX)):
                continue
            rest = name[cut:]
            if rest and (start_after is None or rest > start_after) and not entry.is_dir():
                yield rest


def _sorted_names(folder: str, head: str, start_after: str | None, page: int) -> Iterator[Listed]:
    """``_names_in`` ascending: sorted at once when there are at most ``page`` names; else one more scan per range
    of names (ranges of their first two characters, counted on the first scan) so at most about ``page`` names
    are held at a time."""
    held: list[str] | None = []
    starts: Counter[str] = Counter()
    for name in _names_in(folder, head, start_after):
        starts[name[:2]] += 1
        if held is not None:
            held.append(name)
            if len(held) > page:
                held = None
    if held is not None:
        held.sort()
        yield from (Listed(name) for name in held)
        return
    group: list[str] = []
    count = 0
    for start in sorted(starts):
        if group and count + starts[start] > page:
            yield from _range(folder, head, start_after, set(group))
            group, count = [], 0
        group.append(start)
        count += starts[start]
    if group:
        yield from _range(folder, head, start_after, set(group))


def _range(folder: str, head: str, start_after: str | None, starts: set[str]) -> Iterator[Listed]:
    names = [name for name in _names_in(folder, head, start_after) if name[:2] in starts]
    names.sort()
    return (Listed(name) for name in names)


def _create_temp(folder: int) -> tuple[int, str]:
    """``mkstemp`` inside the folder open on ``folder``: a new file nobody else opened, never a symlink."""
    for _ in range(100):
        name = f"{TEMP_PREFIX}{secrets.token_hex(8)}{TEMP_SUFFIX}"
        try:
            return os.open(name, _TEMP_FLAGS, _FILE_MODE, dir_fd=folder), name
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no unused temp file name")


def _fsync_folder(fd: int) -> None:
    """Flush the folder open on ``fd`` (which may be a lookup-only descriptor) to the disk."""
    folder = os.open(".", _DIR_FLAGS, dir_fd=fd)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data).cast("B")
    while view:
        view = view[os.write(fd, view):]


def _copy_stream(stream: IO[bytes], fd: int) -> None:
    while chunk := stream.read(_STREAM_CHUNK):
        _write_all(fd, chunk)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "FIFO"), (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
                       (stat.S_ISSOCK, "socket")):
        if test(mode):
            return name
    return "special file"


# --- the local tier of a store spec (``bitstore.spec`` validates and builds through this declaration) -----
def _build_tier(tier: dict, build: Build) -> LocalRaw:
    root = tier.get("prefix")
    return LocalRaw(root=None if root is None else root.rstrip(os.sep) or os.sep,
                    max_blob_bytes=tier.get("max_blob_bytes"), max_bytes=tier.get("max_bytes"),
                    **build.raw_name(tier))


def sqlite3_errors() -> type[Exception]:
    """``sqlite3.Error`` (imported with the first bounded root: only a bounded store needs it)."""
    import sqlite3

    return sqlite3.Error


TIER = TierType("local", (
    Field("prefix", str, "a folder (or `file://` URL); relative: to the spec file's folder; the root folder with "
          "uri keys", "blobs/"),
    *COMMON,
    MAX_BLOB_BYTES,
    MAX_BYTES,
), _build_tier)
