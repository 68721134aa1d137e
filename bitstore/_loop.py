"""The engine's own asyncio event loop: one per process, in a daemon thread, started on first use.

The async engine (``bitstore.batch``) runs obstore's async GETs on it. A forked child starts without one (the
parent's thread does not exist there) and makes its own on first use; the parent's loop object is kept, never
closed in the child (closing it could touch state a parent thread held at the fork).
"""
from __future__ import annotations

import asyncio
import os
import threading

__all__ = ["engine_loop"]

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_inherited: list[asyncio.AbstractEventLoop] = []


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

            threading.Thread(target=run, name="bitstore-engine-loop", daemon=True).start()
            ready.wait()
            _loop = loop
        return _loop


def _after_fork_in_child() -> None:
    global _lock, _loop
    _lock = threading.Lock()
    if _loop is not None:
        _inherited.append(_loop)
    _loop = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
