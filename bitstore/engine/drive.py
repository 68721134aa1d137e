"""One key's fetch driven on a running event loop: the step-driving shared by the engine's own loop (``aio``) and a
caller's loop (``onloop``: ``Store.aget``, ``aget_many``).

``Driver(route, loop, views, submit, inline)``: ``await driver.outcome(key)`` is the key's outcome, the tuple
``(data, source, cached)`` that ``Store._fetch`` returns, or the exception it raises (an exception object, never
raised here); ``result_of(store, key, outcome)`` turns it into the ``FetchResult`` the thread engine gives.

- ``route`` a ``Route``: the store's raw GET is attempted on the loop (``route.attempt``); its bytes and a
  ``NotFoundInStore`` the service said are answered there, through the store's reading code (``route.read``);
  anything else (``Fallback``) goes to the store's own ``_fetch`` on a thread, going on from the failed attempt
  (``retry.first_attempt``), as does every key while the route is not usable.
- ``route`` a ``CompositeRoute``: the composite's own walk (``_walk``: found / next tier / missing / failed /
  corrupt, write-back, missing-TTL memory) is driven here as ``Composite._fetch`` drives it on a thread: a tier
  with a usable ``Route`` gets its first attempt on the loop, counted by ``tier.account``; a tier read on the
  loop itself when ``inline`` (the engine's own loop; never a caller's, which must not block); every other
  ``tier.get``, each write-back and each ``OffLoop`` call (a user tier's ``is_valid``) on a thread.
- ``route`` None: the store's whole ``_fetch`` on a thread (``checked``: its ``accepts`` too, for a store whose
  key check may not run on the loop).

``submit(fn, *args) -> concurrent.futures.Future`` runs ``fn`` on a thread pool; outcomes come back to the loop
together (one wake-up for all that finished meanwhile). A cancelled await leaves a queued thread call unrun.
"""
from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from ..ground.errors import InvalidURI, short
from ..ground.results import FetchResult
from ..ground.retry import first_attempt
from ..ground.views import allow, restore
from .routes import CompositeRoute, Fallback, OffLoop, Route, TierGet, replay

__all__ = ["Driver", "result_of", "replay", "after", "outcome_of"]


def after(made: tuple[Any, BaseException, float] | None, call: Callable[..., Any], *args: Any) -> Any:
    """``call(*args)`` on a thread, its store's GET of ``made``'s uri going on from the loop's failed attempt."""
    if made is None:
        return call(*args)
    token = first_attempt.set(made)
    try:
        return call(*args)
    finally:
        first_attempt.reset(token)


def outcome_of(call: Callable[..., Any], *args: Any) -> tuple[Any, BaseException | None]:
    """``call(*args)`` as ``(value, None)`` or ``(None, error)``: no exception crosses the futures (a
    ``StopIteration`` cannot)."""
    try:
        return call(*args), None
    except BaseException as exc:  # noqa: BLE001 - handed to the walk, which decides
        return None, exc


def result_of(store: Any, key: Any, outcome: Any) -> FetchResult:
    """``outcome`` (a ``_fetch`` tuple or its exception) as a ``FetchResult``, through ``store._answer_outcome`` (the
    one place that turns an outcome into a status); a ``BaseException`` that is not an ``Exception`` (a user store's
    ``SystemExit``) is that key failing, as on the thread engine."""
    if isinstance(outcome, BaseException) and not isinstance(outcome, Exception):
        return FetchResult(key, None, "failed", error=f"{type(outcome).__name__}: {short(str(outcome), 1000)}")
    return store._answer_outcome(key, outcome)


class Driver:
    """Fetches of one store's keys on ``loop`` (see the module doc)."""

    def __init__(self, store: Any, route: Route | CompositeRoute | None, loop: asyncio.AbstractEventLoop,
                 views: bool, submit: Callable[..., Any], *, inline: bool = True, checked: bool = False):
        self.store, self.route, self.loop, self.views = store, route, loop, views
        self._submit, self._inline, self._checked = submit, inline, checked
        if isinstance(route, CompositeRoute):
            self.outcome = self._walk
        elif isinstance(route, Route):
            self.outcome = self._raw
            self._source = route.store.name  # a found blob's ``source``, named once, not per key
        else:
            self.outcome = self._on_thread
        self._back: list[tuple[asyncio.Future, tuple[Any, BaseException | None]]] = []  # threads' outcomes
        self._back_lock = threading.Lock()

    # --- threads -------------------------------------------------------------------------------------
    def in_thread(self, call: Callable[..., Any], *args: Any) -> asyncio.Future:
        """``call(*args)`` on a thread; the future (awaited on the loop) gets ``(value, error)``. Threads hand their
        outcomes back together (``_hand_back``): one wake-up of the loop for all that finished meanwhile, not one
        per call as ``asyncio.wrap_future`` would make."""
        future = self.loop.create_future()
        self._submit(self._hand_back, future, call, args)
        return future

    def _hand_back(self, future: asyncio.Future, call: Callable[..., Any], args: tuple) -> None:
        if future.cancelled():  # the awaiting task was cancelled before this call started: nothing to do
            return
        outcome = outcome_of(call, *args)
        with self._back_lock:
            self._back.append((future, outcome))
            first = len(self._back) == 1
        if first:
            try:
                self.loop.call_soon_threadsafe(self._take_back)
            except RuntimeError:  # the loop was closed meanwhile: nobody awaits the outcome any more
                pass

    def _take_back(self) -> None:
        with self._back_lock:
            back, self._back = self._back, []
        for future, outcome in back:
            if not future.done():
                future.set_result(outcome)

    def _store_fetch(self, key: Any) -> Any:
        """The store's own ``_fetch`` of ``key`` (on a thread), under ``views`` when asked."""
        store = self.store
        if self._checked and not store.accepts(key):
            raise InvalidURI(store, key, hint=getattr(store, "URI_HINT", None))
        if not self.views:
            return store._fetch(key)
        token = allow()
        try:
            return store._fetch(key)
        finally:
            restore(token)

    async def _on_thread(self, key: Any) -> Any:
        value, error = await self.in_thread(self._store_fetch, key)
        return value if error is None else error

    # --- a raw route -----------------------------------------------------------------------------------
    async def _raw(self, key: Any) -> Any:
        route = self.route
        made = None
        if route.usable():
            uri_of, read = route.uri_of, route.read  # ``route.uri`` and ``route.answer``, inlined: per key
            try:
                raw = await route.attempt(key if uri_of is None else uri_of(key), self.views)
            except Fallback as fallback:
                made = fallback.made
            except (asyncio.CancelledError, KeyboardInterrupt, SystemExit):
                raise
            except BaseException:  # noqa: BLE001 - a route that broke its contract: the store's own path decides
                pass
            else:
                try:
                    if read is not None:
                        return read(key, replay(raw)), self._source, None
                    if isinstance(raw, BaseException):
                        raise raw
                    return raw, self._source, None
                except BaseException as exc:  # noqa: BLE001 - the store's reading code said what it is
                    return exc
        value, error = await self.in_thread(after, made, self._store_fetch, key)
        return value if error is None else error

    async def _first_attempt(self, route: Route, uri: Any) -> Any:
        """The raw GET's bytes, a ``NotFoundInStore`` the service said, else ``Fallback``."""
        try:
            return await route.attempt(uri, self.views)
        except (asyncio.CancelledError, KeyboardInterrupt, SystemExit, Fallback):
            raise
        except BaseException:  # noqa: BLE001 - a route that broke its contract: the store's own path decides
            raise Fallback from None

    # --- a composite's walk ----------------------------------------------------------------------------
    async def _walk(self, key: Any) -> Any:
        """The composite's own walk (``Composite._walk``) for ``key``, driven here as ``Composite._fetch`` drives
        it on a thread: tiers asked by ``_tier_get``, the write-back on a thread."""
        store = self.route.store
        try:
            walk = store._walk(key)
            step = next(walk)
            while True:
                if type(step) is TierGet:
                    data, error = await self._tier_get(step.tier, step.uri)
                    step = walk.send(data) if error is None else walk.throw(error)
                elif type(step) is OffLoop:  # a call that may block (a user store's is_valid)
                    value, error = await self.in_thread(step.call)
                    step = walk.send(value) if error is None else walk.throw(error)
                else:
                    cached, error = await self.in_thread(store._write_to_cache, step.data, step.uri)
                    step = walk.send(cached) if error is None else walk.throw(error)
        except StopIteration as done:
            return done.value
        except (asyncio.CancelledError, KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - the walk's verdict, or a user store's BaseException
            return exc

    async def _tier_get(self, tier: Any, uri: Any) -> tuple[Any, BaseException | None]:
        """One tier's answer: its first attempt on the loop when the tier allows, counted as ``Tier._call`` counts
        a call; else, or when the loop cannot answer, ``tier.get`` on a thread (going on from the loop's
        attempt: its retries count it, as they count a backend's own)."""
        route = self.route
        if self._inline and route.inline(tier):  # a local read: on the engine's own loop (see CompositeRoute)
            return outcome_of(self._tier_call, tier, uri)
        tier_route = route.tier_route(tier)
        made = None
        if tier_route is not None:
            clock = tier.clock
            start = clock.monotonic()
            try:
                raw = await self._first_attempt(tier_route, tier_route.uri(uri))
            except Fallback as fallback:
                made = fallback.made
            else:
                try:
                    data = tier_route.answer(uri, replay(raw))
                except Exception as exc:  # noqa: BLE001 - NotFoundInStore, a corrupt copy: the walk decides
                    tier.account(exc, clock.monotonic() - start)
                    return None, exc
                tier.account(data, clock.monotonic() - start)
                return data, None
        return await self.in_thread(after, made, self._tier_call, tier, uri)

    def _tier_call(self, tier: Any, uri: Any) -> Any:
        if not self.views:
            return tier.get(uri)
        token = allow()
        try:
            return tier.get(uri)
        finally:
            restore(token)
