"""Logging helpers: one logger per module, and "once per cause" logging for per-blob failures."""
from __future__ import annotations

import logging
import re
import threading

_seen: set[tuple[str, str]] = set()
_seen_lock = threading.Lock()
_MAX_CAUSES = 10_000
# What varies from blob to blob inside one cause: quoted keys or paths, hex digests, sizes and counts.
_PER_BLOB = re.compile(r"'[^']*'|\"[^\"]*\"|[0-9a-fA-F]{32,}|\d[\d,.]*")


def log_once(logger: logging.Logger, level: int, scope: str, cause: str, message: str) -> bool:
    """Log ``message`` the first time ``(scope, cause)`` is seen in this process; True when it was logged.

    Keys, paths and digests inside ``cause`` are ignored, so one cause hitting many blobs logs once.
    """
    key = (scope, _PER_BLOB.sub("<key>", cause))
    with _seen_lock:
        if key in _seen or len(_seen) >= _MAX_CAUSES:
            return False
        _seen.add(key)
    logger.log(level, "%s (logged once per cause; later occurrences are only counted)", message)
    return True


def cause_of(exc: BaseException) -> str:
    """A stable description of why something failed, for grouping: the type and the first line."""
    first = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {first[:200]}"


class Counter:
    """A thread-safe integer counter that pickles as its value."""

    def __init__(self, value: int = 0):
        self._value = value
        self._lock = threading.Lock()

    def add(self, n: int = 1) -> None:
        with self._lock:
            self._value += n

    @property
    def value(self) -> int:
        return self._value

    def __int__(self) -> int:
        return self._value

    def __eq__(self, other) -> bool:
        return int(self) == int(other) if isinstance(other, (int, Counter)) else NotImplemented

    def __hash__(self):
        return hash(self._value)

    def __repr__(self) -> str:
        return str(self._value)

    def __reduce__(self):
        return Counter, (self._value,)
