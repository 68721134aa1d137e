"""``RangeReader``: a blob in a bucket as a seekable binary file, read by ranged GETs (never held whole).

Each ``readinto`` asks for one range (the caller's buffer, at most the bytes left), retried on its own by the
store's ``RetryPolicy``, so a long download that hits a reset resumes from where it was, not from byte 0.
Wrapped in ``io.BufferedReader`` by ``open``, small reads share one ranged GET of ``CHUNK`` bytes.
"""
from __future__ import annotations

import io
from collections.abc import Callable

__all__ = ["RangeReader", "CHUNK"]

#: Bytes asked for per ranged GET by ``open``'s buffer (a ``read(n)`` of more asks for ``n`` at once).
CHUNK = 1024 * 1024


class RangeReader(io.RawIOBase):
    """A read-only, seekable file of ``size`` bytes; ``read_range(start, stop)`` returns bytes ``[start, stop)``."""

    def __init__(self, read_range: Callable[[int, int], bytes], size: int, name: str):
        super().__init__()
        self._read_range, self.size, self.name, self._pos = read_range, size, name, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        self._checkClosed()
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._checkClosed()
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}.get(whence)
        if base is None:
            raise ValueError(f"invalid whence ({whence!r})")
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer) -> int:
        self._checkClosed()
        view = memoryview(buffer).cast("B")
        n = min(len(view), self.size - self._pos)
        if n <= 0:
            return 0
        data = self._read_range(self._pos, self._pos + n)
        view[:n] = data
        self._pos += n
        return n

    def __repr__(self) -> str:
        return f"<RangeReader {self.name!r} {self.size:,} bytes>"
