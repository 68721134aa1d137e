"""The async side of the batch engine: first attempts of the fast transport multiplexed on one event loop.

Routed stores (``route_of``):

- a ``CloudRaw`` whose fast transport is usable in this process, or a ``Sha1Store`` over one, neither with its
  reading methods overridden (a ``Route``). For each key, the engine's loop (``bitstore._loop``) makes the plain
  first attempt of the raw GET with obstore's async API. Only two outcomes are answered from there: a success
  (bytes, or a view under ``views=True``, checked as ``_Transport.get`` checks them) and a ``NotFoundInStore``
  the one error map (``obstore_error``) drew from the service's own error code. Every other outcome (a transient
  error, a 404 that does not say what is missing, a key obstore refuses, throttling, a blob too large) goes to
  the store's own synchronous path on a thread, which has the retries, deadlines and settling; the failed
  attempt goes with it (``retry.first_attempt``), so the retry policy counts it as attempt 0 and goes on from it
  (no request repeated, the deadline running since the loop's attempt started). So does every key while this
  process's fast transport is known not to reach the endpoint's objects.
- a ``Composite`` (``Sha1Composite`` included; ``_fetch`` not overridden) with at least one such tier that has no
  per-tier limits (a ``CompositeRoute``). The loop drives the composite's own tier walk (``Composite._walk``, the
  one place that decides found / next tier / missing / failed / corrupt, the write-back and the missing-TTL
  memory; ``Composite._fetch`` drives the same walk on a thread). A tier that is a routable store, has no
  limiter (no ``max_concurrency``/``max_rate``, never throttled: a limiter blocks) and is usable gets its first
  attempt on the loop as above, counted in the tier's statistics by ``Tier.account``, as ``Tier._call`` counts
  a call; what the loop does not answer goes to that tier's own ``tier.get`` on a thread, going on from the
  loop's attempt (its retries, throttling included, counted by the tier as on threads). Every other tier (local
  disk, API tiers, user stores, the SDK transport, limited tiers, nested composites) is asked by ``tier.get`` on
  the engine's threads, and the write-back runs there too, before the key's result is delivered.

Answers become ``FetchResult``s through the stores' own code (``Store._answer``, ``Sha1Store._read``), so both
engines say the same thing about the same outcome, with the same provenance (``source``, ``cached``).
"""
from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from ._views import allow, restore
from .backends._errors import obstore_error
from .batch import _DONE, _QUEUED, _RUNNING, _Answer, _Answers
from .composite import Composite, TierGet
from .errors import NotFoundInStore, short
from .results import FetchResult
from .retry import first_attempt
from .sha1 import Sha1Store
from .store import Store
from .tier import Tier

__all__ = ["Route", "CompositeRoute", "route_of", "AsyncDispatcher"]


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


class CompositeRoute:
    """How a composite's keys are fetched on the loop: its walk, the ``Route`` of each tier (by ``id``) whose
    first attempts may be made there (checked again per key: a tier throttled since has a limiter), and the tiers
    read on the loop itself (``local``: bitstore's own local-disk and memory stores, whose answer is a syscall or
    a dict lookup away; a hop to a thread and back costs more than the read)."""

    __slots__ = ("store", "tiers", "local")

    def __init__(self, store: Composite, tiers: dict[int, Route], local: frozenset[int] = frozenset()):
        self.store, self.tiers, self.local = store, tiers, local

    def tier_route(self, tier: Tier) -> Route | None:
        route = self.tiers.get(id(tier))
        return route if route is not None and not tier.limited and route.usable() else None

    def inline(self, tier: Tier) -> bool:
        return id(tier) in self.local and not tier.limited


def _routable_raw(store: Any) -> Any:
    """The fast transport of a plain ``CloudRaw`` usable in this process, else None."""
    from .backends import _fast
    from .backends._cloud import CloudRaw

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


def route_of(store: Store) -> Route | CompositeRoute | None:
    """The async route for ``store``'s keys, or None when its keys go on threads."""
    if isinstance(store, Composite):
        return _composite_route(store)
    if type(store)._result is not Store._result or type(store)._fetch is not Store._fetch:
        return None
    if isinstance(store, Sha1Store):
        if type(store).get is not Sha1Store.get or type(store)._read is not Sha1Store._read:
            return None
        fast = _routable_raw(store.base_store)
        return None if fast is None else Route(store, store.base_store, fast, store._uri, store._read)
    fast = _routable_raw(store)
    return None if fast is None else Route(store, store, fast, lambda key: key, lambda key, base_get: base_get(key))


def _composite_route(store: Composite) -> CompositeRoute | None:
    """A route for a composite with at least one tier whose first attempts the loop can make, else None."""
    if type(store)._result is not Store._result or type(store)._fetch is not Composite._fetch:
        return None
    tiers, local = {}, set()
    for tier in store.tiers:
        if tier.limited or type(tier).get is not Tier.get:
            continue
        if _is_local(tier.store):
            local.add(id(tier))
            continue
        route = route_of(tier.store)
        if isinstance(route, Route):  # a nested composite runs on threads as a tier
            tiers[id(tier)] = route
    return CompositeRoute(store, tiers, frozenset(local)) if tiers else None


def _is_local(store: Any) -> bool:
    """bitstore's own ``LocalRaw``/``MemoryRaw`` (exactly: a subclass may do anything), or a ``Sha1Store``/
    ``Sha1Cache`` over one with its reading code as is: read on the loop (``CompositeRoute.local``)."""
    from .backends.local import LocalRaw
    from .backends.memory import MemoryRaw
    from .sha1 import Sha1Cache

    if type(store) in (Sha1Store, Sha1Cache):
        store = store.base_store
    return type(store) in (LocalRaw, MemoryRaw)


_EXITING = "the interpreter is exiting: the engine's event loop was stopped before this key was fetched"


class _Fallback(Exception):
    """The first attempt's outcome is not one the async path answers: the store's own path takes the key.
    ``made``: ``(uri, error, started)`` of the attempt when one was made (see ``retry.first_attempt``), so the
    store's retry policy goes on from it rather than starting again."""

    def __init__(self, made: tuple[Any, BaseException, float] | None = None):
        super().__init__()
        self.made = made


def _after(made: tuple[Any, BaseException, float] | None, call: Callable[..., Any], *args: Any) -> Any:
    """``call(*args)`` on a thread, its store's GET of ``made``'s uri going on from the loop's failed attempt."""
    if made is None:
        return call(*args)
    token = first_attempt.set(made)
    try:
        return call(*args)
    finally:
        first_attempt.reset(token)


def _outcome(call: Callable[..., Any], *args: Any) -> tuple[Any, BaseException | None]:
    """``call(*args)`` on a thread as ``(value, None)`` or ``(None, error)``: no exception crosses the futures (a
    ``StopIteration`` cannot)."""
    try:
        return call(*args), None
    except BaseException as exc:  # noqa: BLE001 - handed to the walk, which decides
        return None, exc


class AsyncDispatcher(_Answers):
    """Starts fetches for the batch engine: at most ``max_workers`` at once (async attempts and the thread
    fallbacks they wait for together). ``submit`` queues a key here and returns its ``_Answer``; ``flush`` hands
    the queued keys to the loop in one wake-up (done before waiting for an answer)."""

    FLUSH_EVERY = 32

    def __init__(self, route: Route | CompositeRoute, loop: asyncio.AbstractEventLoop, max_workers: int, views: bool,
                 submit: Callable[..., Future], fetch: Callable[[Any, Any], Any],
                 done: Callable[[Any, FetchResult], None]):
        super().__init__()
        self._route, self._loop, self._views = route, loop, views
        self._submit = submit  # (fn, *args) -> Future: runs fn on the engine's threads
        self._fetch = fetch  # (key, slot) -> the thread engine's whole fetch of a key (it counts its own bytes)
        self._done = done  # (slot, result): count the answer's bytes
        self._answer = self._walk if isinstance(route, CompositeRoute) else self._raw_answer
        self._free = max_workers  # loop-side state, touched only on the loop
        self._waiting: deque[tuple[Any, Any, _Answer]] = deque()
        self._idle_claims = 0  # workers started that have not taken their first key yet
        self._ready: list[tuple[_Answer, Any]] = []  # answers of this loop iteration, delivered together
        self._pending: list[tuple[Any, Any, _Answer]] = []  # consumer-side, not yet handed over
        self._closed = False
        self._back: list[tuple[asyncio.Future, tuple[Any, BaseException | None]]] = []  # threads' outcomes
        self._back_lock = threading.Lock()

    def submit(self, key: Any, slot: Any) -> _Answer:
        answer = _Answer(self)
        self._pending.append((key, slot, answer))
        if len(self._pending) >= self.FLUSH_EVERY:
            self.flush()
        return answer

    def _wait(self, answer: _Answer) -> None:
        """Block until ``answer`` is done, its key handed to the loop first."""
        self.flush()
        super()._wait(answer)

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
        if getattr(self._loop, "closing", False):  # the interpreter is exiting: no request starts any more
            for _, _, answer in batch:
                self._deliver_soon(answer, RuntimeError(_EXITING))
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
        if self._views:
            allow()  # in this task's own context, for every key it fetches
        try:
            while waiting:
                key, slot, answer = waiting.popleft()
                if answer.state != _QUEUED:  # cancelled: the run ended
                    continue
                answer.state = _RUNNING
                try:
                    result = await self._answer(key, slot)
                except asyncio.CancelledError:
                    if not getattr(self._loop, "closing", False):
                        raise
                    self._exit(answer)  # the loop cancelled its tasks at interpreter exit (bitstore._loop)
                    raise
                except BaseException as exc:  # noqa: BLE001 - a broken thread pool: reported for this key
                    result = exc if isinstance(exc, Exception) else RuntimeError(repr(exc))
                self._deliver_soon(answer, result)
        finally:
            self._free += 1

    def _exit(self, running: _Answer) -> None:
        """At interpreter exit: this key and every key waiting here fail; no request starts any more."""
        self._closed = True
        self._deliver_soon(running, RuntimeError(_EXITING))
        for _, _, answer in self._waiting:
            if answer.state == _QUEUED:
                answer.state = _RUNNING
                self._deliver_soon(answer, RuntimeError(_EXITING))
        self._waiting.clear()

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

    def _in_thread(self, call: Callable[..., Any], *args: Any) -> asyncio.Future:
        """``call(*args)`` on the engine's threads; the future (awaited on the loop) gets ``(value, error)``. The
        threads hand their outcomes back together (``_hand_back``): one wake-up of the loop for all that finished
        meanwhile, not one per call as ``asyncio.wrap_future`` would make."""
        future = self._loop.create_future()
        self._submit(self._hand_back, future, call, args)
        return future

    def _hand_back(self, future: asyncio.Future, call: Callable[..., Any], args: tuple) -> None:
        outcome = _outcome(call, *args)
        with self._back_lock:
            self._back.append((future, outcome))
            first = len(self._back) == 1
        if first:
            self._loop.call_soon_threadsafe(self._take_back)

    def _take_back(self) -> None:
        with self._back_lock:
            back, self._back = self._back, []
        for future, outcome in back:
            if not future.done():
                future.set_result(outcome)

    async def _raw_answer(self, key: Any, slot: Any) -> FetchResult:
        route = self._route
        made = None
        if route.usable():
            try:
                data = await self._first_attempt(route, route.uri_of(key))
            except _Fallback as fallback:
                made = fallback.made
            else:
                result = self._finish(key, data)
                self._done(slot, result)
                return result
        return await asyncio.wrap_future(self._submit(_after, made, self._fetch, key, slot))

    async def _first_attempt(self, route: Route, uri: str) -> Any:
        """The raw GET's bytes, a ``NotFoundInStore`` answered by the service's code, else ``_Fallback``."""
        raw = route.raw
        match = raw._URI.fullmatch(uri) if isinstance(uri, str) else None
        if match is None:  # the store's own path says why (InvalidURI)
            raise _Fallback
        bucket, name = match.groups()
        started = raw.retry.clock()
        try:
            data = await route.fast.get_async(bucket, name, raw, uri, self._views)
        except (asyncio.CancelledError, KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - obstore's Rust panics are BaseExceptions
            if not isinstance(exc, Exception):
                raise _Fallback from None
            mapped = obstore_error(exc, raw, uri)
            if type(mapped) is NotFoundInStore:
                return mapped
            raise _Fallback((uri, exc, started)) from None
        raw._facts.fast_reaches_objects = True  # as CloudRaw.get records after a success through the fast transport
        return data

    def _finish(self, key: Any, outcome: Any) -> FetchResult:
        """The answer through the store's own code: ``Store._answer`` around the route's ``read``."""
        route = self._route

        def fetch(k: Any) -> tuple[Any, str, None]:
            return route.read(k, _replay(outcome)), route.store.name, None

        return route.store._answer(key, fetch)

    # --- composites ----------------------------------------------------------------------------------
    async def _walk(self, key: Any, slot: Any) -> FetchResult:
        """The composite's own walk (``Composite._walk``) for ``key``, driven here as ``Composite._fetch`` drives
        it on a thread: tiers asked by ``_tier_get``, the write-back on a thread."""
        store = self._route.store
        try:
            walk = store._walk(key)
            step = next(walk)
            while True:
                if type(step) is TierGet:
                    data, error = await self._tier_get(step.tier, step.uri)
                    step = walk.send(data) if error is None else walk.throw(error)
                else:
                    cached, error = await self._in_thread(store._write_to_cache, step.data, step.uri)
                    step = walk.send(cached) if error is None else walk.throw(error)
        except StopIteration as done:
            outcome = done.value
        except BaseException as exc:  # noqa: BLE001 - the walk's verdict, or a user store's BaseException
            outcome = exc
        if isinstance(outcome, BaseException) and not isinstance(outcome, Exception):  # as the thread engine
            result = FetchResult(key, None, "failed", error=f"{type(outcome).__name__}: {short(str(outcome), 1000)}")
        else:
            result = store._answer(key, lambda _key: _replay(outcome)(None))
        self._done(slot, result)
        return result

    async def _tier_get(self, tier: Tier, uri: Any) -> tuple[Any, BaseException | None]:
        """One tier's answer: its first attempt on the loop when the tier allows, counted as ``Tier._call`` counts
        a call; else, or when the loop cannot answer, ``tier.get`` on a thread (going on from the loop's
        attempt: its retries count it, as they count a backend's own)."""
        if self._route.inline(tier):  # a local read: on the loop (see CompositeRoute)
            return _outcome(self._tier_call, tier, uri)
        route = self._route.tier_route(tier)
        made = None
        if route is not None:
            clock = tier.clock
            start = clock.monotonic()
            try:
                raw = await self._first_attempt(route, route.uri_of(uri))
            except _Fallback as fallback:
                made = fallback.made
            else:
                try:
                    data = route.read(uri, _replay(raw))
                except Exception as exc:  # noqa: BLE001 - NotFoundInStore, a corrupt copy: the walk decides
                    tier.account(exc, clock.monotonic() - start)
                    return None, exc
                tier.account(data, clock.monotonic() - start)
                return data, None
        return await self._in_thread(_after, made, self._tier_call, tier, uri)

    def _tier_call(self, tier: Tier, uri: Any) -> Any:
        if not self._views:
            return tier.get(uri)
        token = allow()
        try:
            return tier.get(uri)
        finally:
            restore(token)


def _replay(outcome: Any) -> Callable[[Any], Any]:
    """A ``get`` that answers ``outcome`` (returned, or raised when it is an exception) whatever it is asked."""
    def get(_uri: Any) -> Any:
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return get
