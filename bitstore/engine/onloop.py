"""Fetches on the CALLER's event loop: the engine behind ``Store.aget``, ``astat``, ``aput`` and ``aget_many``.

Nothing here blocks the caller's loop. A store that answers ``async_route()`` is fetched as on the engine's own
loop, by the same ``drive.Driver``: cloud GETs through obstore's async API on the caller's loop (no thread per
request), a composite's walk driven there, everything else (local and memory tiers, user stores and their
``is_valid``, retries after a failed first attempt, write-backs) on a bounded thread pool. Keys are checked on the
loop only where the check is bitstore's own (``keys_on_loop()``: a pattern match); a raw store whose ``is_valid``
is a user's, and a store that answers no route, are fetched whole on the pool, key check included.

While an ``aget_many`` runs, obstore's completions are handed to the caller's loop in batches (``wakeups``: one
self-pipe write and wake-up for all that finished meanwhile, not one per request); the loop's own
``call_soon_threadsafe`` is back when the last one ends.

``AsyncFetchMany`` is ``aget_many``'s async iterator: the same window as ``get_many`` (``batch._Slots``: bounds,
dedupe of keys with one canonical form, bytes in flight), at most ``max_in_flight`` fetches at once, results in
input order, the same statuses. Leaving the ``async for`` (``break``, an exception, the task cancelled), or
``aclose()``, cancels what is in flight: obstore requests are cancelled (tokio drops them), thread calls not yet
started never start, and the pool goes back to ``batch``'s kept pools; a call already running on a thread
finishes (a thread cannot be interrupted) and its answer is dropped.
"""
from __future__ import annotations

import asyncio
import os
import threading
from collections import deque
from collections.abc import AsyncIterable, Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ..ground.results import FetchResult
from .allocator import tune_allocator
from .answers import _CANCELLED, _DONE, _QUEUED, _RUNNING, _Answer
from .batch import _check_limits, _pools, _Slot, _Slots
from .drive import Driver, result_of
from .routes import CompositeRoute, Fetchable, Route
from .wakeups import batch_wakeups, release_wakeups

__all__ = ["AsyncFetchMany", "OneKey", "route_on_loop", "in_thread", "aget", "SINGLE_CALL_THREADS"]

#: Threads of the process-wide pool that single calls (``aget``, ``astat``, ``aput``) use off the caller's loop.
SINGLE_CALL_THREADS = 64


class _SharedPool:
    """A process-wide thread pool for single calls, started on first use; a forked child starts its own."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        pool = self._pool
        if pool is None:
            with self._lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(SINGLE_CALL_THREADS, thread_name_prefix="bitstore-async")
                pool = self._pool
        return pool.submit(fn, *args)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._pool = None  # the parent's threads do not exist here


_shared = _SharedPool()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_shared._after_fork)


def in_thread(call: Callable[..., Any], *args: Any) -> asyncio.Future:
    """``call(*args)`` on the shared pool, awaited on the running loop (cancelling it drops a call not started)."""
    return asyncio.wrap_future(_shared.submit(call, *args))


def route_on_loop(store: Fetchable) -> Route | CompositeRoute | None:
    """The store's route for a caller's loop: a composite's (its walk checks keys itself, a user tier's check on a
    thread: ``OffLoop``), a raw route when the store's keys may be checked on the loop; else None (threads)."""
    try:
        route = store.async_route()
        if isinstance(route, CompositeRoute) or (isinstance(route, Route) and store.keys_on_loop()):
            return route
    except Exception:  # noqa: BLE001 - a store that cannot say runs on threads, whose fetches say what is wrong
        pass
    return None


class OneKey:
    """Single-key fetches of one store on the running loop, its route found once (a server's hot path).
    ``inline``: tiers that ``reads_on_loop()`` (local, memory) are read on the loop itself, as on the engine's own
    loop; for a loop that serves nothing else (a gateway's), never for a caller's."""

    def __init__(self, store: Any, *, inline: bool = False):
        self.store, self.inline = store, inline
        self.route = route_on_loop(store)
        self._keys_here = _keys_on_loop(store)
        self._driver: Driver | None = None

    async def get(self, key: Any) -> Any:
        """``store.get(key)`` without blocking the running loop: the same bytes or the same exception."""
        store = self.store
        if self.route is None or (self._keys_here and not store.accepts(key)):  # ``get`` says it, on a thread
            return await in_thread(store.get, key)
        loop = asyncio.get_running_loop()
        driver = self._driver
        if driver is None or driver.loop is not loop:
            driver = self._driver = Driver(store, self.route, loop, False, _shared.submit, inline=self.inline)
        outcome = await driver.outcome(key)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome[0]


async def aget(store: Any, key: Any) -> Any:
    """``store.get(key)`` without blocking the running loop: the same bytes or the same exception."""
    return await OneKey(store).get(key)


def _invalid(key: Any, error: str) -> FetchResult:
    return FetchResult(key, None, "invalid", error=error)


class AsyncFetchMany:
    """``store.aget_many(keys, ...)``: an async iterator of ``FetchResult``s in input order (see the module doc).
    Also an async context manager; ``aclose()`` cancels what is in flight, as does dropping it (a ``break``). The
    work is its ``_LoopWindow``'s, which holds no reference back, so a ``break`` drops this object at once."""

    def __init__(self, store: Fetchable, keys: Iterable[Any] | AsyncIterable[Any], *, max_in_flight: int,
                 max_bytes_in_flight: int, views: bool = False):
        self._window = _LoopWindow(store, keys, max_in_flight=max_in_flight,
                                   max_bytes_in_flight=max_bytes_in_flight, views=views)

    def __aiter__(self) -> AsyncFetchMany:
        return self

    def __anext__(self) -> Any:
        return self._window.next()

    async def __aenter__(self) -> AsyncFetchMany:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        self._window.close()

    async def aclose(self) -> None:
        self._window.close()

    def __del__(self) -> None:
        try:
            self._window.close()
        except Exception:  # noqa: BLE001 - at interpreter exit the loop may be gone
            pass


class _LoopWindow(_Slots[FetchResult]):
    """The window (``batch._Slots``) behind ``AsyncFetchMany``, its fetches on the caller's loop."""

    def __init__(self, store: Fetchable, keys: Iterable[Any] | AsyncIterable[Any], *, max_in_flight: int,
                 max_bytes_in_flight: int, views: bool = False):
        if isinstance(keys, (str, bytes)):
            raise TypeError("keys must be an iterable of keys, not a single str/bytes; wrap it in a list")
        if not hasattr(keys, "__aiter__") and not hasattr(keys, "__iter__"):
            raise TypeError(f"keys must be an iterable or an async iterable, not {type(keys).__name__}")
        _check_limits(max_in_flight, max_bytes_in_flight)
        route = route_on_loop(store)
        checked_here = _keys_on_loop(store)  # else each fetch checks its key, on a thread or in the walk
        super().__init__(store, _invalid, max_in_flight, max_bytes_in_flight, True, check_keys=checked_here)
        self._source, self._views, self._route = keys, bool(views), route
        self._keys: Any = None
        self._sync = True
        self._exhausted = False
        self._keys_error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = 0
        self._workforce: Any = None
        self._driver: Driver | None = None
        self._waiting: deque[tuple[Any, _Slot, _Answer]] = deque()
        self._workers: set[asyncio.Task] = set()
        self._free = max_in_flight
        self._awaited: _Answer | None = None  # the answer the consumer waits for, woken by ``_wake``
        self._wake: asyncio.Future | None = None
        self._batched = False  # obstore's completions batched on the caller's loop (``wakeups``)

    async def next(self) -> FetchResult:
        if self._closed:
            raise StopAsyncIteration
        if self._loop is None:
            self._open()
        try:
            if self._sync:
                self._fill_sync()
            else:
                await self._fill()
            if not self._slots:
                self.close()
                error, self._keys_error = self._keys_error, None
                if error is not None:
                    raise error
                raise StopAsyncIteration
            key, slot = self._take()
            answer = slot.future
            if not answer.done():  # woken when this answer is given, not for every other one
                self._awaited, self._wake = answer, self._loop.create_future()
                try:
                    await self._wake
                finally:
                    self._awaited = self._wake = None
            result = answer.result()
        except asyncio.CancelledError:
            self.close()  # the task was cancelled: nothing of this call stays in flight
            raise
        return self._settle(key, slot, result)

    def _fill_sync(self) -> None:
        """``_fill`` from a plain iterable (no coroutine per result; ``has_room`` inlined: it runs per key)."""
        if self._exhausted:
            return
        keys, slots, offer = self._keys, self._slots, self.offer
        least, cap, budget = self._max_workers, self._cap, self._budget
        while True:
            n = len(slots)
            if n >= least and (n >= cap or self._held >= budget):
                return
            try:
                key = next(keys)
            except StopIteration:
                self._exhausted = True
                return
            except Exception as exc:
                self._exhausted, self._keys_error = True, exc
                return
            offer(key)

    async def _fill(self) -> None:
        """Read keys while the window has room (an error of the key iterator is raised after the results)."""
        while not self._exhausted and self.has_room():
            try:
                key = await self._keys.__anext__()
            except StopAsyncIteration:
                self._exhausted = True
                break
            except Exception as exc:
                self._exhausted, self._keys_error = True, exc
                break
            self.offer(key)

    def _open(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        tune_allocator()
        if hasattr(self._source, "__aiter__"):
            self._keys, self._sync = self._source.__aiter__(), False
        else:
            self._keys, self._sync = iter(self._source), True
        self._workforce, _ = _pools.take(self._max_workers)
        if self._route is not None:
            self._batched = batch_wakeups(self._loop)
        self._driver = Driver(self._store, self._route, self._loop, self._views, self._workforce.submit,
                              inline=False, checked=not self._check_keys)

    # --- fetches -------------------------------------------------------------------------------------------
    def _start(self, key: Any, slot: _Slot) -> _Answer:
        answer = _Answer(self)  # no future per key: the consumer is woken only for the answer it waits for
        self._waiting.append((key, slot, answer))
        if self._free > 0:
            self._free -= 1
            task = self._loop.create_task(self._worker())
            self._workers.add(task)
            task.add_done_callback(self._workers.discard)
        return answer

    async def _worker(self) -> None:
        """Fetch waiting keys until none is left (a task per worker, not per key)."""
        waiting, outcome, store = self._waiting, self._driver.outcome, self._store
        try:
            while waiting:
                key, slot, answer = waiting.popleft()
                if answer.state != _QUEUED:  # cancelled
                    continue
                answer.state = _RUNNING
                try:
                    result = result_of(store, key, await outcome(key))
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - a broken thread pool: reported for this key
                    result = result_of(store, key, exc)
                data = result.data  # ``_answered``, inline: everything here happens on the loop, no lock
                slot.size = size = 0 if data is None else len(data)
                self._held += size
                answer.value, answer.state = result, _DONE
                if answer is self._awaited and not self._wake.done():
                    self._wake.set_result(None)
        finally:
            self._free += 1

    # the answers' owner (``answers._Answer``): everything happens on the loop, nothing waits on a condition
    def _cancel(self, answer: _Answer) -> bool:
        if answer.state == _QUEUED:
            answer.state = _CANCELLED
        return answer.state == _CANCELLED

    def _wait(self, answer: _Answer) -> None:
        raise RuntimeError("an answer of aget_many was read before it was given")

    def close(self) -> None:
        """Cancel what is in flight and give the threads back. Idempotent."""
        if self._closed:
            return
        if self._loop is not None and threading.get_ident() != self._thread:  # dropped on another thread
            if not self._loop.is_closed():
                self._loop.call_soon_threadsafe(self.close)
            return
        self._closed = True
        for task in list(self._workers):
            task.cancel()
        for _, _, answer in self._waiting:
            answer.state = _CANCELLED
        self._waiting.clear()
        if self._wake is not None and not self._wake.done():  # closed by another task while one waits
            self._wake.cancel()
        self._slots.clear()
        self._by_canonical.clear()
        if self._workforce is not None:
            _pools.give(self._max_workers, self._workforce)
            self._workforce = None
        if self._batched:
            self._batched = False
            release_wakeups(self._loop)


def _keys_on_loop(store: Any) -> bool:
    try:
        return bool(store.keys_on_loop())
    except Exception:  # noqa: BLE001 - a store that cannot say is checked on threads
        return False
