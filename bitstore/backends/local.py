"""``LocalRaw``: files on local disk, the embedded default store. Atomic writes, optional root confinement."""
from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from ..errors import BlobTooLarge, FetchFailed, InvalidURI, NotFoundInStore, StoreNotAvailable
from ..store import Store

__all__ = ["LocalRaw"]

_UMASK = os.umask(0o022)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK
_NOT_FOUND = {errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG}
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0)


class LocalRaw(Store):
    """``file:///abs/path`` and plain paths. Relative paths resolve against ``root`` (else the working
    directory). With a ``root``, no read or write reaches outside it, whatever ``..``, symlinks or
    ``file://`` forms are used: such a uri raises ``InvalidURI``.
    """

    URI_HINT = "a path, or file:///absolute/path"
    KIND = "local"

    def __init__(self, root: str | os.PathLike | None = None, *, max_blob_bytes: int | None = None,
                 name: str | None = None):
        super().__init__(name=name)
        self.root = None if root is None else os.path.realpath(os.fspath(root))
        self.max_blob_bytes = max_blob_bytes

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
        resolved = os.path.realpath(os.path.join(base, raw))
        if self.root is not None and not self._inside(resolved):
            raise InvalidURI(self, uri, hint=f"paths must stay inside {self.root}")
        return resolved

    def is_valid(self, uri: Any) -> bool:
        try:
            self._path(uri)
        except (InvalidURI, ValueError, OSError):
            return False
        return True

    # --- io --------------------------------------------------------------------------------------
    def _lexical_path(self, uri: Any) -> str:
        """The absolute path ``uri`` names, symlinks not followed (no system call unless it has ``..``)."""
        raw = self._raw_path(uri)
        if raw is None:
            raise InvalidURI(self, uri, hint=self.URI_HINT)
        if ".." in raw.split("/"):  # "link/.." is the link target's parent for the OS: resolve as put does
            return self._path(uri)
        path = os.path.normpath(os.path.join(self.root if self.root is not None else os.getcwd(), raw))
        if self.root is not None and not self._inside(path):
            raise InvalidURI(self, uri, hint=f"paths must stay inside {self.root}")
        return path

    def _inside(self, path: str) -> bool:
        return path == self.root or path.startswith(self.root.rstrip(os.sep) + os.sep)

    def get(self, uri: Any) -> bytes:
        """Reads follow symlinks, then check where the opened file really is (one readlink of the open file
        on Linux, instead of resolving every path component before opening)."""
        path = self._lexical_path(uri)
        try:
            fd = os.open(path, _READ_FLAGS)
            try:
                if self.root is not None:
                    self._check_opened(fd, uri)
                size = os.fstat(fd).st_size
                if self.max_blob_bytes is not None and size > self.max_blob_bytes:
                    raise BlobTooLarge(self, uri, size, self.max_blob_bytes)
                return _read_to_end(fd, size)
            finally:
                os.close(fd)
        except OSError as exc:
            if self.root is not None:
                self._path(uri)  # a miss through a symlink pointing out of the root is InvalidURI, not missing
            raise self._map_error(exc, uri) from None

    def _check_opened(self, fd: int, uri: Any) -> None:
        try:
            real = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # no /proc (not Linux): resolve the path the slow way
            real = self._path(uri)
        if not self._inside(real):
            raise InvalidURI(self, uri, hint=f"paths must stay inside {self.root}")

    def prepare_writes(self) -> None:
        """A cache's root is made when it becomes a cache (a root that does not exist is unavailable, not empty)."""
        if self.root is not None:
            with contextlib.suppress(OSError):
                os.makedirs(self.root, exist_ok=True)

    def put(self, uri: Any, data: bytes) -> None:
        path = self._path(uri)
        if path == self.root:  # its temp file would be created outside the root
            raise InvalidURI(self, uri, hint="a path to a file inside the root")
        folder = os.path.dirname(path)
        try:
            os.makedirs(folder, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".bitstore-", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as f:
                    os.fchmod(f.fileno(), _FILE_MODE)  # mkstemp makes 0600; blobs get the usual umask-based mode
                    f.write(data)
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as exc:
            raise self._map_error(exc, uri, writing=True) from None

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


def _read_to_end(fd: int, size: int) -> bytes:
    """The file's bytes: one ``read`` when it still has the ``size`` it was stat'ed with (asking for one byte
    more shows the end of the file), else reads to the end (a file that changed, or one larger than a single
    read returns)."""
    data = os.read(fd, size + 1)
    if len(data) == size:
        return data
    parts = [data]
    while chunk := os.read(fd, 1 << 20):
        parts.append(chunk)
    return b"".join(parts)
