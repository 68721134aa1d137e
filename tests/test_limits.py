"""``bitstore.ground.limits``: the concurrency window and call schedule, against a manual clock (never wall time)."""
from __future__ import annotations

import os
import pickle
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bitstore.ground.errors import Throttled
from bitstore.ground.limits import MAX_RETRY_AFTER, Limits, ManualClock, TierLimiter, is_throttling, limiter_for
from bitstore.ground.retry import TransientError


def starts(limiter: TierLimiter, clock: ManualClock, n: int) -> list[float]:
    out = []
    for _ in range(n):
        with limiter.slot():
            out.append(clock.monotonic())
    return out


def test_max_rate_spaces_calls_evenly_without_a_burst():
    clock = ManualClock(100.0)
    limiter = TierLimiter(Limits(max_rate=4), clock)
    assert starts(limiter, clock, 5) == [100.0, 100.25, 100.5, 100.75, 101.0]
    assert sum(clock.sleeps) == pytest.approx(1.0)


def test_idle_time_is_not_saved_up_as_a_burst():
    clock = ManualClock()
    limiter = TierLimiter(Limits(max_rate=2), clock)
    starts(limiter, clock, 2)
    clock.advance(10)
    assert starts(limiter, clock, 2) == [10.5, 11.0]


def test_throttling_halves_the_rate_once_per_round_and_successes_bring_it_back():
    clock = ManualClock()
    limiter = TierLimiter(Limits(max_rate=64), clock)
    with limiter.slot() as first, limiter.slot() as second:
        limiter.throttled(first)
        limiter.throttled(second)  # same round: already answered by the first back-off
    assert limiter.rate == 32 and limiter.backoffs == 1
    with limiter.slot() as later:
        limiter.throttled(later)
    assert limiter.rate == 16
    for _ in range(200):
        limiter.succeeded()
    assert limiter.rate == 64


def test_rate_never_backs_off_below_its_floor():
    limiter = TierLimiter(Limits(max_rate=64), ManualClock())
    for _ in range(20):
        limiter.throttled()
    assert limiter.rate == 1


def test_retry_after_pauses_every_caller():
    clock = ManualClock()
    limiter = TierLimiter(Limits(max_concurrency=4), clock)
    limiter.throttled(None, retry_after=3.0)
    assert starts(limiter, clock, 2) == [3.0, 3.0]
    limiter.throttled(None, retry_after=10_000)
    assert starts(limiter, clock, 1) == [3.0 + MAX_RETRY_AFTER]


def test_concurrency_window_halves_on_throttling_and_grows_back():
    clock = ManualClock()
    limiter = TierLimiter(Limits(max_concurrency=8), clock)
    slots = [limiter.slot() for _ in range(8)]
    tickets = [s.__enter__() for s in slots]
    limiter.throttled(tickets[0])
    for s in slots:
        s.__exit__(None, None, None)
    assert limiter.window == 4
    for _ in range(4 + 5 + 6 + 7 - 1):
        limiter.succeeded()
    assert int(limiter.window) == 7  # one place more per window's worth of successes
    for _ in range(10):
        limiter.succeeded()
    assert limiter.window == 8


def test_unbounded_limiter_backs_off_to_half_the_calls_in_flight():
    limiter = TierLimiter(Limits(), ManualClock())
    assert limiter.window == float("inf") and limiter.rate is None
    with limiter.slot(), limiter.slot(), limiter.slot() as t:
        with limiter.slot():
            limiter.throttled(t)
    assert limiter.window == 2


def test_concurrency_is_never_exceeded_by_many_threads():
    limiter = TierLimiter(Limits(max_concurrency=3))
    lock, state = threading.Lock(), {"now": 0, "peak": 0}
    gate = threading.Barrier(3, timeout=30)

    def work(i):
        with limiter.slot():
            with lock:
                state["now"] += 1
                state["peak"] = max(state["peak"], state["now"])
            if i < 3:
                gate.wait()  # the first three meet inside: the window really is 3 wide
            with lock:
                state["now"] -= 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(40)]
    for t in threads[:3]:
        t.start()
    for t in threads[3:]:
        t.start()
    for t in threads:
        t.join(60)
    assert state["peak"] == 3 and limiter.in_flight == 0


@settings(max_examples=60, deadline=None)
@given(rate=st.floats(0.5, 500), events=st.lists(st.sampled_from(["call", "throttle", "ok", "idle"]), max_size=60))
def test_calls_are_never_closer_than_the_max_rate_allows(rate, events):
    clock = ManualClock()
    limiter = TierLimiter(Limits(max_rate=rate), clock)
    times = []
    for event in events:
        if event == "call":
            with limiter.slot() as ticket:
                times.append(clock.monotonic())
                last = ticket
        elif event == "throttle" and times:
            limiter.throttled(last)
        elif event == "ok":
            limiter.succeeded()
        else:
            clock.advance(1 / rate)
    assert all(b - a >= 1 / rate - 1e-9 for a, b in zip(times, times[1:]))
    assert limiter.rate <= rate


def test_registry_one_limiter_per_tier_and_limits_per_process():
    key = object()
    a = limiter_for(key, Limits(max_concurrency=2))
    assert limiter_for(key, Limits(max_concurrency=2)) is a
    assert limiter_for(key, Limits(max_concurrency=3)) is not a
    assert limiter_for(object(), Limits(max_concurrency=2)) is not a


@pytest.mark.parametrize("kwargs", [{"max_concurrency": 0}, {"max_concurrency": 1.5}, {"max_concurrency": True},
                                    {"max_rate": 0}, {"max_rate": float("inf")}, {"max_rate": "10"}])
def test_bad_limits_fail_at_once(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        Limits(**kwargs)


def test_throttling_answers_are_recognised():
    assert is_throttling(Throttled())
    assert is_throttling(TransientError("S3 GetObject: SlowDown: Please reduce your request rate"))
    assert is_throttling(TransientError("rateLimitExceeded (HTTP 429): slow down"))
    assert not is_throttling(TransientError("timeout reading 'logs/429.txt'"))  # a key is not a status
    assert not is_throttling(TransientError("HTTP 503 Service Unavailable"))
    assert not is_throttling(RuntimeError("connection reset"))


def test_throttled_pickles_with_its_retry_after():
    back = pickle.loads(pickle.dumps(Throttled(retry_after=2.5)))
    assert back.retry_after == 2.5 and "retry after 2.5s" in str(back)


def test_manual_clock_pickles():
    clock = ManualClock(5)
    clock.sleep(1)
    back = pickle.loads(pickle.dumps(clock))
    assert back.monotonic() == 6 and back.sleeps == [1]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_starts_with_its_own_limiters():
    """A child forked while the parent holds the tier's only place gets a fresh limiter (no inherited lock or
    count), and the tier's remembered limiter is dropped too."""
    from bitstore import Composite
    from tests.core_helpers import DictStore

    store = Composite()
    store.append_source(DictStore({"k": b"v"}), max_concurrency=1)
    limiter = store.tiers[0].limiter()
    with limiter.slot():
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: must not wait for the parent's place
            try:
                ok = store.get("k") == b"v" and store.tiers[0].limiter() is not limiter
                os.write(write, b"ok" if ok else b"no")
            finally:
                os._exit(0)
        os.close(write)
        answer = os.read(read, 2)
        os.waitpid(pid, 0)
    assert answer == b"ok" and store.tiers[0].limiter() is limiter
