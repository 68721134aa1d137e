"""``Composite``: ordered tiers, first hit wins, hits from expensive tiers written back to a cache."""
from __future__ import annotations

import io
import logging
from collections.abc import Callable
from html import escape
from typing import IO, Any, TypeVar

from ._logging import Counter, cause_of, log_once
from ._views import blob
from .errors import (
    FetchFailed,
    InvalidDataFound,
    NotFoundInStore,
    StoreNotAvailable,
    store_label,
)
from .store import Store

__all__ = ["Composite"]

logger = logging.getLogger(__name__)
T = TypeVar("T")


class Composite(Store):
    """Ordered tiers of stores answering as one.

    ``get`` tries, in order, the sources that accept the uri; the first hit wins. A hit from a source
    appended with ``cache_result`` true is written to the cache tier before ``get`` returns. ``get``
    raises ``NotFoundInStore`` only when every tier asked (cache tiers included) answered "not found",
    else ``FetchFailed``.
    """

    def __init__(self, *, name: str | None = None):
        super().__init__(name=name)
        self.sources: list[Store] = []
        self.cache: Store | None = None
        self._tier_names: list[str] = []
        self._write_back: list[bool] = []
        self._cache_read_flags: list[bool] = []
        self.cache_writes = Counter()
        self.cache_write_failures = Counter()
        self.cache_read_failures = Counter()

    # --- building ------------------------------------------------------------------------------
    @property
    def cache_back(self) -> set[int]:
        """Ids of the sources whose hits are written back (as in the original library)."""
        return {id(s) for s, wb in zip(self.sources, self._write_back) if wb}

    @property
    def tier_names(self) -> list[str]:
        """The unique name of each source, in order (what ``FetchResult.source`` reports)."""
        return list(self._tier_names)

    def _unique_name(self, store: Store) -> str:
        base = store_label(store)
        name, n = base, 2
        while name in self._tier_names:
            name, n = f"{base}#{n}", n + 1
        return name

    def _add(self, store: Store, write_back: bool, is_cache: bool) -> None:
        if not callable(getattr(store, "get", None)) or not callable(getattr(store, "is_valid", None)):
            raise TypeError(f"a tier must be a Store (with is_valid and get), not {type(store).__name__}")
        self._tier_names.append(self._unique_name(store))
        self.sources.append(store)
        self._write_back.append(write_back)
        self._cache_read_flags.append(is_cache)

    def append_source(self, source: Store, cache_result: bool | None = None) -> Composite:
        """Add a source after the existing ones. ``cache_result=None``: the source's default
        (``True`` for API sources, ``False`` otherwise)."""
        if cache_result is None:
            cache_result = bool(getattr(source, "DEFAULT_CACHE_RESULT", False))
        self._add(source, bool(cache_result), is_cache=False)
        return self

    append_store = append_source

    def append_cache(self, cache: Store, read: bool = True) -> Composite:
        """Set the write-back target; with ``read=True`` it is also read at this position."""
        if self.cache is not None:
            logger.warning("replacing configured cache %s with %s", store_label(self.cache), store_label(cache))
        if read:
            self._add(cache, False, is_cache=True)
        self.cache = cache
        prepare = getattr(cache, "prepare_writes", None)
        if callable(prepare):
            prepare()
        return self

    # --- reading -------------------------------------------------------------------------------
    def is_valid(self, uri: Any) -> bool:
        return any(_accepts(store, uri) for store in self.sources)

    def get(self, uri: Any) -> bytes:
        return self._fetch(uri)[0]

    def _fetch(self, uri: Any) -> tuple[bytes, str, bool | None]:
        self._check_valid(uri)
        failures: list[str] = []
        corrupt: list[str] = []
        for store, name, write_back, is_cache in zip(
            self.sources, self._tier_names, self._write_back, self._cache_read_flags
        ):
            if not _accepts(store, uri):
                continue
            try:
                data = store.get(uri)
            except InvalidDataFound as exc:
                corrupt.append(f"{name}: {exc}")
                continue
            except NotFoundInStore:
                continue
            except Exception as exc:  # StoreNotAvailable, FetchFailed, or any error from a user's store
                if is_cache:
                    self.cache_read_failures.add()
                    log_once(logger, logging.WARNING, f"cache-read:{name}", cause_of(exc),
                             f"cache tier {name} failed a read; trying the next tiers: {cause_of(exc)}")
                failures.append(_describe(name, exc))
                continue
            if not isinstance(data, (bytes, bytearray, memoryview)):
                failures.append(f"{name}: returned {type(data).__name__}, not bytes")
                continue
            data = blob(data)
            cached = None
            if write_back and self.cache is not None and store is not self.cache:
                data = bytes(data)  # a view never reaches a cache's put
                cached = self._write_to_cache(data, uri)
            return data, name, cached
        if failures:
            raise FetchFailed(self, uri, "; ".join(failures + corrupt))
        raise NotFoundInStore(self, uri, "; ".join(corrupt) or None)

    # --- inspect and stream (tiers asked in order, like ``get``, but nothing written back) ----------------
    def head(self, uri: Any) -> int:
        return self._locate(uri)[0]

    def _locate(self, uri: Any) -> tuple[int, str]:
        """``(size, tier)`` from the first tier that has the blob, by each tier's ``head`` (no body read)."""
        return self._first_tier(uri, lambda store, key: store.head(key))

    def open(self, uri: Any) -> IO[bytes]:
        """The blob from the first tier that has it, as that tier's file object (streamed). A hit from a tier whose
        hits are written back to the cache is read whole, written back as ``get`` does, and served from memory."""
        write_back = self.cache_back if self.cache is not None else set()

        def open_tier(store: Store, key: Any) -> IO[bytes]:
            if id(store) not in write_back or store is self.cache:
                return store.open(key)
            data = store.get(key)
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise TypeError(f"returned {type(data).__name__}, not bytes")
            data = bytes(data)
            self._write_to_cache(data, key)
            return io.BytesIO(data)

        return self._first_tier(uri, open_tier)[0]

    def _exists_for_put(self, key: Any) -> bool:
        if self.cache is None:
            raise NotImplementedError(f"{type(self).__name__} has no cache tier to put into")
        try:
            self.cache.head(self.canonical_key(key))
        except NotFoundInStore:
            return False
        return True

    def _first_tier(self, uri: Any, call: Callable[[Store, Any], T]) -> tuple[T, str]:
        """``call(tier, uri)`` on the tiers that accept ``uri``, in order, until one answers; missing and failed
        as for ``get``: ``NotFoundInStore`` only when every tier said "not found", else ``FetchFailed``."""
        self._check_valid(uri)
        failures: list[str] = []
        for store, name in zip(self.sources, self.tier_names):
            if not _accepts(store, uri):
                continue
            try:
                return call(store, uri), name
            except NotFoundInStore:
                continue
            except Exception as exc:  # StoreNotAvailable, FetchFailed, or any error from a user's store
                if store is self.cache:
                    self.cache_read_failures.add()
                    log_once(logger, logging.WARNING, f"cache-read:{name}", cause_of(exc),
                             f"cache tier {name} failed a read; trying the next tiers: {cause_of(exc)}")
                failures.append(_describe(name, exc))
        if failures:
            raise FetchFailed(self, uri, "; ".join(failures))
        raise NotFoundInStore(self, uri)

    # --- writing -------------------------------------------------------------------------------
    def _write_to_cache(self, data: bytes, uri: Any, put: Callable[[Any, bytes], Any] | None = None) -> bool:
        """Write a hit to the cache tier (with ``put``, else its ``put``); a failure is counted and logged once
        per cause, never raised."""
        try:
            stored = (put or self.cache.put)(uri, data)
        except Exception as exc:
            stored = False
            log_once(logger, logging.WARNING, f"cache-write:{store_label(self.cache)}", cause_of(exc),
                     f"cache write-back to {store_label(self.cache)} failed: {cause_of(exc)}")
        if stored is False:
            self.cache_write_failures.add()
            return False
        self.cache_writes.add()
        return True

    def put(self, uri: Any, data: bytes) -> Any:
        """Write to the cache tier (the composite's writable tier)."""
        if self.cache is None:
            return super().put(uri, data)  # "<Class> does not implement the 'put' method", as the original
        self._check_valid(uri)
        return self.cache.put(uri, data)

    def __repr__(self) -> str:
        tiers = ", ".join(
            f"{n}{' (cache)' if c else ''}{' -> cache' if w else ''}"
            for n, w, c in zip(self._tier_names, self._write_back, self._cache_read_flags)
        )
        return f"<{type(self).__name__} {self.name!r}: [{tiers}]>"

    def _repr_html_(self) -> str:
        """The tiers as a table, for Jupyter (names and classes only, like ``repr``: never a secret)."""
        rows = "".join(
            f"<tr><td>{i}</td><td>{escape(name)}</td><td>{escape(_kind(store))}</td>"
            f"<td>{'cache' if is_cache else 'source'}</td><td>{'yes' if write_back else ''}</td></tr>"
            for i, (store, name, write_back, is_cache) in enumerate(
                zip(self.sources, self._tier_names, self._write_back, self._cache_read_flags), 1)
        )
        target = "none" if self.cache is None else escape(store_label(self.cache))
        return (
            f"<table><caption>{escape(type(self).__name__)} {escape(self.name)!r}, write-back to: {target}</caption>"
            "<thead><tr><th>#</th><th>tier</th><th>class</th><th>role</th><th>hits cached</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>"
        )


def _accepts(store: Any, uri: Any) -> bool:
    try:
        return bool(store.accepts(uri) if isinstance(store, Store) else store.is_valid(uri))
    except Exception:
        return False


def _kind(store: Any) -> str:
    base = getattr(store, "base_store", None)
    return type(store).__name__ + (f" over {type(base).__name__}" if base is not None else "")


def _describe(name: str, exc: BaseException) -> str:
    if isinstance(exc, (FetchFailed, StoreNotAvailable)):
        return f"{name}: {exc}"
    return f"{name}: {cause_of(exc)}"
