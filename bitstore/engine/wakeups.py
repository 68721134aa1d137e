"""obstore's answers handed to an event loop together: one wake-up for all that finished meanwhile.

obstore's async API (pyo3-async-runtimes) settles each future it returns from a tokio thread: the thread takes the
GIL and calls ``loop.call_soon_threadsafe(completor, future, set_result, value)``, which writes a byte to the
loop's self-pipe, a syscall made with the GIL released, so the thread then waits for the GIL a second time while
the loop runs Python. With a thousand requests in flight, that is a thousand writes, GIL hand-offs and wake-ups
per thousand blobs. ``Batched`` is a ``call_soon_threadsafe`` that queues those completions (recognised by the
completor's type, ``CheckedCompletor``) and writes to the pipe only for the first one of a batch; the loop runs
the batch in order (each completor still checks that its future was not cancelled). Any other callback goes to
the loop's own ``call_soon_threadsafe`` as it came.

``batch_wakeups(loop)`` installs it on a caller's loop while ``aget_many`` (or another user) holds it; the engine's
own loop (``loop``) hands the completions of its futures to a ``Batched`` of its own, always (at 1,024 requests in
flight its client CPU per blob fell by about a tenth). A loop whose ``call_soon_threadsafe`` cannot be replaced (a C
loop such as uvloop's) keeps its own. A completor is known by its type's name: should obstore's runtime rename it,
completions are simply not batched.
"""
from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["Batched", "batch_wakeups", "release_wakeups", "is_completor"]

_COMPLETOR = "CheckedCompletor"  # pyo3-async-runtimes' callback that settles a future it made


def is_completor(callback: Any) -> bool:
    """Whether ``callback`` is pyo3-async-runtimes' completor (the settling of an obstore future)."""
    return type(callback).__name__ == _COMPLETOR


class Batched:
    """A loop's ``call_soon_threadsafe`` that queues obstore's completions and wakes the loop once per batch."""

    __slots__ = ("_loop", "_plain", "_lock", "_queue", "users")

    def __init__(self, loop: asyncio.AbstractEventLoop, plain: Callable[..., Any]):
        self._loop, self._plain = loop, plain  # ``plain``: the loop's own call_soon_threadsafe (bound)
        self._lock = threading.Lock()
        self._queue: list[tuple[Any, tuple]] = []
        self.users = 0

    def __call__(self, callback: Any, *args: Any, context: Any = None) -> Any:
        if not is_completor(callback) or self._loop.is_closed():  # the loop's own answer, error included
            return self._plain(callback, *args, context=context)
        with self._lock:
            self._queue.append((callback, args))
            first = len(self._queue) == 1
        if first:
            try:
                self._plain(self._run)
            except RuntimeError:  # closed meanwhile: nobody awaits these futures any more
                with self._lock:
                    self._queue.clear()
        return None

    def _run(self) -> None:
        """On the loop: the batch's completions, in the order they came."""
        with self._lock:
            batch, self._queue = self._queue, []
        for callback, args in batch:
            try:
                callback(*args)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:  # noqa: BLE001 - as the loop reports a failing callback
                self._loop.call_exception_handler({"message": "obstore's completion failed", "exception": exc})


_installed_lock = threading.Lock()


def batch_wakeups(loop: asyncio.AbstractEventLoop) -> bool:
    """Batch obstore's completions on ``loop`` (a caller's) until as many ``release_wakeups`` as calls; whether
    they are batched (not on a loop whose method cannot be replaced)."""
    with _installed_lock:
        current = loop.__dict__.get("call_soon_threadsafe") if hasattr(loop, "__dict__") else None
        if isinstance(current, Batched):
            current.users += 1
            return True
        if current is not None:  # someone else's replacement: left alone
            return False
        try:
            batched = Batched(loop, loop.call_soon_threadsafe)
            loop.call_soon_threadsafe = batched  # type: ignore[method-assign]
        except (AttributeError, TypeError):
            return False
        batched.users = 1
        return True


def release_wakeups(loop: asyncio.AbstractEventLoop) -> None:
    """One ``batch_wakeups`` ended; the loop's own method is back once none is left (completions still queued
    run in the batch already scheduled)."""
    with _installed_lock:
        current = loop.__dict__.get("call_soon_threadsafe") if hasattr(loop, "__dict__") else None
        if not isinstance(current, Batched):
            return
        current.users -= 1
        if current.users <= 0:
            del loop.__dict__["call_soon_threadsafe"]
