"""``Composite``: ordered tiers, first hit wins, hits from expensive tiers written back to a cache."""
from __future__ import annotations

import io
import logging
import threading
from collections.abc import Callable, Generator, Iterator
from functools import partial
from html import escape
from typing import IO, Any, TypeVar

from ..engine.routes import CompositeRoute, OffLoop, Route, TierGet, WriteBack
from ..ground.errors import (
    FetchFailed,
    InvalidDataFound,
    InvalidURI,
    NotFoundInStore,
    StoreNotAvailable,
    store_label,
)
from ..ground.limits import SYSTEM_CLOCK, Clock, Limits
from ..ground.log import Counter, cause_of, log_once
from ..ground.sizes import human_bytes
from ..ground.stats import Stats, TierSnapshot, TierStats
from ..ground.views import blob
from .listed import Listed
from .missing import DEFAULT_MAX_ENTRIES, MissingCache
from .store import Store
from .tier import Tier, usage_of

__all__ = ["Composite"]

logger = logging.getLogger(__name__)
T = TypeVar("T")


class Composite(Store):
    """Ordered tiers of stores answering as one.

    ``get`` tries, in order, the sources that accept the uri; the first hit wins. A hit from a source
    appended with ``cache_result`` true is written to the cache tier before ``get`` returns. ``get``
    raises ``NotFoundInStore`` only when every tier asked (cache tiers included) answered "not found",
    else ``FetchFailed``.

    ``missing_ttl``: seconds for which a key every tier answered "not found" is answered missing from memory
    (at most ``missing_max_entries`` keys); ``clock`` is where limits and that memory read time.
    """

    def __init__(self, *, name: str | None = None, missing_ttl: float | None = None,
                 missing_max_entries: int = DEFAULT_MAX_ENTRIES, clock: Clock = SYSTEM_CLOCK):
        super().__init__(name=name)
        self._tiers: list[Tier] = []
        self.cache: Store | None = None
        self._cache_stats = TierStats()  # the write-back target's, when it is not read as a tier
        self._clock = clock
        self._missing = None if missing_ttl is None else MissingCache(missing_ttl, missing_max_entries, clock)
        self._reported: dict[str, TierSnapshot] = {}
        self._report_lock = threading.Lock()
        self.cache_writes = Counter()
        self.cache_write_failures = Counter()
        self.cache_read_failures = Counter()

    # --- building ------------------------------------------------------------------------------
    @property
    def tiers(self) -> tuple[Tier, ...]:
        """The tier records, in order."""
        return tuple(self._tiers)

    def lists_remotely(self) -> bool:
        return any(callable(getattr(t.store, "lists_remotely", None)) and t.store.lists_remotely() for t in self._tiers)

    @property
    def sources(self) -> list[Store]:
        """The stores read, in order (a cache appended with ``read=True`` included)."""
        return [t.store for t in self._tiers]

    @property
    def cache_back(self) -> set[int]:
        """Ids of the sources whose hits are written back (as in the original library)."""
        return {id(t.store) for t in self._tiers if t.write_back}

    @property
    def tier_names(self) -> list[str]:
        """The unique name of each source, in order (what ``FetchResult.source`` reports)."""
        return [t.name for t in self._tiers]

    @property
    def missing_ttl(self) -> float | None:
        return None if self._missing is None else self._missing.ttl

    def _unique_name(self, store: Store) -> str:
        base = store_label(store)
        taken = set(self.tier_names)
        name, n = base, 2
        while name in taken:
            name, n = f"{base}#{n}", n + 1
        return name

    def _add(self, store: Store, write_back: bool, is_cache: bool, max_concurrency: int | None,
             max_rate: float | None, limit_group: str | None) -> None:
        if not callable(getattr(store, "get", None)) or not callable(getattr(store, "is_valid", None)):
            raise TypeError(f"a tier must be a Store (with is_valid and get), not {type(store).__name__}")
        limits = Limits(max_concurrency, max_rate)
        self._tiers.append(Tier(store, self._unique_name(store), write_back=write_back, is_cache=is_cache,
                                limits=limits, limit_group=limit_group, clock=self._clock))

    def append_source(self, source: Store, cache_result: bool | None = None, *, max_concurrency: int | None = None,
                      max_rate: float | None = None, limit_group: str | None = None) -> Composite:
        """Add a source after the existing ones. ``cache_result=None``: the source's default
        (``True`` for API sources, ``False`` otherwise).

        ``max_concurrency`` / ``max_rate``: at most that many calls at once / per second to this tier, per
        process, whatever the threads using it; ``limit_group`` shares those limits with every tier of the
        same group in the process (by default each tier, and its pickled copies, is its own group)."""
        if cache_result is None:
            cache_result = bool(getattr(source, "DEFAULT_CACHE_RESULT", False))
        self._add(source, bool(cache_result), False, max_concurrency, max_rate, limit_group)
        return self

    append_store = append_source

    def append_cache(self, cache: Store, read: bool = True, *, max_concurrency: int | None = None,
                     max_rate: float | None = None, limit_group: str | None = None) -> Composite:
        """Set the write-back target; with ``read=True`` it is also read at this position (limits apply
        to those reads)."""
        if self.cache is not None:
            logger.warning("replacing configured cache %s with %s", store_label(self.cache), store_label(cache))
        if read:
            self._add(cache, False, True, max_concurrency, max_rate, limit_group)
        else:
            Limits(max_concurrency, max_rate)  # the same checks, though only reads are limited
        self.cache = cache
        self._cache_stats = TierStats()
        prepare = getattr(cache, "prepare_writes", None)
        if callable(prepare):
            prepare()
        return self

    # --- reading -------------------------------------------------------------------------------
    def is_valid(self, uri: Any) -> bool:
        return any(_accepts(t.store, uri) for t in self._tiers)

    def get(self, uri: Any) -> bytes:
        return self._fetch(uri)[0]

    def _fetch(self, uri: Any) -> tuple[bytes, str, bool | None]:
        """The walk (``_walk``) driven here, on the calling thread: each tier asked by ``tier.get``, each
        write-back by ``_write_to_cache``. The async engine drives the same walk (``bitstore.engine.aio``)."""
        walk = self._walk(uri)
        return self._drive(walk, next(walk))

    def _drive(self, walk: Generator, step: Any) -> tuple[bytes, str, bool | None]:
        """``_fetch``'s driving of ``walk`` from its pending ``step`` on (``_resume`` starts it after a first tier
        that was asked directly)."""
        try:
            while True:
                if type(step) is TierGet:
                    try:
                        data = step.tier.get(step.uri)
                    except Exception as exc:  # the walk decides what a tier's error means
                        step = walk.throw(exc)
                    else:
                        step = walk.send(data)
                elif type(step) is OffLoop:
                    step = walk.send(step.call())
                else:
                    step = walk.send(self._write_to_cache(step.data, step.uri))
        except StopIteration as done:
            return done.value

    def _resume(self, uri: Any, outcome: Any) -> tuple[bytes, str, bool | None]:
        """The walk of ``uri`` (canonical, checked), its first tier's answer already in hand (bytes, or the error
        it raised; counted by the caller): the rest of the walk as ``_fetch`` drives it, so what a miss, a failure
        or a corrupt copy of the first tier means is still decided by ``_walk`` alone."""
        walk = Composite._walk(self, uri, checked=True)
        step = next(walk)
        if type(step) is not TierGet or step.tier is not self._tiers[0]:
            walk.close()
            raise RuntimeError("the walk did not start at the first tier")
        try:
            step = walk.throw(outcome) if isinstance(outcome, BaseException) else walk.send(outcome)
        except StopIteration as done:
            return done.value
        return self._drive(walk, step)

    def async_route(self) -> CompositeRoute | None:
        """A route for the event-loop engine when at least one tier's first attempts can be made on the loop: its
        walk, the ``Route`` of each such tier (a tier with per-tier limits, or whose ``get`` is overridden, is
        asked on threads; so is a nested composite) and the tiers read on the loop itself."""
        if type(self)._result is not Store._result or type(self)._fetch is not Composite._fetch:
            return None
        if type(self).is_valid is not Composite.is_valid and not _checks_on_loop(self):
            return None  # a user's own is_valid runs first in every walk: on threads
        tiers, local = {}, set()
        for tier in self.tiers:
            if tier.limited or type(tier).get is not Tier.get:
                continue
            if tier.store.reads_on_loop():
                local.add(id(tier))
                continue
            route = tier.store.async_route()
            if isinstance(route, Route):
                tiers[id(tier)] = route
        return CompositeRoute(self, tiers, frozenset(local)) if tiers else None

    def keys_on_loop(self) -> bool:
        """A composite's own ``is_valid`` asks each tier's: cheap only when every tier's is ours (a subclass's own
        check, ``Sha1Composite``'s pattern, is cheap whatever its tiers)."""
        if not super().keys_on_loop():
            return False
        return type(self).is_valid is not Composite.is_valid or all(
            isinstance(t.store, Store) and t.store.keys_on_loop() for t in self._tiers)

    def _walk(self, uri: Any, checked: bool = False) -> Generator[TierGet | WriteBack | OffLoop, Any,
                                                                  tuple[bytes, str, bool | None]]:
        """The tier walk of one fetch, whoever drives it: it yields ``TierGet(tier, uri)`` and is sent that
        tier's answer (or thrown its error), yields ``WriteBack(data, uri)`` and is sent whether the cache
        stored it, and returns ``(data, tier name, cached)`` or raises ``NotFoundInStore`` / ``FetchFailed``.
        Found, next tier, missing, failed, corrupt, the write-back and the missing-TTL memory are decided here
        only, so the thread engine (``_fetch``) and the event loop (``aio``) cannot disagree. A tier's ``is_valid``
        that is not bitstore's own (a user's, which may block) is asked through an ``OffLoop`` step. ``checked``: the
        caller has just checked ``uri`` with this composite's own ``is_valid`` (a subclass's ``_walk``)."""
        own_check = type(self).is_valid is Composite.is_valid  # any tier accepts: known by the end of the walk
        if not own_check and not checked:
            self._check_valid(uri)
        missing = self._missing
        if missing is not None and uri in missing:
            raise NotFoundInStore(self, uri, f"every tier answered \"not found\" less than {missing.ttl:g}s ago")
        failures: list[str] = []
        corrupt: list[str] = []
        accepted = False
        for tier in self._tiers:
            store = tier.store
            if not (_accepts(store, uri) if _checks_on_loop(store) else (yield OffLoop(partial(_accepts, store, uri)))):
                continue
            accepted = True
            try:
                data = yield TierGet(tier, uri)
            except InvalidDataFound as exc:
                corrupt.append(f"{tier.name}: {exc}")
                continue
            except NotFoundInStore:
                continue
            except Exception as exc:  # StoreNotAvailable, FetchFailed, or any error from a user's store
                failures.append(self._tier_failed(tier, exc))
                continue
            if not isinstance(data, (bytes, bytearray, memoryview)):
                failures.append(f"{tier.name}: returned {type(data).__name__}, not bytes")
                continue
            data = blob(data)
            cached = None
            if tier.write_back and self.cache is not None and tier.store is not self.cache:
                data = bytes(data)  # a view never reaches a cache's put
                cached = yield WriteBack(data, uri)
            return data, tier.name, cached
        if own_check and not accepted:
            raise InvalidURI(self, uri, hint=self.URI_HINT)
        if failures:
            raise FetchFailed(self, uri, "; ".join(failures + corrupt))
        if missing is not None and not corrupt:
            missing.add(uri)
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

    def iter_keys(self, *, start_after: Any = None) -> Iterator[Any]:
        """The union of the sources' keys, ascending, each once (their listings merged lazily). A source that
        cannot list raises ``NotImplementedError`` naming it: a composite's listing is never partial."""
        return (entry.name for entry in self._listed(start_after))

    def _listed(self, start_after: Any) -> Iterator[Listed]:
        from .listing import listed, merged, start_key

        after = start_key(self, start_after)
        listings = []
        for tier in self._tiers:
            try:
                listings.append(listed(tier.store, after))
            except NotImplementedError as exc:
                raise NotImplementedError(f"{self.name} cannot list its keys: its tier {tier.name} cannot "
                                          f"({exc})") from None
        return merged(listings)

    def _exists_for_put(self, key: Any) -> bool:
        if self.cache is None:
            raise NotImplementedError(f"{type(self).__name__} has no cache tier to put into")
        try:
            self.cache.head(self.canonical_key(key))
        except NotFoundInStore:
            return False
        return True

    def _tier_failed(self, tier: Tier, exc: BaseException) -> str:
        """Count and log a tier's failure (a cache tier's reads are counted apart) and describe it for the verdict."""
        if tier.is_cache:
            self.cache_read_failures.add()
            log_once(logger, logging.WARNING, f"cache-read:{tier.name}", cause_of(exc),
                     f"cache tier {tier.name} failed a read; trying the next tiers: {cause_of(exc)}")
        return _describe(tier.name, exc)

    def _first_tier(self, uri: Any, call: Callable[[Store, Any], T]) -> tuple[T, str]:
        """``call(tier, uri)`` on the tiers that accept ``uri``, in order, until one answers; missing and failed
        as for ``get``: ``NotFoundInStore`` only when every tier said "not found", else ``FetchFailed``."""
        self._check_valid(uri)
        failures: list[str] = []
        for tier in self._tiers:  # not through the tiers' limits and statistics (those count gets)
            store, name = tier.store, tier.name
            if not _accepts(store, uri):
                continue
            try:
                return call(store, uri), name
            except NotFoundInStore:
                continue
            except Exception as exc:  # StoreNotAvailable, FetchFailed, or any error from a user's store
                failures.append(self._tier_failed(tier, exc))
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
        ok = stored is not False
        (self.cache_writes if ok else self.cache_write_failures).add()
        self._target_stats().cache_write(ok)
        return ok

    def _target_stats(self) -> TierStats:
        return next((t.stats for t in self._tiers if t.store is self.cache), self._cache_stats)

    def put(self, uri: Any, data: bytes) -> Any:
        """Write to the cache tier (the composite's writable tier); the key is no longer remembered missing."""
        if self.cache is None:
            return super().put(uri, data)  # "<Class> does not implement the 'put' method", as the original
        self._check_valid(uri)
        if self._missing is not None:
            self._missing.discard(uri)
        return self.cache.put(uri, data)

    def forget_missing(self, uri: Any | None = None) -> None:
        """Drop the remembered "not found" answer for ``uri`` (every one with no argument)."""
        if self._missing is not None:
            self._missing.clear() if uri is None else self._missing.discard(self.canonical_key(uri))

    # --- statistics ----------------------------------------------------------------------------
    def stats(self) -> Stats:
        """Per-tier statistics since the composite was made (or unpickled) in this process."""
        return Stats(self._snapshots())

    def drain_stats(self) -> Stats:
        """What changed since the previous ``drain_stats`` call, for metric systems that add up increments
        (Beam counters): threads sharing this composite each get a disjoint part. ``stats()`` is unaffected."""
        with self._report_lock:
            now = self._snapshots()
            delta = [s.minus(self._reported.get(s.name)) for s in now]
            self._reported = {s.name: s for s in now}
        return Stats(delta)

    def _snapshots(self) -> list[TierSnapshot]:
        snaps = [t.snapshot() for t in self._tiers]
        if self.cache is not None and all(t.store is not self.cache for t in self._tiers):
            snaps.append(self._cache_stats.snapshot(store_label(self.cache), usage_of(self.cache)))
        return snaps

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        del state["_report_lock"]
        state["_reported"] = {}
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._report_lock = threading.Lock()

    def __repr__(self) -> str:
        tiers = ", ".join(
            f"{t.name}{' (cache)' if t.is_cache else ''}{' -> cache' if t.write_back else ''}" for t in self._tiers
        )
        return f"<{type(self).__name__} {self.name!r}: [{tiers}]>"

    def _repr_html_(self) -> str:
        """The tiers as a table, for Jupyter (names and classes only, like ``repr``: never a secret)."""
        rows = "".join(
            f"<tr><td>{i}</td><td>{escape(t.name)}</td><td>{escape(_kind(t.store))}</td>"
            f"<td>{'cache' if t.is_cache else 'source'}</td><td>{'yes' if t.write_back else ''}</td>"
            f"<td>{escape(_limits_text(t.limits, t.store))}</td></tr>"
            for i, t in enumerate(self._tiers, 1)
        )
        target = "none" if self.cache is None else escape(store_label(self.cache))
        return (
            f"<table><caption>{escape(type(self).__name__)} {escape(self.name)!r}, write-back to: {target}</caption>"
            "<thead><tr><th>#</th><th>tier</th><th>class</th><th>role</th><th>hits cached</th><th>limits</th>"
            f"</tr></thead><tbody>{rows}</tbody></table>"
        )


_CHEAP_CHECKS: dict[type, bool] = {}


def _checks_on_loop(store: Any) -> bool:
    """``Store.keys_on_loop`` for a tier, by its class (asked per key on the walk): bitstore's own key checks run
    inline, on the event loop too; a user's may block, and a nested composite's asks its tiers, so not those."""
    cls = type(store)
    cheap = _CHEAP_CHECKS.get(cls)
    if cheap is None:
        cheap = _CHEAP_CHECKS[cls] = (isinstance(store, Store) and cls.is_valid is not Composite.is_valid
                                      and Store.keys_on_loop(store))
    return cheap


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


def _limits_text(limits: Limits | None, store: Any = None) -> str:
    """The tier's limits, and its bound in bytes when it has one (no I/O: ``repr`` never reads an index)."""
    parts = [] if limits is None else [f"{limits.max_concurrency} at once" if limits.max_concurrency else "",
                                       f"{limits.max_rate:g}/s" if limits.max_rate else ""]
    bound = getattr(getattr(store, "base_store", store), "max_bytes", None)
    if isinstance(bound, int) and not isinstance(bound, bool):
        parts.append(f"at most {human_bytes(bound)}")
    return ", ".join(p for p in parts if p)
