"""``Tier``: one tier of a composite, the store plus how the composite uses it (write-back, cache role,
limits, statistics), and the one call path to it: under the tier's limiter, timed, counted, and retried
after a throttling answer."""
from __future__ import annotations

import uuid
from typing import Any

from ..ground.errors import FetchFailed, NotFoundInStore, Throttled
from ..ground.limits import (
    SYSTEM_CLOCK,
    Clock,
    Limits,
    TierLimiter,
    generation,
    is_throttling,
    limiter_for,
    retry_after_of,
)
from ..ground.retry import DEFAULT_RETRY, RetryPolicy, retry_gate
from ..ground.stats import TierSnapshot, TierStats, Usage
from .store import Store

__all__ = ["Tier", "usage_of"]


def usage_of(store: Any) -> Usage | None:
    """A bounded store's ``Usage`` for its statistics (None when unbounded, or when it cannot be read now)."""
    usage = getattr(store, "usage", None)
    try:
        return usage() if callable(usage) else None
    except Exception:  # statistics never fail: an index that cannot be read shows nothing
        return None


class Tier:
    """A tier record. ``limit_group`` names the limiter in the process-wide registry: tiers (of any
    composites, pickled copies included) with the same group and limits share one limiter per process."""

    _local_reads: bool | None = None  # whether the store reads locally (``_local``); unknown until asked

    def __init__(self, store: Store, name: str, *, write_back: bool = False, is_cache: bool = False,
                 limits: Limits | None = None, limit_group: str | None = None, clock: Clock = SYSTEM_CLOCK,
                 throttle_retry: RetryPolicy = DEFAULT_RETRY):
        self.store = store
        self.name = name
        self.write_back = write_back
        self.is_cache = is_cache
        self.limits = limits if limits is not None and limits.bounded else None
        self.limit_group = limit_group or uuid.uuid4().hex
        self.clock = clock
        self.throttle_retry = throttle_retry
        self.stats = TierStats()
        self._adaptive = False  # throttled once without limits: an adaptive limiter from then on
        self._limiter: tuple[int, TierLimiter] | None = None
        self._local_reads: bool | None = None

    # --- the limiter ---------------------------------------------------------------------------------
    def limiter(self) -> TierLimiter | None:
        """This process's limiter for the tier (None for a tier without limits that was never throttled)."""
        if self.limits is None and not self._adaptive:
            return None
        held = self._limiter
        if held is not None and held[0] == generation():
            return held[1]
        limiter = limiter_for(self.limit_group, self.limits or Limits(), self.clock)
        self._limiter = (generation(), limiter)
        return limiter

    def _throttled_limiter(self) -> TierLimiter:
        self._adaptive = True
        return self.limiter()

    # --- calls ---------------------------------------------------------------------------------------
    def get(self, uri: Any) -> bytes:
        """The tier's answer for ``uri``: bytes, or the tier's own error. A ``Throttled`` answer is retried
        (``throttle_retry`` attempts in all, each under the limiter) before it becomes ``FetchFailed``."""
        local = self._local_reads
        if local is None:
            local = self._local()
        if local and self.limits is None and not self._adaptive:
            return self._call_local(uri)
        policy = self.throttle_retry
        for attempt in range(policy.attempts):
            limiter = self.limiter()
            try:
                if limiter is None:
                    return self._call(uri, None, None)
                with limiter.slot() as ticket:
                    self.stats.waited(ticket.waited)
                    return self._call(uri, limiter, ticket)
            except Throttled as exc:
                last = exc
                if attempt + 1 < policy.attempts:
                    pause = policy.delay(attempt, retry_after_of(exc))  # at least the Retry-After (capped)
                    self.clock.sleep(pause)
                    self.stats.waited(pause)
        raise FetchFailed(self.name, uri, f"throttled {policy.attempts} times, last answer: {last}")

    def _call(self, uri: Any, limiter: TierLimiter | None, ticket: Any) -> bytes:
        clock = self.clock
        token = retry_gate.set(lambda error, delay, sleep: self._before_retry(ticket, error, delay, sleep))
        start = clock.monotonic()
        try:
            data = self.store.get(uri)
        except BaseException as exc:
            self.account(exc, clock.monotonic() - start, limiter, ticket)
            raise
        finally:
            retry_gate.reset(token)
        self.account(data, clock.monotonic() - start, limiter)
        return data

    def _local(self) -> bool:
        """Whether the store's reads are local ones (``reads_on_loop``: a file, a dict): no backend retries inside
        them and none answers "slow down", so a call needs no retry gate (asked once)."""
        local = self._local_reads
        if local is None:
            try:
                local = self._local_reads = bool(self.store.reads_on_loop())
            except Exception:  # noqa: BLE001 - a store that cannot say takes the general path
                local = self._local_reads = False
        return local

    def _call_local(self, uri: Any) -> bytes:
        """``_call`` of a tier without a limiter whose store reads locally: timed and counted the same way."""
        now = self.clock.monotonic
        start = now()
        try:
            data = self.store.get(uri)
        except BaseException as exc:
            self.account(exc, now() - start)
            raise
        if type(data) is bytes:
            self.stats.hit(now() - start, len(data))
        else:
            self.account(data, now() - start)
        return data

    def account(self, outcome: Any, seconds: float, limiter: TierLimiter | None = None, ticket: Any = None) -> None:
        """Count one call to the tier's store that took ``seconds`` by what it gave: bytes (a hit), a
        ``NotFoundInStore`` (a miss; a corrupt copy's ``InvalidDataFound`` too), a ``Throttled`` (the limiter
        backs off), any other error or a value that is not bytes (a failure). The one accounting of a call:
        ``_call``'s, and the async engine's for the first attempts it answers on its event loop."""
        stats = self.stats
        if isinstance(outcome, BaseException):
            if isinstance(outcome, Throttled):
                stats.call("throttled", seconds)
                (limiter or self._throttled_limiter()).throttled(ticket, retry_after_of(outcome))
            else:
                stats.call("miss" if isinstance(outcome, NotFoundInStore) else "failure", seconds)
            return
        if isinstance(outcome, (bytes, bytearray, memoryview)):
            stats.call("hit", seconds, len(outcome))
        else:  # the composite reports it; for the statistics it is a failed call
            stats.call("failure", seconds)
        if limiter is not None:
            limiter.succeeded()

    @property
    def limited(self) -> bool:
        """Whether calls go through a limiter (a blocking one): the tier has limits, or was throttled once."""
        return self.limits is not None or self._adaptive

    def _before_retry(self, ticket: Any, error: BaseException, delay: float, sleep: Any) -> None:
        """A backend is about to retry inside one call (the async engine's thread included, after its loop's
        first attempt): tell the limiter about throttling, sleep the backend's delay (with the backend's
        ``sleep``), then wait for the retry's turn in the tier's schedule (all counted as waiting)."""
        limiter = self.limiter()
        if is_throttling(error):
            self.stats.retried(throttled=True)
            limiter = limiter or self._throttled_limiter()
            limiter.throttled(ticket, retry_after_of(error))
        else:
            self.stats.retried(throttled=False)
        sleep(delay)  # the backend's own wait, with its policy's sleep
        waited = delay + (limiter.wait_turn(ticket) if limiter is not None else 0.0)
        self.stats.waited(waited)

    def snapshot(self) -> TierSnapshot:
        return self.stats.snapshot(self.name, usage_of(self.store))

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_limiter"] = None  # limiters are per process: found again (or made) in the registry
        state["_local_reads"] = None
        return state

    def __repr__(self) -> str:
        return f"<Tier {self.name!r}{' (cache)' if self.is_cache else ''}{' -> cache' if self.write_back else ''}>"

