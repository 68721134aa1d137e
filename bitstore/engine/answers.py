"""What a window hands its keys to and waits on: ``_Answer`` (one key's fetch) and ``_Answers`` (their owner, one
condition for all), shared by the thread and event-loop engines, and ``canonical_of`` (the form under which a
window's keys share one fetch)."""
from __future__ import annotations

import threading
from collections.abc import Hashable
from concurrent.futures import CancelledError
from typing import Any

_QUEUED, _RUNNING, _DONE, _CANCELLED = range(4)


class _Answer:
    """One key's fetch handed to an engine, ``_Threads`` or the event loop's ``aio.AsyncDispatcher`` (``done``,
    ``result``, ``cancel``, as the window uses a future; the owner's ``_cancel`` and ``_wait`` do the work): a
    ``concurrent.futures.Future`` per key makes a condition and a lock, which cost the consumer more than the
    rest of its work per key (a third of it in the Beam DoFn's profile); these share their owner's condition."""

    __slots__ = ("state", "value", "_owner")

    def __init__(self, owner: Any):
        self.state, self.value, self._owner = _QUEUED, None, owner

    def done(self) -> bool:
        return self.state >= _DONE

    def cancel(self) -> bool:
        return self._owner._cancel(self)

    def result(self) -> Any:
        if self.state < _DONE:
            self._owner._wait(self)
        if self.state == _CANCELLED:
            raise CancelledError
        if isinstance(self.value, BaseException):
            raise self.value
        return self.value


class _Answers:
    """What hands out ``_Answer``s (``_Threads``, ``aio.AsyncDispatcher``): one condition for all of them, the answer
    the consumer waits for (the side that settles answers sets their state first and reads ``_awaited`` after, so
    either it sees the answer awaited and notifies, or the consumer sees it done before it waits)."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._awaited: _Answer | None = None  # the answer the consumer waits for, if it waits

    def _cancel(self, answer: _Answer) -> bool:
        """A queued answer is cancelled (never started); a running or done one is not."""
        with self._cond:
            if answer.state == _QUEUED:
                answer.state = _CANCELLED
            return answer.state == _CANCELLED

    def _wait(self, answer: _Answer) -> None:
        with self._cond:
            self._awaited = answer
            while answer.state < _DONE:
                self._cond.wait()
            self._awaited = None


def canonical_of(store: Any, key: Any) -> Hashable | None:
    """``store.canonical_key(key)`` if it is hashable, else None (the key is fetched on its own)."""
    try:
        canonical = store.canonical_key(key)
        hash(canonical)
        return canonical
    except Exception:
        return None
