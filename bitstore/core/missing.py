"""The negative cache: keys every tier answered "not found", remembered for ``ttl`` seconds.

Bounded in entries (least recently confirmed dropped first). Only complete "not found" verdicts go in;
a failure never does, and a write of the key takes it out. Pickles as its settings, empty.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable

from ..ground.limits import SYSTEM_CLOCK, Clock

__all__ = ["MissingCache", "DEFAULT_MAX_ENTRIES"]

DEFAULT_MAX_ENTRIES = 100_000


class MissingCache:
    def __init__(self, ttl: float, max_entries: int = DEFAULT_MAX_ENTRIES, clock: Clock = SYSTEM_CLOCK):
        if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not ttl > 0:
            raise ValueError(f"missing_ttl must be a positive number of seconds, not {ttl!r}")
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ValueError(f"max_entries must be a positive int, not {max_entries!r}")
        self.ttl, self.max_entries, self.clock = float(ttl), max_entries, clock
        self._expiry: OrderedDict[Hashable, float] = OrderedDict()
        self._lock = threading.Lock()

    def __contains__(self, key: Hashable) -> bool:
        """Whether ``key`` was answered "not found" less than ``ttl`` seconds ago."""
        with self._lock:
            expiry = self._expiry.get(key)
            if expiry is None:
                return False
            if self.clock.monotonic() >= expiry:
                del self._expiry[key]
                return False
            self._expiry.move_to_end(key)
            return True

    def add(self, key: Hashable) -> None:
        with self._lock:
            self._expiry[key] = self.clock.monotonic() + self.ttl
            self._expiry.move_to_end(key)
            while len(self._expiry) > self.max_entries:
                self._expiry.popitem(last=False)

    def discard(self, key: Hashable) -> None:
        with self._lock:
            self._expiry.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._expiry.clear()

    def __len__(self) -> int:
        return len(self._expiry)

    def __getstate__(self):
        return {"ttl": self.ttl, "max_entries": self.max_entries, "clock": self.clock}

    def __setstate__(self, state):
        self.__init__(state["ttl"], state["max_entries"], state["clock"])
