"""The batch engine behind ``Store.get_many``: ultima threads, a bounded window, in-order results.

Keys are read lazily. At most ``window`` keys are read ahead of the consumer (never fewer than
``max_workers``), and no new key is started while the bytes fetched but not yet yielded exceed
``max_bytes_in_flight``. A key whose canonical form equals one still in the window shares its fetch.
An error from the key iterator is raised after every result read before it is yielded. Any exception from
a store, ``BaseException`` included, is that key's ``failed`` result. Thread pools are kept between runs
(``_Pools``).

Engines: ``threads`` runs each fetch on one of ``max_workers`` threads. ``async`` starts the fetches of a store
that answers ``async_route()`` (a raw cloud store or SHA1 store on the fast transport, or a composite with such
a tier; see ``routes``) on this process's event loop (``loop``), at most ``max_workers`` at once, and sends what
the loop does not answer (and a composite's other tiers and write-backs) to the threads. ``auto`` is ``async`` above
``ASYNC_MIN_WORKERS`` for a store that can be routed (while ``AUTO_ASYNC`` is on), else ``threads``: up to there a
key costs the threads less than the loop; above it, starting and switching between a thousand threads costs more
than the loop's per-request work, on a process's first call and on later ones (the benchmarks page's first-call
cases). A cold pool's threads are started by the pool itself as the window fills (``_Threads``).
``processes=N`` spreads the keys over N worker processes (``procs``).

``_Window`` is the engine itself (offer a key, pop the head's result, with or without waiting); ``get_many`` is a
generator over it, and ``FetchWindow`` exposes it to a consumer handed keys one at a time (the Beam DoFn), with
the same bounds, dedupe, order and answers.
"""
from __future__ import annotations

import importlib.util
import os
import sys
import threading
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import replace
from typing import Any, Generic, TypeVar

from ..ground.errors import InvalidURI, short
from ..ground.results import FetchResult
from ..ground.views import allow, restore
from .allocator import tune_allocator
from .answers import _CANCELLED, _DONE, _QUEUED, _RUNNING, _Answer, _Answers, canonical_of
from .routes import CompositeRoute, Fetchable, Route

__all__ = ["FetchWindow", "fetch_many", "run_many", "want_progress"]

R = TypeVar("R")

WINDOW_PER_WORKER = 4
#: Whether ``engine="auto"`` may pick the event loop (above ``ASYNC_MIN_WORKERS``). It was off while a process
#: that used obstore's async API could abort at exit; the engine's loop now settles its requests at exit first
#: (``bitstore.engine.loop``).
AUTO_ASYNC = True
#: With ``AUTO_ASYNC``, ``auto`` multiplexes a store's requests on the event loop above this many in flight (a
#: composite's local tiers are read there too, without a thread hop per key); up to there, on threads.
ASYNC_MIN_WORKERS = 512
ENGINES = ("auto", "threads", "async")
#: Idle thread pools kept for the next runs in this process (any sizes, the most recently used).
IDLE_POOLS = 4


class _Pools:
    """ultima thread pools kept between runs in this process, so a run (a Beam batch, a short notebook call)
    does not start its threads again, and their memory stays warm. A run takes an idle pool of its size or a
    new one, and gives it back when it ends (its unfinished fetches were cancelled; any still running finish
    first), saying how many threads it knows the pool has (``warm``). At most ``IDLE_POOLS`` are kept, the most
    recently used; a forked child starts with none: its parent's threads do not exist there."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[tuple[int, Any]] = []  # (n_workers, workforce), oldest first
        self._warm: dict[int, int] = {}  # id(idle workforce) -> the threads it has

    def take(self, n_workers: int) -> tuple[Any, int]:
        """An idle pool of ``n_workers`` threads, or a new one (no thread started yet), and its threads."""
        with self._lock:
            for i in range(len(self._idle) - 1, -1, -1):
                if self._idle[i][0] == n_workers:
                    pool = self._idle.pop(i)[1]
                    return pool, self._warm.pop(id(pool), 0)
        from ultima import Workforce

        return Workforce(backend="threading", n_workers=n_workers), 0

    def give(self, n_workers: int, workforce: Any, warm: int = 0) -> None:
        with self._lock:
            self._idle.append((n_workers, workforce))
            self._warm[id(workforce)] = warm
            retired = [pool for _, pool in self._idle[:-IDLE_POOLS]]
            del self._idle[:-IDLE_POOLS]
            for pool in retired:
                self._warm.pop(id(pool), None)
        for pool in retired:
            pool.shutdown(wait=False)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._idle = []
        self._warm = {}


_pools = _Pools()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_pools._after_fork)


class _Slot:
    """One fetch in flight, shared by every key in the window with the same canonical form."""

    __slots__ = ("future", "refs", "canonical", "size")

    def __init__(self, future: Any, canonical: Hashable | None):
        self.future, self.canonical, self.refs, self.size = future, canonical, 1, 0


class _Done(Future):
    """A future that is already resolved (for keys answered without a fetch)."""

    def __init__(self, value: Any):
        super().__init__()
        self.set_result(value)


class _Threads(_Answers):
    """Hands a window's keys to its pool's threads: at most ``max_workers`` drain tasks, each fetching queued keys
    until none is left. A busy window submits no task per key, and an idle one leaves no thread waiting for work
    (so nothing holds up the pool's shutdown at exit).

    Starting a thread blocks its starter until the new thread runs (``Thread.start``), which on a busy machine
    costs milliseconds per thread, a second or more for a thousand. So the consumer hands a drain straight to the
    pool only while the pool has an idle thread for it (``warm``: the threads it is known to have); beyond that,
    the pool's threads start the new ones, one at a time, each new drain asking for the next before its first key
    (while keys wait and fewer than ``max_workers`` run), and the consumer goes on filling the window meanwhile.
    It starts one itself only when no start is under way (the first drain of a cold pool, or after the queue ran
    dry)."""

    def __init__(self, workforce: Any, fetch: Callable[[Any, Any], Any], max_workers: int, warm: int = 0):
        super().__init__()
        self._workforce, self._fetch, self._max_drains = workforce, fetch, max_workers
        self._queue: deque[tuple[Any, Any, _Answer]] = deque()
        self._drains = 0  # drain tasks submitted and not ended
        self._starting = 0  # of those, not yet begun by a thread
        self.warm = warm  # threads the pool has (the most drains seen running at once, here or before)
        self._closed = False

    def submit(self, key: Any, slot: Any) -> _Answer:
        answer = _Answer(self)
        with self._cond:
            self._queue.append((key, slot, answer))
            drains = self._drains
            start = drains < self._max_drains and (drains < self.warm or not self._starting)
            if start:
                self._drains += 1
                self._starting += 1
        if start:
            self._spawn()
        return answer

    def close(self) -> None:
        """Drop the keys not started; the drains running finish their key and stop."""
        with self._cond:
            self._closed = True
            for _, _, answer in self._queue:
                answer.state = _CANCELLED
            self._queue.clear()

    def _spawn(self) -> None:
        try:
            self._workforce.submit(self._drain)
        except BaseException:
            with self._cond:
                self._drains -= 1
                self._starting -= 1
            raise

    def _more(self) -> bool:
        """Under the lock, on a drain: whether it should start the next drain (keys wait, fewer than
        ``max_workers`` drains, and no start under way); counts that start if so. A drain asks before taking its
        own first key, so the chain goes on while the consumer keeps up (a start too many finds no key and ends,
        leaving an idle thread for the next key)."""
        if self._starting or self._drains >= self._max_drains or not self._queue or self._closed:
            return False
        self._drains += 1
        self._starting += 1
        return True

    def _drain(self) -> None:  # on a pool thread
        queue, cond = self._queue, self._cond
        with cond:
            self._starting -= 1
            running = self._drains - self._starting
            if running > self.warm:
                self.warm = running
            more = self._more()
        if more:
            try:
                self._spawn()
            except BaseException:  # noqa: BLE001 - the pool is shutting down: this drain still works its queue
                pass
        while True:
            with cond:
                while queue and queue[0][2].state != _QUEUED:  # cancelled
                    queue.popleft()
                if self._closed or not queue:
                    self._drains -= 1
                    return
                key, slot, answer = queue.popleft()
                answer.state = _RUNNING
            try:
                value = self._fetch(key, slot)
            except BaseException as exc:  # noqa: BLE001 - fetch answers every store error; this is the engine's
                value = exc if isinstance(exc, Exception) else RuntimeError(repr(exc))
            with cond:
                answer.value, answer.state = value, _DONE
                if self._awaited is answer:
                    cond.notify()
                more = self._more()
            if more:
                try:
                    self._spawn()
                except BaseException:  # noqa: BLE001 - as above
                    pass


def want_progress(progress: bool | None) -> bool:
    """``None`` shows progress only on an interactive terminal or in a notebook."""
    if progress is not None:
        return bool(progress)
    if _in_notebook():
        return True
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    try:
        ip = shell.get_ipython()
    except Exception:
        return False
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


def _progress_bar(total: int | None, enabled: bool, unit: str = "blob"):
    if not enabled:
        return None
    if _in_notebook() and importlib.util.find_spec("ipywidgets") is None:
        from tqdm.std import tqdm  # what tqdm.auto falls back to, minus its "IProgress not found" warning
    else:
        from tqdm.auto import tqdm

    return tqdm(total=total, unit=unit, desc="bitstore", dynamic_ncols=True, leave=True)


def run_many(
    store: Fetchable,
    keys: Iterable[Any],
    call: Callable[[Any], Any],
    invalid: Callable[[Any, str], Any],
    *,
    max_workers: int = 64,
    max_bytes_in_flight: int | None = None,
    progress: bool | None = None,
    total: int | None = None,
    keyed: bool = True,
    unit: str = "blob",
) -> Iterator[Any]:
    """The engine for any per-key call (``stat_many``, ``put_many``): ``call(key)`` on ``max_workers`` threads,
    one result per key in input order, through the same window and dedupe as ``fetch_many``. A result is a
    dataclass with a ``key`` field (bytes held: its ``data``, if it has one); ``invalid(key, error)`` answers a
    key the store does not accept. With ``keyed=False`` the items are not keys (``put_many``'s pairs and paths):
    every item goes to ``call`` as it is, none is deduplicated, and results keep the key ``call`` gave them.
    ``max_bytes_in_flight=None``: results hold no bytes, so only the window bounds what is read ahead."""
    if max_bytes_in_flight is None:
        max_bytes_in_flight = sys.maxsize
    _check_args(keys, max_workers, max_bytes_in_flight)
    total = _total(keys, total)
    budget = max_bytes_in_flight
    return _run(lambda: _Window(store, call, invalid, max_workers, budget, keyed), iter(keys),
                _progress_bar(total, want_progress(progress), unit))


def _check_args(keys: Any, max_workers: Any, max_bytes_in_flight: Any) -> None:
    if isinstance(keys, (str, bytes)):
        raise TypeError("keys must be an iterable of keys, not a single str/bytes; wrap it in a list")
    _check_limits(max_workers, max_bytes_in_flight)


def _check_limits(max_workers: Any, max_bytes_in_flight: Any) -> None:
    if not isinstance(max_workers, int) or max_workers < 1:
        raise ValueError(f"max_workers must be a positive int, not {max_workers!r}")
    if not isinstance(max_bytes_in_flight, int) or max_bytes_in_flight < 1:
        raise ValueError(f"max_bytes_in_flight must be a positive int, not {max_bytes_in_flight!r}")


def _check_engine(engine: Any) -> None:
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(map(repr, ENGINES))}, not {engine!r}")


def _total(keys: Any, total: int | None) -> int | None:
    if total is None:
        try:
            return len(keys)
        except TypeError:
            return None
    return total


def fetch_many(
    store: Fetchable,
    keys: Iterable[Any],
    *,
    max_workers: int = 64,
    max_bytes_in_flight: int,
    progress: bool | None = None,
    total: int | None = None,
    views: bool = False,
    engine: str = "auto",
    processes: int | None = None,
) -> Iterator[FetchResult]:
    """Fetch every key of ``keys`` like ``store.fetch``, ``max_workers`` at once; see module doc.

    With ``views``, a large blob may come as a read-only ``memoryview`` instead of ``bytes`` (``ground.views``)."""
    _check_args(keys, max_workers, max_bytes_in_flight)
    _check_engine(engine)
    if processes is not None and (isinstance(processes, bool) or not isinstance(processes, int) or processes < 1):
        raise ValueError(f"processes must be a positive int or None, not {processes!r}")
    total = _total(keys, total)
    tune_allocator()
    bar = _progress_bar(total, want_progress(progress))
    if processes is not None:
        from .procs import run_in_processes

        return run_in_processes(store, iter(keys), processes, max_workers, max_bytes_in_flight, bar, engine)
    return _run(lambda: FetchWindow(store, max_workers=max_workers, max_bytes_in_flight=max_bytes_in_flight,
                                    views=views, engine=engine), iter(keys), bar)


def _route(store: Fetchable, max_workers: int, engine: str) -> Route | CompositeRoute | None:
    """The async route for this run (the store's answer to ``async_route``), or None for threads only."""
    if engine == "threads" or (engine == "auto" and (not AUTO_ASYNC or max_workers <= ASYNC_MIN_WORKERS)):
        return None
    try:
        route = store.async_route()
    except Exception:  # noqa: BLE001 - a store that cannot say runs on threads, whose fetches say what is wrong
        return None
    if not isinstance(route, (Route, CompositeRoute)):
        return None
    return route


def _run(open_window: Callable[[], _Window[Any]], keys: Iterator[Any], bar) -> Iterator[Any]:
    """The generator behind ``get_many`` and ``run_many``: reads ``keys`` while the window has room, yields its
    head. The window is opened on the first ``next`` (and closed by the ``finally``, which a generator that never
    started would not run)."""
    try:
        window = open_window()
    except BaseException:
        if bar is not None:
            bar.close()
        raise
    exhausted = False
    keys_error: BaseException | None = None  # raised by the key iterator: re-raised once the window is yielded
    try:
        while True:
            while not exhausted and window.has_room():
                try:
                    key = next(keys)
                except StopIteration:
                    exhausted = True
                    break
                except Exception as exc:
                    exhausted, keys_error = True, exc
                    break
                window.offer(key)
            if not window:
                if keys_error is not None:
                    raise keys_error
                return
            result = window.pop()
            if bar is not None:
                bar.update(1)
            yield result
    finally:
        window.close()
        if bar is not None:
            bar.close()


class _Slots(Generic[R]):
    """A window's bookkeeping, whatever fetches its keys: keys offered and not yet popped, in order, each with its
    fetch (shared by the keys of one canonical form), and the bytes their answers hold.

    ``has_room()`` says whether the bounds allow another key (fewer than ``max_workers`` keys, or fewer than
    ``WINDOW_PER_WORKER * max_workers`` while the bytes held are under ``budget``); ``offer(key)`` starts the
    key's fetch (``_start(key, slot)``, a future-like) or shares one in the window; ``_take()`` and ``_settle``
    pop the head. With ``check_keys=False`` a key is not checked with ``store.accepts`` here (its fetch does it:
    a store whose key check may not run where the window runs)."""

    def __init__(self, store: Fetchable, invalid: Callable[[Any, str], Any], max_workers: int, budget: int,
                 keyed: bool = True, check_keys: bool = True):
        self._store, self._invalid, self._keyed, self._check_keys = store, invalid, keyed, check_keys
        self._max_workers, self._cap, self._budget = max_workers, max_workers * WINDOW_PER_WORKER, budget
        self._slots: deque[tuple[Any, _Slot]] = deque()
        self._by_canonical: dict[Hashable, _Slot] = {}
        self._held = 0  # bytes fetched and not yet popped
        self._lock = threading.Lock()
        self._closed = False

    def __len__(self) -> int:
        return len(self._slots)

    def _start(self, key: Any, slot: _Slot) -> Any:
        raise NotImplementedError

    def has_room(self) -> bool:
        n = len(self._slots)
        return n < self._max_workers or (n < self._cap and self._held < self._budget)

    def offer(self, key: Any) -> None:
        """Start ``key``'s fetch, or share the one of a key in the window with the same canonical form. Call it
        while ``has_room()``: the window does not refuse a key, so the caller keeps the bounds."""
        if self._closed:
            raise RuntimeError("this window is closed")
        store = self._store
        if self._keyed and self._check_keys and not store.accepts(key):
            error = str(InvalidURI(store, key, hint=getattr(store, "URI_HINT", None)))
            self._slots.append((key, _Slot(_Done(self._invalid(key, error)), None)))
            return
        canonical = canonical_of(store, key) if self._keyed else None
        slot = self._by_canonical.get(canonical) if canonical is not None else None
        if slot is not None:
            slot.refs += 1
        else:
            slot = _Slot(None, canonical)
            slot.future = self._start(key, slot)
            if canonical is not None:
                self._by_canonical[canonical] = slot
        self._slots.append((key, slot))

    def _take(self) -> tuple[Any, _Slot]:
        return self._slots.popleft()

    def _settle(self, key: Any, slot: _Slot, result: Any) -> Any:
        """The popped head's ``result``: its slot released (its bytes no longer held once no key shares it), the
        key as offered."""
        slot.refs -= 1
        if slot.refs == 0:
            with self._lock:
                self._held -= slot.size
            if slot.canonical is not None and self._by_canonical.get(slot.canonical) is slot:
                del self._by_canonical[slot.canonical]
        if self._keyed and result.key is not key:
            result = replace(result, key=key)
        return result

    def _answered(self, slot: _Slot, result: Any) -> None:
        """Count the bytes of a fetch's answer (before the answer is delivered: a key's slot is released after)."""
        data = getattr(result, "data", None)
        slot.size = len(data) if data is not None else 0
        with self._lock:
            self._held += slot.size


class _Window(_Slots[R]):
    """The engine's window (``_Slots``) with the threads (and event loop) fetching its keys: ``pop(block)`` takes
    the head's result, waiting for it or, with ``block=False``, only if it is ready (else None); ``close()``
    cancels what has not started and gives the threads back. One consumer thread; ``call`` runs on the pool's
    threads."""

    def __init__(self, store: Fetchable, call: Callable[[Any], Any], invalid: Callable[[Any, str], Any],
                 max_workers: int, budget: int, keyed: bool = True, route: Any = None, views: bool = False):
        super().__init__(store, invalid, max_workers, budget, keyed)
        self._call = call
        self._workforce, warm = _pools.take(max_workers)
        loop = None
        if route is not None:
            from .loop import engine_loop

            loop = engine_loop()  # None once it was stopped at interpreter exit: threads then
        if loop is None:
            self._dispatcher = None
            self._threads: _Threads | None = _Threads(self._workforce, self._fetch, max_workers, warm)
            self._start = self._threads.submit
        else:
            self._threads = None
            from .aio import AsyncDispatcher

            self._dispatcher = AsyncDispatcher(route, loop, max_workers, views, self._workforce.submit,
                                               self._answered)
            self._start = self._dispatcher.submit
        self._warm = warm

    def __enter__(self) -> _Window[R]:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def ready(self) -> bool:
        """Whether the head's result is ready (False for an empty window). Hands queued keys to the event loop
        first, so a consumer that only polls never leaves them waiting there."""
        if not self._slots:
            return False
        if self._dispatcher is not None:
            self._dispatcher.flush()
        return self._slots[0][1].future.done()

    def pop(self, block: bool = True) -> R | None:
        """The head's result, waiting for it; with ``block=False``, None unless it is ready. None when empty."""
        if not self._slots or (not block and not self.ready()):
            return None
        key, slot = self._take()
        try:
            result = slot.future.result()
        except Exception as exc:  # calls never raise; this guards against a broken executor
            result = replace(self._invalid(key, f"{type(exc).__name__}: {exc}"), status="failed")
        return self._settle(key, slot, result)

    def close(self) -> None:
        """Cancel the fetches not started, stop the event loop's part and give the threads back (those running
        finish first, as their pool's next user finds). Idempotent; the window is empty afterwards."""
        if self._closed:
            return
        self._closed = True
        for _, slot in self._slots:
            slot.future.cancel()
        self._slots.clear()
        self._by_canonical.clear()
        warm = self._warm
        if self._threads is not None:
            self._threads.close()
            warm = self._threads.warm
        if self._dispatcher is not None:
            self._dispatcher.close()
        _pools.give(self._max_workers, self._workforce, warm)

    # --- on the pool's threads and the event loop ------------------------------------------------------
    def _fetch(self, key: Any, slot: _Slot) -> Any:
        # Counted before the future resolves (a done-callback could run after the consumer released the slot).
        try:
            result = self._call(key)
        except BaseException as exc:  # CancelledError, SystemExit... from a user's store: that key failed
            result = replace(self._invalid(key, f"{type(exc).__name__}: {short(str(exc), 1000)}"), status="failed")
        self._answered(slot, result)
        return result


class FetchWindow(_Window["FetchResult"]):
    """``get_many``'s engine driven by hand, for a consumer that is handed keys one at a time (the Beam DoFn).

    ``FetchWindow(store, max_workers=..., max_bytes_in_flight=..., views=False, engine="auto")`` checks its
    arguments as ``get_many`` does. While ``has_room()``, ``offer(key)`` starts a key's fetch (a key with the
    canonical form of one in the window shares its fetch; a key the store does not accept gets an ``invalid``
    result); ``pop()`` returns the results in the order the keys were offered, one per key, as ``FetchResult``s
    with the key as offered, waiting for the head's, and ``pop(block=False)`` returns it only if it is ready,
    else None; ``len()`` is the number of keys offered and not yet popped. ``close()`` (or leaving a ``with``
    block) cancels the fetches not started and gives the threads back; results not popped are dropped. Not
    thread-safe: one consumer thread."""

    def __init__(self, store: Fetchable, *, max_workers: int = 64, max_bytes_in_flight: int, views: bool = False,
                 engine: str = "auto"):
        _check_limits(max_workers, max_bytes_in_flight)
        _check_engine(engine)
        tune_allocator()
        if views:
            def call(key: Any) -> FetchResult:
                token = allow()
                try:
                    return store._result(key)
                finally:
                    restore(token)
        else:
            call = store._result  # keys were checked with store.accepts as they were offered

        def invalid(key: Any, error: str) -> FetchResult:
            return FetchResult(key, None, "invalid", error=error)

        super().__init__(store, call, invalid, max_workers, max_bytes_in_flight, True,
                         _route(store, max_workers, engine), views)

