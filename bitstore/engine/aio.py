"""The async side of the batch engine: first attempts multiplexed on one event loop.

A store takes part by answering ``async_route()`` (see ``routes``); the engine knows the route records and
nothing of the stores behind them.

- A ``Route``: for each key, the engine's loop (``loop``) makes the plain first attempt of the store's raw GET
  (``route.attempt``). Only two outcomes are answered from there: the bytes (or a view under ``views=True``) and a
  ``NotFoundInStore`` the service itself said. Every other outcome (a transient error, a 404 that does not say
  what is missing, throttling, a blob too large) goes to the store's own synchronous path on a thread, which has
  the retries, deadlines and settling; the failed attempt goes with it (``retry.first_attempt``), so the retry
  policy counts it as attempt 0 and goes on from it (no request repeated, the deadline running since the loop's
  attempt started). So does every key while the route says it is not usable.
- A ``CompositeRoute``: the loop drives the composite's own tier walk (``_walk``: the one place that decides found
  / next tier / missing / failed / corrupt, the write-back and the missing-TTL memory; the composite's ``_fetch``
  drives the same walk on a thread). A tier with a ``Route`` and no limiter (a limiter blocks) gets its first
  attempt on the loop as above, counted in the tier's statistics by ``tier.account``; what the loop does not
  answer goes to the tier's own ``tier.get`` on a thread, going on from the loop's attempt. A tier whose store
  ``reads_on_loop()`` is read on the loop itself. Every other tier is asked by ``tier.get`` on the engine's
  threads, and the write-back runs there too, before the key's result is delivered.

Answers become ``FetchResult``s through the stores' own code (``store._answer``, the route's ``read``), so both
engines say the same thing about the same outcome, with the same provenance (``source``, ``cached``).
"""
from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from ..ground.errors import short
from ..ground.results import FetchResult
from ..ground.retry import first_attempt
from ..ground.views import allow, restore
from .answers import _DONE, _QUEUED, _RUNNING, _Answer, _Answers
from .routes import CompositeRoute, Fallback, OffLoop, Route, TierGet

__all__ = ["AsyncDispatcher"]


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


_EXITING = "the interpreter is exiting: the engine's event loop was stopped before this key was fetched"


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
                    self._exit(answer)  # the loop cancelled its tasks at interpreter exit (bitstore.engine.loop)
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
                data = await self._first_attempt(route, route.uri(key))
            except Fallback as fallback:
                made = fallback.made
            else:
                result = self._finish(key, data)
                self._done(slot, result)
                return result
        return await asyncio.wrap_future(self._submit(_after, made, self._fetch, key, slot))

    async def _first_attempt(self, route: Route, uri: Any) -> Any:
        """The raw GET's bytes, a ``NotFoundInStore`` the service said, else ``Fallback``."""
        try:
            return await route.attempt(uri, self._views)
        except (asyncio.CancelledError, KeyboardInterrupt, SystemExit, Fallback):
            raise
        except BaseException:  # noqa: BLE001 - a route that broke its contract: the store's own path decides
            raise Fallback from None

    def _finish(self, key: Any, outcome: Any) -> FetchResult:
        """The answer through the store's own code: ``Store._answer`` around the route's ``read``."""
        route = self._route

        def fetch(k: Any) -> tuple[Any, str, None]:
            return route.answer(k, _replay(outcome)), route.store.name, None

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
                elif type(step) is OffLoop:  # a call that may block (a user store's is_valid)
                    value, error = await self._in_thread(step.call)
                    step = walk.send(value) if error is None else walk.throw(error)
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

    async def _tier_get(self, tier: Any, uri: Any) -> tuple[Any, BaseException | None]:
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
                raw = await self._first_attempt(route, route.uri(uri))
            except Fallback as fallback:
                made = fallback.made
            else:
                try:
                    data = route.answer(uri, _replay(raw))
                except Exception as exc:  # noqa: BLE001 - NotFoundInStore, a corrupt copy: the walk decides
                    tier.account(exc, clock.monotonic() - start)
                    return None, exc
                tier.account(data, clock.monotonic() - start)
                return data, None
        return await self._in_thread(_after, made, self._tier_call, tier, uri)

    def _tier_call(self, tier: Any, uri: Any) -> Any:
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
