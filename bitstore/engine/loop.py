"""The engine's own asyncio event loop: one per process, in a daemon thread, started on first use.

The async engine (``bitstore.engine.batch``) runs obstore's async GETs on it. A forked child starts without one (the
parent's thread does not exist there) and makes its own on first use; the parent's loop object is kept, never
closed in the child (closing it could touch state a parent thread held at the fork).

Exit. obstore's async API (pyo3-async-runtimes over a tokio runtime that is never shut down) settles each
future it returns from a tokio thread: that thread takes the GIL, asks the future ``cancelled()``, hands
``set_result`` to the loop's ``call_soon_threadsafe``, drops its references and lets the GIL go (its "tail").
A tail that is inside Python code with the GIL released (``call_soon_threadsafe`` sends on the loop's
self-pipe, for the first completion of a batch: ``wakeups``) when the interpreter begins to finalize is ended by
CPython with ``pthread_exit`` as it takes the GIL back (up to Python 3.13), and that unwinding aborts the process
(SIGABRT, nothing printed; seen with gdb).
It happened after all the work was done, when the tail of the last request was still running as the main
thread finished (about 3 runs in 100), and can happen to a request answered just as the process exits. So at
exit, while the interpreter is fully alive, ``_stop`` (an atexit handler) makes this loop quiet first:

1. every task on the loop is cancelled, which cancels the obstore futures they await: tokio drops those
   requests and their tails begin at once (a request left running would settle whenever its server answers);
2. it waits, the GIL released, until every future this loop made for obstore (``_TokioFuture``, see
   ``tokio_call``) has begun its tail, and until no thread seen in a tail is still running Python code;
3. then it stops the loop and joins its thread.

The wait is bounded (``EXIT_WAIT``); a process whose loop never ran obstore waits for nothing.

A caller's own loop (``Store.aget``/``aget_many``, ``onloop``) cannot be made to create tracked futures, so its
obstore futures are kept in ``_foreign`` until done; at exit (``_settle_foreign``, an atexit handler registered on
first use) the process waits, bounded the same way, until each of them is done or its loop closed, and then
until no thread that Python did not start (a tokio thread in its tail) is running Python code.
"""
from __future__ import annotations

import asyncio
import atexit
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from .wakeups import Batched

__all__ = ["engine_loop", "tokio_call", "settled", "EXIT_WAIT"]

#: Seconds at most that interpreter exit waits for tokio's threads to finish settling this loop's futures.
EXIT_WAIT = 5.0

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_inherited: list[asyncio.AbstractEventLoop] = []
_owner_pid: dict[int, int] = {}  # loop thread ident -> pid of the process that started it
_unbegun: set[asyncio.Future] = set()  # obstore futures of this loop whose tail has not begun
_tail_threads: set[int] = set()  # idents of the tokio threads seen settling a future of this loop
_TAIL_THREADS_KEPT = 4096  # beyond this many, idents of threads not running Python code are forgotten
_exited = False  # this process's loop was stopped at exit: the engine runs on threads from then on


class _TokioFuture(asyncio.Future):
    """A future made by the engine loop for obstore (in ``tokio_call``), which settles it from a tokio thread. The
    first call it gets from a thread other than the loop's, ``cancelled()`` (or ``call_soon_threadsafe`` with it),
    is the tail beginning: the future leaves ``_unbegun`` and the thread is remembered."""

    __slots__ = ("_home",)

    def cancelled(self) -> bool:
        ident = threading.get_ident()
        if ident != self._home:
            if len(_tail_threads) >= _TAIL_THREADS_KEPT:  # tokio's blocking threads come and go
                _tail_threads.intersection_update(sys._current_frames())
            _tail_threads.add(ident)
            _unbegun.discard(self)
        return super().cancelled()


class _EngineLoop(asyncio.SelectorEventLoop):
    """The engine's loop: futures made inside ``tokio_call`` are ``_TokioFuture``s; ``closing`` is set at exit,
    after which the engine starts no request (``bitstore.engine.aio``)."""

    def __init__(self) -> None:
        super().__init__()
        self._batched = Batched(self, super().call_soon_threadsafe)  # obstore's completions, a wake-up per batch
        self.for_tokio = False
        self.closing = False
        self.home = 0  # ident of the loop's thread

    def create_future(self) -> asyncio.Future:
        if not self.for_tokio:
            return asyncio.Future(loop=self)
        future = _TokioFuture(loop=self)
        future._home = self.home
        _unbegun.add(future)
        return future

    def call_soon_threadsafe(self, callback: Callable[..., Any], *args: Any, context: Any = None):
        if args and type(args[0]) is _TokioFuture:  # pyo3-async-runtimes: (completor, future, set_result, value)
            args[0].cancelled()
            return self._batched(callback, *args, context=context)
        return super().call_soon_threadsafe(callback, *args, context=context)


def tokio_call(loop: asyncio.AbstractEventLoop, call: Callable[..., Any], *args: Any) -> Any:
    """``call(*args)``, a call into obstore's async API made on ``loop``, with the future it makes tracked as
    obstore's when ``loop`` is the engine's (see the module's "Exit")."""
    if type(loop) is not _EngineLoop:
        future = call(*args)
        _track_foreign(future)
        return future
    loop.for_tokio = True
    try:
        return call(*args)
    finally:
        loop.for_tokio = False


def engine_loop() -> asyncio.AbstractEventLoop | None:
    """This process's engine loop, running in its daemon thread; None once it was stopped at exit (an atexit
    handler that runs after bitstore's gets threads)."""
    global _loop
    if _exited:
        return None
    loop = _loop
    if loop is not None:
        return loop
    with _lock:
        if _exited:
            return None
        if _loop is None:
            loop = _EngineLoop()
            ready = threading.Event()

            def run() -> None:
                asyncio.set_event_loop(loop)
                loop.home = threading.get_ident()
                loop.call_soon(ready.set)
                loop.run_forever()

            thread = threading.Thread(target=run, name="bitstore-engine-loop", daemon=True)
            thread.start()
            _owner_pid[thread.ident] = os.getpid()
            ready.wait()
            _loop = loop
            atexit.register(_stop, loop, thread)
        return _loop


def _cancel_tasks(loop: _EngineLoop, done: threading.Event) -> None:
    loop.closing = True
    for task in asyncio.all_tasks(loop):
        task.cancel()
    done.set()


def quiet() -> bool:
    """Whether no obstore future of the engine loop can still touch Python from a tokio thread: every one has begun
    its tail, and no thread seen in a tail is running Python code (checked holding the GIL: a tail not holding it
    is waiting for it inside Python code, so it shows a frame)."""
    if _unbegun:
        return False
    return not (_tail_threads and _tail_threads.intersection(sys._current_frames()))


def _stop(loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    """At exit, before the interpreter finalizes: cancel the loop's requests, wait until tokio's threads are done
    with this loop's futures (bounded by ``EXIT_WAIT``), then stop the loop and let its thread end."""
    global _exited
    if not (thread.is_alive() and thread.ident is not None and os.getpid() == _owner_pid.get(thread.ident)):
        return
    _exited = True
    deadline = time.monotonic() + EXIT_WAIT
    if isinstance(loop, _EngineLoop):
        cancelled = threading.Event()
        loop.call_soon_threadsafe(_cancel_tasks, loop, cancelled)
        cancelled.wait(EXIT_WAIT)
        while not quiet() and time.monotonic() < deadline:
            time.sleep(0.001)  # the GIL is free meanwhile, for the tails and the loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(max(0.0, deadline - time.monotonic()) + 1.0)


_foreign: set[asyncio.Future] = set()  # obstore futures made on callers' loops, until ``settled`` (or pruned)
_foreign_prune_at = 4096  # twice what was left after the last pruning (at least 4096)
_foreign_watched = False


def _track_foreign(future: Any) -> None:
    """Keep ``future`` until it is done (pruned when the set grows: a done callback would cost the loop a
    callback per request)."""
    global _foreign_watched, _foreign_prune_at
    _foreign.add(future)
    if len(_foreign) >= _foreign_prune_at:
        _foreign.difference_update([f for f in list(_foreign) if f.done()])
        _foreign_prune_at = max(4096, 2 * len(_foreign))
    if not _foreign_watched:
        _foreign_watched = True
        atexit.register(_settle_foreign)


def settled(future: Any) -> None:
    """``future`` (from ``tokio_call``) was awaited to its end (done or cancelled): a caller's loop's no longer
    kept, so its result (a blob) is not held here. Its tail, if still running, is seen at exit by its frame."""
    _foreign.discard(future)


def foreign_in_flight() -> int:
    """obstore futures made on callers' loops and not yet done (cancelled ones count as done)."""
    return sum(1 for future in list(_foreign) if not future.done())


def _foreign_frames() -> bool:
    """Whether a thread Python did not start (tokio's) is running Python code."""
    own = {t.ident for t in threading.enumerate() if not isinstance(t, threading._DummyThread)}
    return any(ident not in own for ident in sys._current_frames())


def _settle_foreign() -> None:
    """At exit: wait (bounded) until callers' obstore futures are done or their loops closed, then until tokio's
    threads are out of Python code for a while (see the module doc)."""
    deadline = time.monotonic() + EXIT_WAIT
    while time.monotonic() < deadline:
        if all(f.done() or f.get_loop().is_closed() for f in list(_foreign)):
            break
        time.sleep(0.001)
    quiet_since = time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - quiet_since < 0.02:
        if _foreign_frames():
            quiet_since = time.monotonic()
        time.sleep(0.001)


def _after_fork_in_child() -> None:
    global _lock, _loop, _exited
    _lock = threading.Lock()
    _exited = False
    if _loop is not None:
        _inherited.append(_loop)
    _loop = None
    _unbegun.clear()  # the parent's tokio threads do not exist here
    _foreign.clear()
    _tail_threads.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
