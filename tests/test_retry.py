"""The one retry policy, against a fake clock: attempts, backoff, Retry-After, the overall deadline."""
from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bitstore import FetchFailed, NotFoundInStore, RetryPolicy
from bitstore.backends._body import read_body
from bitstore.backends._errors import retry_after_of
from bitstore.ground.retry import Attempt, DeadlineExceeded, TransientError


class FakeClock:
    """Time that moves only when something sleeps or an operation says it took a while."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def policy(clock: FakeClock, **kw) -> RetryPolicy:
    return RetryPolicy(clock=clock, sleep=clock.sleep, **kw)


def transient(exc: BaseException) -> BaseException:
    return exc if isinstance(exc, TransientError) else TransientError(str(exc))


def test_succeeds_after_transient_errors_with_backoff_within_the_cap():
    clock = FakeClock()
    calls = []

    def op(attempt: Attempt) -> bytes:
        calls.append(attempt.number)
        if len(calls) < 4:
            raise TransientError("503")
        return b"ok"

    assert policy(clock, attempts=8, base_delay=0.1, max_delay=0.3).run(op, transient, "s", "k") == b"ok"
    assert calls == [0, 1, 2, 3]
    assert len(clock.sleeps) == 3 and all(0 <= s <= 0.3 for s in clock.sleeps)


def test_retry_after_is_honoured_and_capped():
    clock = FakeClock()
    asked = iter([4.0, 500.0])

    def op(attempt: Attempt) -> bytes:
        wait = next(asked, None)
        if wait is not None:
            raise TransientError("429", retry_after=wait, throttled=True)
        return b"ok"

    retry = policy(clock, attempts=5, base_delay=0.001, max_delay=0.002, max_retry_after=30.0, deadline=None)
    assert retry.run(op, transient, "s", "k") == b"ok"
    assert clock.sleeps[0] == pytest.approx(4.0, abs=0.01)
    assert clock.sleeps[1] == 30.0  # 500 s asked, capped


def test_the_deadline_ends_retries_with_a_failure_not_a_miss():
    clock = FakeClock()
    calls = []

    def op(attempt: Attempt) -> bytes:
        calls.append(attempt.remaining)
        clock.now += 4.0  # each attempt times out after 4 s
        raise TransientError("read timed out")

    with pytest.raises(FetchFailed, match="deadline of 10s passed") as info:
        policy(clock, attempts=100, base_delay=0.5, max_delay=0.5, deadline=10.0).run(op, transient, "s", "k")
    assert not isinstance(info.value, NotFoundInStore)
    assert len(calls) == 3  # 0 s, ~4 s, ~8 s in: a fourth would start after the deadline
    assert calls[0] == 10.0 and all(r > 0 for r in calls)
    assert clock.now - 1000.0 <= 10.0 + 4.0


def test_a_wait_that_would_cross_the_deadline_is_not_slept():
    clock = FakeClock()

    def op(attempt: Attempt) -> bytes:
        raise TransientError("429", retry_after=60.0, throttled=True)

    with pytest.raises(FetchFailed, match="deadline"):
        policy(clock, attempts=8, deadline=5.0, max_retry_after=120.0).run(op, transient, "s", "k")
    assert clock.sleeps == []


def test_a_body_still_arriving_at_the_deadline_ends_the_fetch():
    clock = FakeClock()
    calls = []

    def op(attempt: Attempt) -> bytes:
        calls.append(attempt.number)
        clock.now += 31.0
        attempt.check()
        return b"never"

    with pytest.raises(FetchFailed, match="deadline of 30s passed after 1 attempt"):
        policy(clock, attempts=8, deadline=30.0).run(op, transient, "s", "k")
    assert calls == [0]


def test_final_errors_are_raised_at_once():
    clock = FakeClock()
    calls = []

    def op(attempt: Attempt) -> bytes:
        calls.append(1)
        raise KeyError("gone")

    with pytest.raises(NotFoundInStore):
        policy(clock).run(op, lambda exc: NotFoundInStore("s", "k"), "s", "k")
    assert calls == [1] and clock.sleeps == []


def test_a_missing_sdk_is_raised_at_once_not_retried():
    """An ImportError (an SDK or extra not installed) is configuration: whatever ``classify`` says, never retried."""
    clock = FakeClock()
    calls = []

    def op(attempt: Attempt) -> bytes:
        calls.append(1)
        raise ImportError("google.cloud.storage is needed for this store: pip install 'bitstore-tiered[gcp]'")

    with pytest.raises(ImportError, match="bitstore-tiered"):
        policy(clock).run(op, lambda exc: TransientError("would retry"), "s", "k")
    assert calls == [1] and clock.sleeps == []


def test_gcs_without_its_sdk_fails_at_once(monkeypatch):
    import sys

    from bitstore import GSRaw

    monkeypatch.setitem(sys.modules, "google.cloud.storage", None)
    store = GSRaw(endpoint="http://127.0.0.1:9", transport="sdk", retry={"attempts": 8, "base_delay": 30.0})
    with pytest.raises(ImportError, match=r"bitstore-tiered\[gcp\]"):  # 8 attempts 30 s apart would time out
        store.get("gs://b/k")


@given(value=st.one_of(st.just(math.inf), st.just(-math.inf), st.just(math.nan),
                       st.floats(max_value=-1e-9, allow_nan=False, allow_infinity=False)))
def test_non_finite_or_negative_seconds_are_refused(value):
    for name in ("base_delay", "max_delay", "max_retry_after", "deadline"):
        with pytest.raises(ValueError, match=name):
            RetryPolicy(**{name: value})


def test_zero_attempts_or_deadline_are_refused_and_none_means_no_deadline():
    for kwargs in ({"attempts": 0}, {"attempts": 1.5}, {"attempts": True}, {"deadline": 0}):
        with pytest.raises(ValueError):
            RetryPolicy(**kwargs)
    assert RetryPolicy(deadline=None).deadline is None


@pytest.mark.parametrize(("header", "seconds"), [("7", 7.0), ("0", 0.0), (" 2.5 ", 2.5), ("-3", 0.0),
                                                 ("soon", None), (None, None)])
def test_retry_after_values(header, seconds):
    assert retry_after_of(header) == seconds


def test_retry_after_as_an_http_date_in_the_past_is_zero():
    assert retry_after_of("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


class Trickle:
    """A urllib3-like body that hands out one byte per read, forever, and advances the fake clock."""

    def __init__(self, clock: FakeClock, step: float):
        self.clock, self.step, self.reads = clock, step, 0

    def read1(self, amt: int, decode_content: bool = False) -> bytes:
        self.reads += 1
        self.clock.now += self.step
        return b"x"


class Steady:
    def __init__(self, data: bytes, piece: int):
        self.data, self.piece = data, piece

    def read1(self, amt: int, decode_content: bool = False) -> bytes:
        out, self.data = self.data[:self.piece], self.data[self.piece:]
        return out


def test_a_trickling_body_is_cut_at_the_deadline():
    clock = FakeClock()
    body = Trickle(clock, 1.0)
    with pytest.raises(DeadlineExceeded):
        read_body(body, None, Attempt(0, clock() + 30.0, clock), "s", "k", None)
    assert body.reads == 30


def test_a_steady_body_is_read_whole_and_checked_against_its_length():
    clock = FakeClock()
    data = bytes(range(256)) * 400
    assert read_body(Steady(data, 4096), len(data), Attempt(0, None, clock), "s", "k", None) == data
    from bitstore.backends._errors import ShortRead

    with pytest.raises(ShortRead):
        read_body(Steady(data[:-1], 4096), len(data), Attempt(0, None, clock), "s", "k", None)


def test_a_body_without_a_length_is_refused_past_the_size_limit():
    from bitstore import BlobTooLarge

    clock = FakeClock()
    with pytest.raises(BlobTooLarge):
        read_body(Steady(b"y" * 10_000, 1000), None, Attempt(0, None, clock), "s", "k", 5000)


def test_switching_transport_is_an_attempt_without_a_wait():
    clock = FakeClock()
    calls = []

    def op(attempt: Attempt) -> bytes:
        calls.append(attempt.number)
        if len(calls) == 1:
            raise TransientError("the fast transport cannot address this endpoint", immediate=True)
        return b"ok"

    assert policy(clock).run(op, transient, "s", "k") == b"ok"
    assert calls == [0, 1] and clock.sleeps == []


def test_a_first_attempt_made_elsewhere_is_attempt_zero_and_starts_the_deadline():
    """The async engine's loop made the first attempt: the policy goes on from it (classified, waited, counted),
    its deadline running since that attempt started, and a final error is raised without asking again."""
    clock = FakeClock()
    calls = []

    def op(attempt: Attempt) -> bytes:
        calls.append(attempt.number)
        return b"ok"

    made = (TransientError("503"), clock.now)
    assert policy(clock, attempts=3, base_delay=0.1, max_delay=0.1).run(op, transient, "s", "k", made) == b"ok"
    assert calls == [1] and len(clock.sleeps) == 1

    calls.clear()
    late = (TransientError("503"), clock.now - 10.0)  # started 10 s ago: a 5 s deadline has passed
    with pytest.raises(FetchFailed, match="deadline"):
        policy(clock, attempts=3, deadline=5.0).run(op, transient, "s", "k", late)
    assert calls == []

    missing = NotFoundInStore("s", "k")
    with pytest.raises(NotFoundInStore):
        policy(clock, attempts=3).run(op, lambda exc: exc, "s", "k", (missing, clock.now))
    assert calls == []
