"""``MemoryRaw``: an in-process store for ``mem://`` URIs, optionally bounded with LRU eviction."""
from __future__ import annotations

import io
import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from ..core.listed import Listed
from ..core.store import Store
from ..ground.errors import BlobTooLarge, NotFoundInStore
from ..ground.fields import COMMON, MAX_BYTES, Build, Field, TierType
from ..ground.sizes import byte_size
from ..ground.stats import Usage

__all__ = ["MemoryRaw"]


class MemoryRaw(Store):
    """Blobs held in memory under ``mem://<anything>``. With ``max_bytes``, the least recently used
    blobs are evicted to stay within it; a single blob larger than ``max_bytes`` is refused. ``max_bytes`` is an
    int or a string with a unit (``"512MiB"``)."""

    URI_HINT = "mem://<key>"
    KIND = "mem"

    def __init__(self, max_bytes: int | str | None = None, *, name: str | None = None):
        super().__init__(name=name)
        if max_bytes is not None:
            try:
                max_bytes = byte_size(max_bytes)
            except ValueError as exc:
                raise ValueError(f"max_bytes {exc}") from None
        self.max_bytes = max_bytes
        self._blobs: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        self.evictions = 0
        self._lock = threading.Lock()

    def _default_name(self) -> str:
        return "mem"

    def is_valid(self, uri: Any) -> bool:
        return isinstance(uri, str) and uri.startswith("mem://") and len(uri) > len("mem://")

    def reads_on_loop(self) -> bool:
        """A read is a syscall (a dict lookup) away: the event loop makes it itself. A subclass may do anything
        in ``get``, so only this class says so."""
        return type(self) is MemoryRaw

    def get(self, uri: Any) -> bytes:
        self._check_valid(uri)
        with self._lock:
            try:
                data = self._blobs[uri]
            except KeyError:
                raise NotFoundInStore(self, uri) from None
            self._blobs.move_to_end(uri)
            return data

    def put(self, uri: Any, data: bytes) -> None:
        self._check_valid(uri)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data must be bytes, not {type(data).__name__}")
        data = bytes(data)
        if self.max_bytes is not None and len(data) > self.max_bytes:
            raise BlobTooLarge(self, uri, len(data), self.max_bytes)
        with self._lock:
            old = self._blobs.pop(uri, None)
            if old is not None:
                self._size -= len(old)
            self._blobs[uri] = data
            self._size += len(data)
            while self.max_bytes is not None and self._size > self.max_bytes:
                _, evicted = self._blobs.popitem(last=False)
                self._size -= len(evicted)
                self.evictions += 1

    def head(self, uri: Any) -> int:
        self._check_valid(uri)
        with self._lock:
            try:
                return len(self._blobs[uri])
            except KeyError:
                raise NotFoundInStore(self, uri) from None

    def open(self, uri: Any) -> io.BytesIO:
        """A file object over the blob (already in memory; no copy is made until it is read)."""
        return io.BytesIO(self.get(uri))

    def delete(self, uri: Any) -> None:
        """Remove the blob; one that is not there is fine."""
        self._check_valid(uri)
        with self._lock:
            old = self._blobs.pop(uri, None)
            if old is not None:
                self._size -= len(old)

    def list_names(self, prefix: str, *, start_after: str | None = None) -> Iterator[Listed]:
        """The names under ``prefix`` (a snapshot taken now), ascending, with their sizes."""
        with self._lock:
            found = [(uri[len(prefix):], len(data)) for uri, data in self._blobs.items() if uri.startswith(prefix)]
        found.sort()
        for name, size in found:
            if name and "/" not in name and (start_after is None or name > start_after):
                yield Listed(name, size)

    def __contains__(self, uri: Any) -> bool:
        with self._lock:
            return uri in self._blobs

    def __len__(self) -> int:
        return len(self._blobs)

    def usage(self) -> Usage | None:
        """With ``max_bytes``: the bytes held, the bound and the evictions made."""
        return None if self.max_bytes is None else Usage(self._size, self.max_bytes, self.evictions)

    @property
    def nbytes(self) -> int:
        """Bytes currently held."""
        return self._size

    def __getstate__(self):
        state = self.__dict__.copy()
        del state["_lock"]
        with self._lock:
            state["_blobs"] = OrderedDict(self._blobs)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()


# --- the memory tier of a store spec (``bitstore.spec`` validates and builds through this declaration) ----
def _build_tier(tier: dict, build: Build) -> MemoryRaw:
    return MemoryRaw(tier.get("max_bytes"), **build.raw_name(tier))


TIER = TierType("memory", (
    Field("prefix", str, "`mem://...` (hash keys)", "mem://blobs/", default="mem://blobs/"),
    *COMMON,
    MAX_BYTES,
), _build_tier)
