"""``Store``, the abstract base every store derives from (``FetchResult``, one answer of ``get_many``, is in
``bitstore.ground.results``, and importable from here too)."""
from __future__ import annotations

import io
from abc import ABC, abstractmethod
from collections.abc import AsyncIterable, AsyncIterator, Callable, Hashable, Iterable, Iterator
from typing import IO, Any

from ..engine.routes import CompositeRoute, Route, replay
from ..ground.errors import (
    BitstoreError,
    InvalidURI,
    NotFoundInStore,
    short,
)
from ..ground.results import FetchResult, Status
from ..ground.stats import Usage
from ..ground.views import blob
from .bulk import BlobInfo, PutResult, put_many, stat_many, stat_one
from .listed import Listed

__all__ = ["Store", "FetchResult", "Status", "DEFAULT_MAX_BYTES_IN_FLIGHT"]

DEFAULT_MAX_BYTES_IN_FLIGHT = 256 * 1024 * 1024


class Store(ABC):
    """A place blobs are read from (and optionally written to), addressed by a URI or key.

    Subclasses implement ``is_valid`` and ``get``; ``put`` is optional. Everything else (``name``,
    ``get_many``) works for any subclass, including one that never calls ``Store.__init__``.
    """

    URI_HINT: str | None = None
    #: Whether a ``Composite`` writes this source's hits back to its cache when ``cache_result=None``.
    DEFAULT_CACHE_RESULT: bool = False

    def __init__(self, *, name: str | None = None):
        if name is not None:
            self.name = name

    @abstractmethod
    def is_valid(self, uri: Any) -> bool:
        """Whether this store accepts ``uri``. Must return False (not raise) for non-string input."""

    @abstractmethod
    def get(self, uri: Any) -> bytes:
        """The blob's bytes; ``NotFoundInStore`` when absent, ``InvalidURI`` for a bad uri."""

    def put(self, uri: Any, data: bytes) -> Any:
        raise NotImplementedError(f"{self.__class__.__name__} does not implement the 'put' method")

    def prepare_writes(self) -> None:  # noqa: B027 - a hook with nothing to do by default
        """Called when the store becomes a composite's cache: create what its writes need (a local cache's root
        folder), so an empty cache answers "not found" rather than "unavailable". The default does nothing."""

    def _check_valid(self, uri: Any) -> None:
        if not self.is_valid(uri):
            raise InvalidURI(self, uri, hint=self.URI_HINT)

    # --- naming -------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """A readable name used in metrics, provenance and messages (never holds secrets)."""
        return self.__dict__.get("_name") or self._default_name()

    @name.setter
    def name(self, value: str) -> None:
        if not isinstance(value, str) or not value:
            raise TypeError("a store name must be a non-empty string")
        self.__dict__["_name"] = value

    def _default_name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    # --- keys and single fetches -----------------------------------------------------------------
    def accepts(self, key: Any) -> bool:
        """``is_valid`` that never raises: a store whose ``is_valid`` chokes on a key does not accept it."""
        try:
            return bool(self.is_valid(key))
        except Exception:
            return False

    def canonical_key(self, key: Any) -> Hashable:
        """The form under which two keys name the same blob (duplicates in a batch are fetched once)."""
        return key

    def _accepted_canonical(self, key: Any) -> tuple[bool, Any]:
        """``(accepts(key), canonical_key(key))``, the key itself when ``canonical_key`` fails (the gateway's key
        check; a hash-keyed composite answers both with one match)."""
        if not self.accepts(key):
            return False, None
        try:
            return True, self.canonical_key(key)
        except Exception:  # noqa: BLE001 - the key itself then
            return True, key

    # --- the engine's protocol (``bitstore.engine.routes``) ---------------------------------------------
    def async_route(self) -> Route | CompositeRoute | None:
        """How the event-loop engine may fetch this store's keys, or None (the default: on threads, through
        ``get``). A store with an async raw GET returns a ``Route``; a store that overrides ``_fetch`` or
        ``_result`` must return None (the loop would bypass its code)."""
        return None

    def usage(self) -> Usage | None:
        """For a store bounded in size (``max_bytes``): bytes used, the bound and evictions; None otherwise."""
        return None

    def reads_on_loop(self) -> bool:
        """Whether a read of this store is cheap enough to make on the event loop itself (a local syscall or a
        dict lookup), when it is a composite's tier. The default, False, reads it on a thread."""
        return False

    def hits_on_loop(self) -> bool:
        """Whether a read that finds the blob is cheap enough for the event loop even where ``reads_on_loop`` says
        no (a bounded local cache: its read records the use in memory, written to its index aside); a server's
        direct answer asks this of a first tier. The default: ``reads_on_loop()``."""
        return self.reads_on_loop()

    def lists_remotely(self) -> bool:
        """Whether listing this store waits on a remote service (a cloud bucket): ``replicate`` then reads its
        listing on a thread of its own, ahead of the comparison. The default, False, lists on the caller's thread (a
        local folder's listing is CPU work that another thread would only slow)."""
        return False

    def keys_on_loop(self) -> bool:
        """Whether ``accepts`` and ``canonical_key`` may run on a caller's event loop: they are bitstore's own (a
        pattern match, no I/O). A user's own ``is_valid`` may do anything, so its keys are checked on a thread."""
        cls = type(self)
        return all(_ours(getattr(cls, name)) for name in ("is_valid", "accepts", "canonical_key"))

    def _fetch(self, uri: Any) -> tuple[bytes, str, bool | None]:
        """Fetch one blob: ``(data, name of the tier that served it, cached)``. Composites override it."""
        return self.get(uri), self.name, None

    def fetch(self, key: Any) -> FetchResult:
        """Fetch one key into a ``FetchResult``; never raises for a bad or missing key."""
        if not self.accepts(key):
            return FetchResult(key, None, "invalid", error=str(InvalidURI(self, key, hint=self.URI_HINT)))
        return self._result(key)

    def _result(self, key: Any) -> FetchResult:
        """``fetch`` for a key already known to be accepted (the batch engine checks keys as it reads them)."""
        return self._answer(key, self._fetch)

    def _answer(self, key: Any, fetch: Callable[[Any], tuple[bytes, str, bool | None]]) -> FetchResult:
        """``fetch(key)`` (``_fetch`` or the async engine's equivalent) as a ``FetchResult``: the one place that
        turns an outcome into a status."""
        try:
            data, source, cached = fetch(key)
        except InvalidURI as exc:
            return FetchResult(key, None, "invalid", error=str(exc))
        except NotFoundInStore as exc:
            return FetchResult(key, None, "missing", error=str(exc))
        except BitstoreError as exc:  # FetchFailed, StoreNotAvailable, BlobTooLarge...
            return FetchResult(key, None, "failed", error=str(exc))
        except Exception as exc:  # a user's store: any other error is that store failing
            return FetchResult(key, None, "failed", error=f"{type(exc).__name__}: {short(str(exc), 1000)}")
        if not isinstance(data, (bytes, bytearray, memoryview)):
            return FetchResult(key, None, "failed", error=f"{self.name} returned {type(data).__name__}, not bytes")
        return FetchResult(key, blob(data), "found", source=source, cached=cached)

    def _answer_outcome(self, key: Any, outcome: Any) -> FetchResult:
        """``_answer`` of an outcome already had (the event-loop engines': a ``_fetch`` tuple, or the exception it
        raised): a found blob's ``bytes`` go straight into their result, as ``_answer`` puts them there."""
        if (type(outcome) is tuple and len(outcome) == 3 and type(outcome[0]) is bytes
                and type(self)._answer is Store._answer):
            return FetchResult(key, outcome[0], "found", outcome[1], None, outcome[2])
        return self._answer(key, replay(outcome))

    # --- batches ---------------------------------------------------------------------------------
    def get_many(
        self,
        keys: Iterable[Any],
        *,
        max_workers: int = 64,
        max_bytes_in_flight: int = DEFAULT_MAX_BYTES_IN_FLIGHT,
        progress: bool | None = None,
        total: int | None = None,
        views: bool = False,
        engine: str = "auto",
        processes: int | None = None,
    ) -> Iterator[FetchResult]:
        """Fetch ``keys`` concurrently; one ``FetchResult`` per key, in input order. See ``bitstore.engine.batch``.

        ``views=True``: a large blob (256 KiB or more) that a transport holds in a buffer of its own (the
        ``fast`` one) comes as a read-only ``memoryview`` of that buffer instead of a ``bytes`` copy of it.
        ``engine``: ``"threads"`` (one thread per request in flight), ``"async"`` (requests of the fast transport
        multiplexed on one event loop; anything else on threads) or ``"auto"`` (threads; for a store on
        the fast transport, or a composite with such a tier, the loop above ``batch.ASYNC_MIN_WORKERS`` in flight).
        ``processes=N``: spread the keys over N worker processes (spawned; the store is pickled to them), each
        running ``max_workers`` requests; results still in input order."""
        from ..engine.batch import fetch_many

        return fetch_many(
            self, keys, max_workers=max_workers, max_bytes_in_flight=max_bytes_in_flight,
            progress=progress, total=total, views=views, engine=engine, processes=processes,
        )

    # --- async (``await`` and ``async for``, on the caller's loop: ``bitstore.engine.onloop``) -------------
    async def aget(self, key: Any) -> bytes:
        """``get`` without blocking the running event loop: the same bytes, the same exceptions. Cloud tiers are
        read on the loop (obstore's async API); anything else on a bounded thread pool."""
        from ..engine.onloop import aget

        return await aget(self, key)

    async def astat(self, key: Any) -> BlobInfo:
        """``stat`` on a thread, without blocking the running event loop."""
        from ..engine.onloop import in_thread

        return await in_thread(self.stat, key)

    async def aput(self, key: Any, data: bytes) -> Any:
        """``put`` on a thread, without blocking the running event loop: the same answer, the same exceptions."""
        from ..engine.onloop import in_thread

        return await in_thread(self.put, key, data)

    def aget_many(
        self,
        keys: Iterable[Any] | AsyncIterable[Any],
        *,
        max_in_flight: int = 64,
        max_bytes_in_flight: int = DEFAULT_MAX_BYTES_IN_FLIGHT,
        views: bool = False,
    ) -> AsyncIterator[FetchResult]:
        """``get_many`` for ``async for``, on the running event loop: one ``FetchResult`` per key, in input order,
        the same statuses; ``keys`` an iterable or an async iterable; at most ``max_in_flight`` fetches at once.
        Leaving the loop (``break``, cancellation) cancels what is in flight. See ``bitstore.engine.onloop``."""
        from ..engine.onloop import AsyncFetchMany

        return AsyncFetchMany(self, keys, max_in_flight=max_in_flight, max_bytes_in_flight=max_bytes_in_flight,
                              views=views)

    # --- inspect, ingest, stream ---------------------------------------------------------------------
    def head(self, uri: Any) -> int:
        """The blob's size in bytes, without reading it where the store can (HEAD, ``stat``); raises as ``get``.

        The default, for a store that defines only ``get``, reads the blob and returns its length."""
        return len(self.get(uri))

    def _locate(self, uri: Any) -> tuple[int, str]:
        """``(size, name of the tier that has it)``; composites override it to ask their tiers in order."""
        return self.head(uri), self.name

    def stat(self, key: Any) -> BlobInfo:
        """Which tier has ``key``'s blob and its size, without downloading it; never raises for a bad key."""
        if not self.accepts(key):
            return BlobInfo(key, "invalid", error=str(InvalidURI(self, key, hint=self.URI_HINT)))
        return stat_one(self, key)

    def stat_many(self, keys: Iterable[Any], *, max_workers: int = 64, progress: bool | None = None,
                  total: int | None = None) -> Iterator[BlobInfo]:
        """``stat`` of every key, concurrently through the batch engine: one ``BlobInfo`` per key, in order."""
        return stat_many(self, keys, max_workers=max_workers, progress=progress, total=total)

    def key_for(self, data: bytes) -> Any:
        """The key a blob is stored under when it is derived from its bytes (SHA1 stores); None otherwise."""
        return None

    def _exists_for_put(self, key: Any) -> bool:
        """Whether ``put(key, ...)`` would find the blob already there (composites ask their write target)."""
        try:
            self.head(key)
        except NotFoundInStore:
            return False
        return True

    def put_many(self, items: Iterable[Any], *, max_workers: int = 16, skip_existing: bool = True,
                 progress: bool | None = None, total: int | None = None) -> Iterator[PutResult]:
        """Store many blobs concurrently: ``items`` are ``(key, bytes)`` pairs or file paths (a SHA1 store derives
        a file's key from its bytes, and checks a pair's key against them). With ``skip_existing``, a blob
        already there is not written again (status ``skipped``), nor is a second item with the same key in one call.
        One ``PutResult`` per item, in order."""
        return put_many(self, items, max_workers=max_workers, skip_existing=skip_existing, progress=progress,
                        total=total)

    # --- listing and deleting (``bitstore.core.listing``; raw stores implement ``list_names``) ---------------
    def list_names(self, prefix: str, *, start_after: str | None = None) -> Iterator[Listed]:
        """The names under ``prefix`` (a uri prefix, e.g. ``s3://bucket/blobs/``), relative to it, ascending,
        read lazily page by page: ``Listed(name, size)`` (``size`` None when the listing does not say it). Only
        names directly under it (no ``/`` in the rest); only those after ``start_after`` (relative too). A
        failure raises as ``get`` does (``StoreNotAvailable``, ``FetchFailed``), never a short listing. The
        default: this store cannot list."""
        raise NotImplementedError(f"{self.name} cannot list its blobs ({type(self).__name__} has no 'list_names')")

    def iter_keys(self, *, start_after: Any = None) -> Iterator[Any]:
        """The keys this store holds, canonical and ascending, read lazily (keyed stores and composites list;
        the default cannot)."""
        raise NotImplementedError(f"{self.name} cannot list its keys ({type(self).__name__} has no listing)")

    def delete(self, uri: Any) -> None:
        """Remove the blob (a blob that is not there is fine: deleting is idempotent). The default cannot."""
        raise NotImplementedError(f"{self.__class__.__name__} does not implement the 'delete' method")

    def open(self, key: Any) -> IO[bytes]:
        """The blob as a binary file object (read, seek, tell). Backends stream it (range reads, a local file),
        so a blob larger than memory is never held whole; this default, for a store that defines only
        ``get``, holds the blob in memory."""
        return io.BytesIO(self.get(key))


def _ours(function: Any) -> bool:
    """Whether ``function`` is bitstore's own code (not a user's override)."""
    return getattr(function, "__module__", "").startswith("bitstore.")


