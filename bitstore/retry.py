"""The one retry policy: capped exponential backoff with full jitter, counted in total attempts.

Backends classify an SDK error once (``bitstore.backends._errors``) into missing / unavailable /
permanent / transient; only transient errors come back here to be retried. After the last attempt
the error becomes ``FetchFailed``, never ``NotFoundInStore``.
"""
from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from .errors import BitstoreError, FetchFailed, store_label

T = TypeVar("T")

__all__ = ["RetryPolicy", "DEFAULT_RETRY", "TransientError"]


class TransientError(Exception):
    """Raised by a backend's error mapping for an error worth another attempt (throttling, 5xx, reset...)."""

    def __init__(self, message: str):
        super().__init__(message)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a backend retries one operation.

    ``attempts`` is the total number of tries (the SDKs' own retries are switched off, not multiplied).
    The n-th wait is uniform in ``[0, min(max_delay, base_delay * 2**n)]`` ("full jitter").
    """

    attempts: int = 8
    base_delay: float = 0.05
    max_delay: float = 2.0

    def __post_init__(self):
        if self.attempts < 1:
            raise ValueError("RetryPolicy.attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("RetryPolicy delays must be >= 0")

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

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (0-based)."""
        return random.uniform(0, min(self.max_delay, self.base_delay * (2**attempt)))

    def run(self, op: Callable[[], T], classify: Callable[[BaseException], BaseException | None],
            store: Any, uri: Any, sleep: Callable[[float], Any] = time.sleep) -> T:
        """Call ``op`` until it succeeds, a final error is classified, or attempts run out.

        ``classify(exc)`` returns the bitstore error to raise at once (missing, unavailable, too large),
        or a ``TransientError`` / None to retry. Unclassified errors are retried too: an unexpected error
        is never taken as "missing".
        """
        last = "no attempt made"
        for attempt in range(self.attempts):
            try:
                return op()
            except Exception as exc:  # noqa: BLE001 - classification decides
                mapped = classify(exc)
                if isinstance(mapped, BitstoreError):
                    raise mapped from None
                last = str(mapped) if isinstance(mapped, TransientError) else f"{type(exc).__name__}: {exc}"
            if attempt + 1 < self.attempts:
                sleep(self.delay(attempt))
        raise FetchFailed(store_label(store), uri, f"{self.attempts} attempts, last error: {last}")


DEFAULT_RETRY = RetryPolicy()
