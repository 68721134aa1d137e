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

The driving of one key (the first attempt, the fallback, the walk's steps) is ``drive.Driver``'s, shared with
``Store.aget``/``aget_many`` on a caller's loop (``onloop``); this module adds the engine's side: keys handed over
from the consumer's thread, at most ``max_workers`` at once, answers delivered back to it, and exit.

Answers become ``FetchResult``s through the stores' own code (``store._answer``, the route's ``read``), so both
engines say the same thing about the same outcome, with the same provenance (``source``, ``cached``).
"""
from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from ..ground.results import FetchResult
from ..ground.views import allow
from .answers import _DONE, _QUEUED, _RUNNING, _Answer, _Answers
from .drive import Driver, result_of
from .routes import CompositeRoute, Route

__all__ = ["AsyncDispatcher"]


_EXITING = "the interpreter is exiting: the engine's event loop was stopped before this key was fetched"


class AsyncDispatcher(_Answers):
    """Starts fetches for the batch engine: at most ``max_workers`` at once (async attempts and the thread
    fallbacks they wait for together). ``submit`` queues a key here and returns its ``_Answer``; ``flush`` hands
    the queued keys to the loop in one wake-up (done before waiting for an answer)."""

    FLUSH_EVERY = 32

    def __init__(self, route: Route | CompositeRoute, loop: asyncio.AbstractEventLoop, max_workers: int, views: bool,
                 submit: Callable[..., Future], done: Callable[[Any, FetchResult], None]):
        super().__init__()
        self._loop, self._views = loop, views
        # the step-driving (``drive``), shared with a caller's loop; local tiers are read on this loop itself
        self._driver = Driver(route.store, route, loop, views, submit, inline=True)
        self._done = done  # (slot, result): count the answer's bytes
        self._free = max_workers  # loop-side state, touched only on the loop
        self._waiting: deque[tuple[Any, Any, _Answer]] = deque()
        self._idle_claims = 0  # workers started that have not taken their first key yet
        self._ready: list[tuple[_Answer, Any]] = []  # answers of this loop iteration, delivered together
        self._pending: list[tuple[Any, Any, _Answer]] = []  # consumer-side, not yet handed over
        self._closed = False

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
                    answer_ = result_of(self._driver.store, key, await self._driver.outcome(key))
                    self._done(slot, answer_)
                except asyncio.CancelledError:
                    if not getattr(self._loop, "closing", False):
                        raise
                    self._exit(answer)  # the loop cancelled its tasks at interpreter exit (bitstore.engine.loop)
                    raise
                except BaseException as exc:  # noqa: BLE001 - a broken thread pool: reported for this key
                    answer_ = exc if isinstance(exc, Exception) else RuntimeError(repr(exc))
                self._deliver_soon(answer, answer_)
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
