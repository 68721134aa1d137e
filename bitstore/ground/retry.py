"""The one retry policy: capped exponential backoff with full jitter, ``Retry-After`` honoured up to a cap,
counted in total attempts and bounded by one overall deadline per blob.

Backends classify an SDK error once (``bitstore.backends._errors``) into missing / unavailable /
permanent / transient; only transient errors come back here to be retried. After the last attempt,
or once the deadline has passed, the error becomes ``FetchFailed``, never ``NotFoundInStore``.
"""
from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .errors import BitstoreError, FetchFailed, store_label

T = TypeVar("T")

__all__ = ["RetryPolicy", "DEFAULT_RETRY", "TransientError", "DeadlineExceeded", "Attempt", "retry_gate",
           "first_attempt", "take_first_attempt"]

#: Set around a call by a composite tier (``bitstore.core.tier``): ``gate(error, wait, sleep)`` is called instead
#: of ``sleep(wait)`` before each retry, so the tier's limiter sees throttling answers and counts every retry
#: against its limits (the gate sleeps ``wait`` with ``sleep``, then waits for the retry's turn).
retry_gate: ContextVar[Callable[[TransientError, float, Callable[[float], Any]], None] | None] = ContextVar(
    "bitstore_retry_gate", default=None)
#: Set around a thread's fetch by the async batch engine (``bitstore.engine.aio``) when its event loop already made the
#: first attempt of ``uri``'s GET and that attempt failed: ``(uri, error, started)``. The store's GET takes it
#: (``take_first_attempt``) and passes it to ``RetryPolicy.run`` as attempt 0, so the policy goes on from there
#: (classified, counted, waited and retried as on threads, with the deadline running since ``started``).
first_attempt: ContextVar[tuple[Any, BaseException, float] | None] = ContextVar("bitstore_first_attempt",
                                                                                default=None)


def take_first_attempt(uri: Any) -> tuple[BaseException, float] | None:
    """The failed first attempt of ``uri``'s GET that the event loop made, if any: ``(error, started)``, taken
    once (a later GET in the same call starts afresh)."""
    held = first_attempt.get()
    if held is None or held[0] != uri:
        return None
    first_attempt.set(None)
    return held[1], held[2]


class TransientError(Exception):
    """Raised by a backend's error mapping for an error worth another attempt (throttling, 5xx, reset...).

    ``retry_after``: the seconds the service asked us to wait (its ``Retry-After``), when it said.
    ``throttled``: the service refused for load (429, 503, SlowDown), not for a fault of the request.
    ``immediate``: the next attempt goes another way (the SDK instead of the fast transport): no wait.
    """

    def __init__(self, message: str, *, retry_after: float | None = None, throttled: bool = False,
                 immediate: bool = False):
        super().__init__(message)
        self.retry_after = retry_after
        self.throttled = throttled
        self.immediate = immediate


class DeadlineExceeded(Exception):
    """Raised by a backend while reading a body when the blob's overall deadline has passed."""


@dataclass
class Attempt:
    """What an operation knows about the attempt it makes: its number (0-based), the time it may still take
    (``remaining`` seconds, None without a deadline), the clock to check it against, and the last transient
    error (None on the first attempt)."""

    number: int
    deadline_at: float | None
    clock: Callable[[], float]
    last: TransientError | None = None

    @property
    def remaining(self) -> float | None:
        return None if self.deadline_at is None else self.deadline_at - self.clock()

    def check(self) -> None:
        """Raise ``DeadlineExceeded`` once the deadline has passed (called between chunks of a body)."""
        if self.deadline_at is not None and self.clock() >= self.deadline_at:
            raise DeadlineExceeded("the blob's deadline passed while its body was read")


def _seconds(name: str, value: Any, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"RetryPolicy.{name} must be a finite number of seconds >= 0, not {value!r}")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a backend retries one operation.

    ``attempts`` is the total number of tries (the SDKs' own retries are switched off, not multiplied).
    The n-th wait is uniform in ``[0, min(max_delay, base_delay * 2**n)]`` ("full jitter"), or the
    service's ``Retry-After`` when it is longer (capped at ``max_retry_after``).
    ``deadline``: seconds one blob may take across all its attempts and waits (None: no overall limit). A
    download that keeps making progress runs until then; a stalled one ends at the store's read-idle timeout.
    ``clock`` and ``sleep`` can be replaced (a fake clock in tests).
    """

    attempts: int = 8
    base_delay: float = 0.05
    max_delay: float = 2.0
    deadline: float | None = 300.0
    max_retry_after: float = 30.0
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)
    sleep: Callable[[float], Any] = field(default=time.sleep, repr=False, compare=False)

    def __post_init__(self):
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int) or self.attempts < 1:
            raise ValueError(f"RetryPolicy.attempts must be an integer >= 1, not {self.attempts!r}")
        _seconds("base_delay", self.base_delay)
        _seconds("max_delay", self.max_delay)
        _seconds("max_retry_after", self.max_retry_after)
        _seconds("deadline", self.deadline, allow_none=True)
        if self.deadline == 0:
            raise ValueError("RetryPolicy.deadline must be > 0 (or None for no deadline)")

    @classmethod
    def coerce(cls, value: RetryPolicy | dict | int | None) -> RetryPolicy:
        """Accept a policy, a dict of its fields, an attempt count, or None (the default)."""
        if value is None:
            return DEFAULT_RETRY
        if isinstance(value, RetryPolicy):
            return value
        if isinstance(value, bool):
            raise TypeError("retry must be a RetryPolicy, a dict or an int")
        if isinstance(value, int):
            return cls(attempts=value)
        if isinstance(value, dict):
            return cls(**value)
        raise TypeError(f"retry must be a RetryPolicy, a dict or an int, not {type(value).__name__}")

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (0-based)."""
        backoff = random.uniform(0, min(self.max_delay, self.base_delay * (2**attempt)))
        if retry_after is not None and retry_after > 0:
            return max(backoff, min(retry_after, self.max_retry_after))
        return backoff

    def run(self, op: Callable[[Attempt], T], classify: Callable[[BaseException], BaseException | None],
            store: Any, uri: Any, made: tuple[BaseException, float] | None = None) -> T:
        """Call ``op(attempt)`` until it succeeds, a final error is classified, attempts run out or the deadline
        passes.

        ``classify(exc)`` returns the bitstore error to raise at once (missing, unavailable, too large),
        or a ``TransientError`` / None to retry. Unclassified errors are retried too: an unexpected error
        is never taken as "missing". An ``ImportError`` (a missing SDK, named with its extra) is raised at once.
        ``made``: ``(error, started)`` of a first attempt already made elsewhere (the async engine's loop): it is
        attempt 0, and the deadline runs from ``started``.
        """
        clock = self.clock
        started = clock() if made is None else made[1]
        deadline_at = None if self.deadline is None else started + self.deadline
        attempt = Attempt(0, deadline_at, clock)
        last = "no attempt made"
        for number in range(self.attempts):
            attempt.number = number
            try:
                if made is not None and number == 0:
                    raise made[0]
                return op(attempt)
            except ImportError:  # a missing SDK or extra is a configuration error: raised at once, never retried
                raise
            except Exception as exc:  # noqa: BLE001 - classification decides
                mapped = classify(exc)
                if isinstance(mapped, BitstoreError):
                    raise mapped from None
                if isinstance(exc, DeadlineExceeded):
                    last = str(exc)
                    break
                attempt.last = mapped if isinstance(mapped, TransientError) else TransientError(
                    f"{type(exc).__name__}: {exc}")
                last = str(attempt.last)
            if number + 1 < self.attempts and not attempt.last.immediate:
                wait = self.delay(number, attempt.last.retry_after)
                if deadline_at is not None and clock() + wait >= deadline_at:
                    break
                gate = retry_gate.get()
                if gate is None:
                    self.sleep(wait)
                else:
                    gate(attempt.last, wait, self.sleep)
        else:
            raise FetchFailed(store_label(store), uri, f"{self.attempts} attempts, last error: {last}")
        raise FetchFailed(store_label(store), uri,
                          f"deadline of {self.deadline:g}s passed after {attempt.number + 1} attempt(s), "
                          f"last error: {last}")


DEFAULT_RETRY = RetryPolicy()
