"""The async side of the batch engine: first attempts of the fast transport multiplexed on one event loop.

A store the engine can route (``route_of``): a ``CloudRaw`` whose fast transport is usable in this process, or a
``Sha1Store`` over one, neither with its reading methods overridden. For each key, the engine's loop
(``bitstore._loop``) makes the plain first attempt of the raw GET with obstore's async API. Only two outcomes are
answered from there: a success (bytes, or a view under ``views=True``, checked as ``_Transport.get`` checks
them) and a ``NotFoundInStore`` the one error map (``obstore_error``) drew from the service's own error code.
Every other outcome (a transient error, a 404 that does not say what is missing, a key obstore refuses,
throttling, a deadline, a panic, a blob too large) goes to the store's own synchronous path on a thread, which
has the retries, deadlines and settling; so does every key while this process's fast transport is known not to
reach the endpoint's objects. Answers become ``FetchResult``s through the stores' own code (``Store._answer``,
``Sha1Store._read``), so both engines say the same thing about the same outcome.

Composites are not routed yet: they run on threads whole. The hook for them is ``route_of``: a composite
route would walk its tiers in order here, with async first attempts for tiers that are routable raw stores and
threads for the rest (and for tiers with a per-tier concurrency limit, which is a blocking limiter).
"""
from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from ._views import allow, restore
from .backends._errors import obstore_error
from .errors import NotFoundInStore

if TYPE_CHECKING:
    from .store import FetchResult, Store

__all__ = ["Route", "route_of", "AsyncDispatcher"]


class Route:
    """How one store's keys reach a raw cloud store: ``uri_of(key)`` and ``read(key, base_get)`` (the store's own
    reading code around the raw ``get``)."""

    __slots__ = ("store", "raw", "fast", "uri_of", "read")

    def __init__(self, store: Store, raw: Any, fast: Any, uri_of: Callable[[Any], str],
                 read: Callable[[Any, Callable[[str], Any]], Any]):
        self.store, self.raw, self.fast, self.uri_of, self.read = store, raw, fast, uri_of, read

    def usable(self) -> bool:
        """False once this process found the fast transport cannot address the endpoint's objects."""
        return self.raw._facts.fast_reaches_objects is not False


def _routable_raw(store: Any) -> Any:
    """The fast transport of a plain ``CloudRaw`` usable in this process, else None."""
    from .backends import _fast
    from .backends._cloud import CloudRaw
    from .store import Store

    if not isinstance(store, CloudRaw) or type(store).get is not CloudRaw.get:
        return None
    if type(store)._fetch is not Store._fetch or type(store)._result is not Store._result:
        return None
    if not _fast.usable() or store._facts.fast_reaches_objects is False:
        return None
    try:
        return store._fast.get()  # None on the SDK transport; may build the client
    except Exception:  # noqa: BLE001 - the store's own path will say what is wrong, key by key
        return None


def route_of(store: Store) -> Route | None:
    """The async route for ``store``'s keys, or None when its keys go on threads."""
    from .sha1 import Sha1Store
    from .store import Store

    if type(store)._result is not Store._result or type(store)._fetch is not Store._fetch:
        return None
    if isinstance(store, Sha1Store):
        if type(store).get is not Sha1Store.get or type(store)._read is not Sha1Store._read:
            return None
        fast = _routable_raw(store.base_store)
        return None if fast is None else Route(store, store.base_store, fast, store._uri, store._read)
    fast = _routable_raw(store)
    return None if fast is None else Route(store, store, fast, lambda key: key, lambda key, base_get: base_get(key))


_QUEUED, _RUNNING, _DONE, _CANCELLED = range(4)


class _Answer:
    """One fetch's answer to come, as the engine waits for it (``done``, ``result``, ``cancel``): a
    ``concurrent.futures.Future`` makes a lock and a condition per key, which cost the engine more than the rest
    of its work per key; these share their dispatcher's one condition."""

    __slots__ = ("state", "value", "_owner")

    def __init__(self, owner: AsyncDispatcher):
        self.state, self.value, self._owner = _QUEUED, None, owner

    def done(self) -> bool:
        return self.state >= _DONE

    def cancel(self) -> bool:
        if self.state == _QUEUED:
            self.state = _CANCELLED
        return self.state == _CANCELLED

    def result(self) -> Any:
        if self.state < _DONE:
            self._owner._wait(self)
        if self.state == _CANCELLED:
            raise asyncio.CancelledError("the run ended before this key was fetched")
        if isinstance(self.value, BaseException):
            raise self.value
        return self.value


class _Fallback(Exception):
    """The first attempt's outcome is not one the async path answers: the store's own path takes the key."""


class AsyncDispatcher:
    """Starts fetches for the batch engine: at most ``max_workers`` at once (async attempts and the thread
    fallbacks they wait for together). ``submit`` queues a key here and returns its ``_Answer``; ``flush`` hands
    the queued keys to the loop in one wake-up (done before waiting for an answer)."""

    FLUSH_EVERY = 32

    def __init__(self, route: Route, loop: asyncio.AbstractEventLoop, max_workers: int, views: bool,
                 in_thread: Callable[[Any, Any], Future], done: Callable[[Any, FetchResult], None]):
        self._route, self._loop, self._views = route, loop, views
        self._in_thread = in_thread  # (key, slot) -> Future of the thread engine's fetch
        self._done = done  # (slot, result): count the answer's bytes (the thread path counts its own)
        self._free = max_workers  # loop-side state, touched only on the loop
        self._waiting: deque[tuple[Any, Any, _Answer]] = deque()
        self._idle_claims = 0  # workers started that have not taken their first key yet
        self._ready: list[tuple[_Answer, Any]] = []  # answers of this loop iteration, delivered together
        self._pending: list[tuple[Any, Any, _Answer]] = []  # consumer-side, not yet handed over
        self._closed = False
        self._cond = threading.Condition(threading.Lock())
        self._awaited: _Answer | None = None  # the answer the engine waits for, if it waits

    def submit(self, key: Any, slot: Any) -> _Answer:
        answer = _Answer(self)
        self._pending.append((key, slot, answer))
        if len(self._pending) >= self.FLUSH_EVERY:
            self.flush()
        return answer

    def _wait(self, answer: _Answer) -> None:
        """Block until ``answer`` is done. The loop sets states first and reads ``_awaited`` after, so either it
        sees this answer awaited and notifies, or this thread sees the answer done before it waits."""
        self.flush()
        with self._cond:
            self._awaited = answer
            while answer.state < _DONE:
                self._cond.wait()
            self._awaited = None

    def flush(self) -> None:
        if self._pending:
            batch, self._pending = self._pending, []
            self._loop.call_soon_threadsafe(self._admit, batch)

    def close(self) -> None:
        """Stop starting fetches (the run ended early); those running finish on their own."""
        self._pending = []
        self._loop.call_soon_threadsafe(self._stop)

    # --- on the loop -------------------------------------------------------------------------------
    def _stop(self) -> None:
        self._closed = True
        for _, _, answer in self._waiting:
            answer.cancel()
        self._waiting.clear()

    def _admit(self, batch: list) -> None:
        if self._closed:
            return
        self._waiting.extend(batch)
        self._start()

    def _start(self) -> None:
        """Start workers while there is room and work: a worker takes keys until none wait (no task per key)."""
        while self._free > 0 and len(self._waiting) > self._idle_claims:
            self._free -= 1
            self._idle_claims += 1
            self._loop.create_task(self._worker())

    async def _worker(self) -> None:
        waiting = self._waiting
        self._idle_claims -= 1
        try:
            while waiting:
                key, slot, answer = waiting.popleft()
                if answer.state != _QUEUED:  # cancelled: the run ended
                    continue
                answer.state = _RUNNING
                try:
                    result = await self._answer(key, slot)
                except BaseException as exc:  # noqa: BLE001 - a broken thread pool: reported for this key
                    result = exc if isinstance(exc, Exception) else RuntimeError(repr(exc))
                self._deliver_soon(answer, result)
        finally:
            self._free += 1

    def _deliver_soon(self, answer: _Answer, result: Any) -> None:
        """Give ``answer`` its result with the other answers of this loop iteration, so the waiting engine wakes
        once for all of them rather than once per blob."""
        self._ready.append((answer, result))
        if len(self._ready) == 1:
            self._loop.call_soon(self._deliver)

    def _deliver(self) -> None:
        ready, self._ready = self._ready, []
        for answer, result in ready:
            answer.value = result
            answer.state = _DONE
        awaited = self._awaited
        if awaited is not None and awaited.state >= _DONE:
            with self._cond:
                self._cond.notify()

    async def _answer(self, key: Any, slot: Any) -> FetchResult:
        route = self._route
        if route.usable():
            uri = route.uri_of(key)
            try:
                data = await self._first_attempt(uri)
            except _Fallback:
                pass
            else:
                result = self._finish(key, data)
                self._done(slot, result)
                return result
        return await asyncio.wrap_future(self._in_thread(key, slot))

    async def _first_attempt(self, uri: str) -> Any:
        """The raw GET's bytes, a ``NotFoundInStore`` answered by the service's code, else ``_Fallback``."""
        raw = self._route.raw
        match = raw._URI.fullmatch(uri) if isinstance(uri, str) else None
        if match is None:  # the store's own path says why (InvalidURI)
            raise _Fallback
        bucket, name = match.groups()
        try:
            data = await self._route.fast.get_async(bucket, name, raw, uri, self._views)
        except (asyncio.CancelledError, KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - obstore's Rust panics are BaseExceptions
            mapped = obstore_error(exc, raw, uri) if isinstance(exc, Exception) else None
            if type(mapped) is NotFoundInStore:
                return mapped
            raise _Fallback from None
        raw._facts.fast_reaches_objects = True  # as CloudRaw.get records after a success through the fast transport
        return data

    def _finish(self, key: Any, outcome: Any) -> FetchResult:
        """The answer through the store's own code: ``Store._answer`` around the route's ``read``."""
        route = self._route

        def base_get(_uri: str) -> Any:
            if isinstance(outcome, NotFoundInStore):
                raise outcome
            return outcome

        def fetch(k: Any) -> tuple[Any, str, None]:
            return route.read(k, base_get), route.store.name, None

        if not self._views:
            return route.store._answer(key, fetch)
        token = allow()
        try:
            return route.store._answer(key, fetch)
        finally:
            restore(token)
