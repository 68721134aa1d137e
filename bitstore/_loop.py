"""The engine's own asyncio event loop: one per process, in a daemon thread, started on first use.

The async engine (``bitstore.batch``) runs obstore's async GETs on it. A forked child starts without one (the
parent's thread does not exist there) and makes its own on first use; the parent's loop object is kept, never
closed in the child (closing it could touch state a parent thread held at the fork).
"""
from __future__ import annotations

import asyncio
import atexit
import os
import threading

__all__ = ["engine_loop"]

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_inherited: list[asyncio.AbstractEventLoop] = []
_owner_pid: dict[int, int] = {}  # loop thread ident -> pid of the process that started it


def engine_loop() -> asyncio.AbstractEventLoop:
    """This process's engine loop, running in its daemon thread."""
    global _loop
    loop = _loop
    if loop is not None:
        return loop
    with _lock:
        if _loop is None:
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def run() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            thread = threading.Thread(target=run, name="bitstore-engine-loop", daemon=True)
            thread.start()
            _owner_pid[thread.ident] = os.getpid()
            ready.wait()
            _loop = loop
            atexit.register(_stop, loop, thread)
        return _loop


def _stop(loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    """At exit: stop the loop and let its thread end before the interpreter finalizes, so no callback of
    obstore's runtime finds it half torn down."""
    if thread.is_alive() and thread.ident is not None and os.getpid() == _owner_pid.get(thread.ident):
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


def _after_fork_in_child() -> None:
    global _lock, _loop
    _lock = threading.Lock()
    if _loop is not None:
        _inherited.append(_loop)
    _loop = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
