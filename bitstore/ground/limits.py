"""Per-tier limits: at most ``max_concurrency`` calls at once and ``max_rate`` calls per second, per process.

A ``TierLimiter`` is shared by every thread, ``get_many`` call and Beam DoFn thread of a process that uses
the same tier: ``limiter_for(key, limits)`` keeps one per tier key in a process-wide registry (a composite
pickles its tiers' keys, never their limiters; a forked child starts with an empty registry). Throttling
answers (HTTP 429, S3 ``SlowDown``, a ``Throttled`` raised by an API tier) make it back off, AIMD style:
the concurrency window and the rate are halved at most once per round of calls, then grow back a little
with every success; a ``Retry-After`` pauses the whole tier. Time comes from an injectable ``Clock``.
"""
from __future__ import annotations

import math
import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from .errors import Throttled
from .retry import DEFAULT_RETRY

__all__ = ["Clock", "SYSTEM_CLOCK", "ManualClock", "Limits", "TierLimiter", "limiter_for", "is_throttling",
           "MAX_RETRY_AFTER"]

#: A ``Retry-After`` longer than this (seconds) is capped, as in the retry policy: a server must not park a
#: tier for hours.
MAX_RETRY_AFTER = DEFAULT_RETRY.max_retry_after
#: The rate never backs off below this fraction of ``max_rate``.
MIN_RATE_FRACTION = 1 / 64
#: Each success gives back this fraction of ``max_rate`` after a back-off.
RATE_STEP = 1 / 32
_UNBOUNDED = math.inf
_THROTTLING = re.compile(
    r"\b(?:HTTP 429|SlowDown|Throttl\w*|TooManyRequests|Too Many Requests|RequestLimitExceeded|"
    r"rateLimitExceeded|userRateLimitExceeded|RequestThrottled|BandwidthLimitExceeded)\b"
)


class Clock(Protocol):
    """Where a limiter (and a negative cache) reads time and waits."""

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class _SystemClock:
    monotonic = staticmethod(time.monotonic)
    sleep = staticmethod(time.sleep)

    def __reduce__(self):
        return _system_clock, ()


def _system_clock() -> _SystemClock:
    return SYSTEM_CLOCK


SYSTEM_CLOCK: Clock = _SystemClock()


class ManualClock:
    """A clock that moves only when told (``advance``) or when someone ``sleep``s on it: for tests."""

    def __init__(self, start: float = 0.0):
        self.now = float(start)
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += max(0.0, seconds)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds

    def __getstate__(self):
        return {"now": self.now, "sleeps": list(self.sleeps)}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()


@dataclass(frozen=True)
class Limits:
    """A tier's limits: ``max_concurrency`` calls at once, ``max_rate`` calls per second (None: no limit)."""

    max_concurrency: int | None = None
    max_rate: float | None = None

    def __post_init__(self):
        c, r = self.max_concurrency, self.max_rate
        if c is not None and (isinstance(c, bool) or not isinstance(c, int) or c < 1):
            raise ValueError(f"max_concurrency must be a positive int or None, not {c!r}")
        if r is not None and (isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 < r < math.inf):
            raise ValueError(f"max_rate must be a positive number of calls per second or None, not {r!r}")

    @property
    def bounded(self) -> bool:
        return self.max_concurrency is not None or self.max_rate is not None


def is_throttling(error: BaseException) -> bool:
    """Whether ``error`` says "slow down": a ``Throttled``, an error flagged ``throttled``, or a transient
    error whose message names a 429 / SlowDown / throttling code (what the backends' error map keeps)."""
    if isinstance(error, Throttled) or getattr(error, "throttled", False):
        return True
    return _THROTTLING.search(str(error)) is not None


def retry_after_of(error: BaseException) -> float | None:
    value = getattr(error, "retry_after", None)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0 else None


class TierLimiter:
    """One tier's concurrency window and call schedule in this process (see the module doc).

    ``slot()`` is a context manager around one call: it waits for a free place in the concurrency window,
    then for the call's turn in the rate schedule (calls are spaced ``1 / rate`` apart, no burst), and
    yields a ticket. ``wait_turn()`` takes a turn in the schedule without a new place (a retry inside a
    call). ``throttled(ticket, retry_after)`` and ``succeeded()`` drive the adaptation.
    """

    def __init__(self, limits: Limits, clock: Clock = SYSTEM_CLOCK):
        self.limits = limits
        self.clock = clock
        self._cond = threading.Condition(threading.Lock())
        self._in_flight = 0
        self._cap = float(limits.max_concurrency) if limits.max_concurrency else _UNBOUNDED
        self._window = self._cap
        self._rate = float(limits.max_rate) if limits.max_rate else None
        self._next_turn = -math.inf
        self._paused_until = -math.inf
        self._epoch = 0  # bumped by every back-off: one back-off per round of calls
        self.backoffs = 0

    # --- state, for stats and tests ------------------------------------------------------------
    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def window(self) -> float:
        """The current concurrency window (``max_concurrency`` unless backed off; inf when unbounded)."""
        return self._window

    @property
    def rate(self) -> float | None:
        """The current calls per second (``max_rate`` unless backed off; None when unbounded)."""
        return self._rate

    # --- calls ---------------------------------------------------------------------------------
    @contextmanager
    def slot(self) -> Iterator[_Ticket]:
        """Wait for a place and a turn; the ticket's ``waited`` is the seconds spent waiting."""
        start = self.clock.monotonic()
        with self._cond:
            while self._in_flight + 1 > self._window:  # the window grows in fractions of a place
                self._cond.wait()
            self._in_flight += 1
            epoch = self._epoch
        try:
            self._take_turn()
            ticket = _Ticket(epoch, self.clock.monotonic() - start)
            yield ticket
        finally:
            with self._cond:
                self._in_flight -= 1
                self._cond.notify()

    def wait_turn(self, ticket: _Ticket | None = None) -> float:
        """Take a turn in the schedule for a retry within a call that holds a place (the retry starts a new
        round for ``ticket``); the seconds waited."""
        start = self.clock.monotonic()
        self._take_turn()
        if ticket is not None:
            ticket.epoch = self._epoch
        return self.clock.monotonic() - start

    def _take_turn(self) -> None:
        with self._cond:
            now = self.clock.monotonic()
            turn = max(now, self._paused_until)
            if self._rate is not None:
                turn = max(turn, self._next_turn)
                self._next_turn = turn + 1.0 / self._rate
        if turn > now:
            self.clock.sleep(turn - now)

    # --- adaptation ----------------------------------------------------------------------------
    def throttled(self, ticket: _Ticket | None = None, retry_after: float | None = None) -> None:
        """The tier said "slow down": halve the window (and the rate) once per round, honour ``retry_after``."""
        with self._cond:
            if retry_after is not None:
                until = self.clock.monotonic() + min(max(0.0, retry_after), MAX_RETRY_AFTER)
                self._paused_until = max(self._paused_until, until)
            if ticket is not None and ticket.epoch != self._epoch:
                return  # a call started before the last back-off: that back-off already answered it
            self._epoch += 1
            self.backoffs += 1
            self._window = max(1.0, math.floor(min(self._window, max(self._in_flight, 1)) / 2))
            if self._rate is not None:
                self._rate = max(self.limits.max_rate * MIN_RATE_FRACTION, self._rate / 2)

    def succeeded(self) -> None:
        """A call went through: grow the window by one per window of successes, the rate by a step."""
        if self._window >= self._cap and (self._rate is None or self._rate >= self.limits.max_rate):
            return  # the common case, without the lock
        with self._cond:
            if self._window < self._cap:
                self._window = min(self._cap, self._window + 1.0 / self._window)
                if self._window > 4096:  # grown far past any worker count: unbounded again
                    self._window = self._cap
                self._cond.notify()
            if self._rate is not None and self.limits.max_rate is not None:
                self._rate = min(float(self.limits.max_rate), self._rate + self.limits.max_rate * RATE_STEP)


@dataclass
class _Ticket:
    """One call's place: the adaptation round it started in, and the seconds it waited for its turn."""

    epoch: int
    waited: float


# --- the process-wide registry ---------------------------------------------------------------------
_registry: dict[Any, TierLimiter] = {}
_registry_lock = threading.Lock()
_generation = 0  # bumped in a forked child: tiers drop the limiters they remembered from the parent


def generation() -> int:
    return _generation


def limiter_for(key: Any, limits: Limits, clock: Clock = SYSTEM_CLOCK) -> TierLimiter:
    """This process's limiter for the tier ``key`` with ``limits`` (created on first use)."""
    full = (key, limits)
    limiter = _registry.get(full)
    if limiter is None:
        with _registry_lock:
            limiter = _registry.get(full)
            if limiter is None:
                limiter = _registry[full] = TierLimiter(limits, clock)
    return limiter


def _after_fork() -> None:
    global _registry_lock, _generation
    _registry.clear()
    _registry_lock = threading.Lock()
    _generation += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
