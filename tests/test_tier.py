"""Tiers with limits inside a composite: quotas under get_many(max_workers=64), throttling retried under the
limiter (API tiers raising ``Throttled``, backends retrying a SlowDown), no head-of-line blocking."""
from __future__ import annotations

import pickle
import threading

import pytest

from bitstore import Composite, FetchFailed, RetryPolicy, Sha1Composite, Store, Throttled
from bitstore.backends.memory import MemoryRaw
from bitstore.core.sha1 import Sha1Store
from bitstore.ground.limits import ManualClock
from bitstore.spec import from_spec
from tests.core_helpers import DictAPI, DictStore, QuotaAPI, quota_state, sha1


def blobs_of(n: int, tag: str = "b") -> dict[str, bytes]:
    return {sha1(f"{tag}{i}".encode()): f"{tag}{i}".encode() for i in range(n)}


@pytest.mark.parametrize("quota", [1, 4, 8])
def test_get_many_with_64_workers_never_exceeds_the_tier_quota(quota):
    blobs = blobs_of(300, f"q{quota}")
    group = f"get-many-{quota}"
    store = Sha1Composite()
    store.append_source(QuotaAPI(blobs, quota, group=group), max_concurrency=quota)
    keys = list(blobs) + ["0" * 40]
    results = list(store.get_many(keys, max_workers=64, progress=False))
    state = quota_state(group)
    assert state.peak <= quota and state.throttled == 0
    assert [r.status for r in results] == ["found"] * 300 + ["missing"]
    assert [r.data for r in results[:-1]] == list(blobs.values())
    assert store.stats()["quota-api"].calls == state.calls == 301


def test_without_a_limit_the_same_quota_is_exceeded():
    """The control: what the limit prevents (the composite still retries each 429 under an adaptive limiter)."""
    blobs = blobs_of(200, "nolimit")
    store = Sha1Composite()
    store.append_source(QuotaAPI(blobs, 2, delay=0.005, group="no-limit"))
    results = list(store.get_many(blobs, max_workers=64, progress=False))
    state = quota_state("no-limit")
    assert state.throttled > 0 and state.peak > 2
    stats = store.stats()["quota-api"]
    assert stats.throttled == state.throttled and stats.calls == state.calls
    assert store.tiers[0].limiter() is not None  # the first 429 gave the tier an adaptive limiter
    assert sum(r.status == "found" for r in results) + sum(r.status == "failed" for r in results) == 200


def test_several_copies_of_a_pickled_composite_share_the_limit_in_a_process():
    blobs = blobs_of(120, "copies")
    store = Sha1Composite()
    store.append_source(QuotaAPI(blobs, 3, group="copies"), max_concurrency=3)
    copies = [pickle.loads(pickle.dumps(store)) for _ in range(4)]
    assert len({c.tiers[0].limiter() for c in copies} | {store.tiers[0].limiter()}) == 1
    out: dict[int, list] = {}

    def run(i, copy):
        out[i] = list(copy.get_many(blobs, max_workers=32, progress=False))

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(copies)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    state = quota_state("copies")
    assert state.peak <= 3 and state.throttled == 0
    assert all(r.status == "found" for results in out.values() for r in results) and len(out) == 4


def test_spec_limits_hold_across_builds_of_the_same_spec():
    spec = {"tier": [{"type": "api", "class": "tests.core_helpers:QuotaAPI", "blobs": {}, "quota": 2,
                      "group": "spec-builds", "max_concurrency": 2}]}
    a, b = from_spec(spec), from_spec(spec)
    assert a.tiers[0].limits.max_concurrency == 2 and a.tiers[0].limiter() is b.tiers[0].limiter()
    keys = [sha1(str(i).encode()) for i in range(60)]
    threads = [threading.Thread(target=lambda s=s: list(s.get_many(keys, max_workers=16, progress=False)))
               for s in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    state = quota_state("spec-builds")
    assert state.calls == 120 and state.peak <= 2 and state.throttled == 0


class ThrottlingAPI(DictAPI):
    """Answers 429 (with a Retry-After) to the first ``n_throttles`` calls, then serves."""

    def __init__(self, blobs, n_throttles: int, retry_after=None, clock=None, latency: float = 0.0):
        super().__init__(blobs, name="throttling-api")
        self.left, self.retry_after, self.clock, self.latency = n_throttles, retry_after, clock, latency

    def api_get(self, sha1_: str):
        if self.clock is not None:
            self.clock.advance(self.latency)
        if self.left > 0:
            self.left -= 1
            raise Throttled(retry_after=self.retry_after)
        return super().api_get(sha1_)


def test_throttled_calls_are_retried_under_the_limiter_and_waits_are_counted():
    clock = ManualClock()
    blob = b"paid"
    store = Sha1Composite(clock=clock)
    api = ThrottlingAPI({sha1(blob): blob}, n_throttles=2, retry_after=1.5, clock=clock)
    store.append_source(api, max_rate=10)
    assert store.get(sha1(blob)) == blob
    stats = store.stats()["throttling-api"]
    assert (stats.calls, stats.throttled, stats.hits, stats.failures) == (3, 2, 1, 0)
    limiter = store.tiers[0].limiter()
    assert limiter.backoffs == 2 and limiter.rate == pytest.approx(10 / 4 + 10 / 32)
    # each retry waited at least the Retry-After; the waits (sleeps on the tier's clock) are the stats' waits
    assert clock.now >= 3.0 and stats.wait_seconds == pytest.approx(sum(clock.sleeps))


def test_a_tier_throttling_past_its_retries_fails_the_key_never_missing():
    clock = ManualClock()
    store = Sha1Composite(clock=clock)
    store.append_source(ThrottlingAPI({}, n_throttles=100), max_concurrency=2)
    with pytest.raises(FetchFailed, match="throttled 8 times"):
        store.get("a" * 40)
    assert store.stats()["throttling-api"].throttled == 8


def test_throttling_without_limits_makes_an_adaptive_limiter():
    clock = ManualClock()
    blob = b"x"
    store = Sha1Composite(clock=clock)
    store.append_source(ThrottlingAPI({sha1(blob): blob}, n_throttles=1))
    assert store.tiers[0].limiter() is None
    assert store.get(sha1(blob)) == blob
    assert store.tiers[0].limiter() is not None and store.tiers[0].limiter().backoffs == 1


class SlowDownStore(Store):
    """A backend-like store: retries inside ``get`` with the library's RetryPolicy, as the S3/GCS backends do,
    and answers SlowDown to its first ``n`` attempts."""

    def __init__(self, blobs, n: int, code: str = "SlowDown", clock=None):
        self.blobs, self.left, self.code, self.clock = blobs, n, code, clock
        self.name = "slowdown-store"

    def is_valid(self, uri):
        return isinstance(uri, str)

    def get(self, uri):
        def once(attempt):
            if self.left > 0:
                self.left -= 1
                raise RuntimeError(f"An error occurred ({self.code}) when calling GetObject: reduce your rate")
            return self.blobs[uri]

        policy = RetryPolicy(attempts=5, base_delay=0.5, max_delay=0.5, clock=self.clock.monotonic,
                             sleep=self.clock.sleep)
        return policy.run(once, lambda exc: None, self, uri)


@pytest.mark.parametrize("code,throttled", [("SlowDown", True), ("InternalError", False)])
def test_backend_retries_go_through_the_tier_limiter(code, throttled):
    clock = ManualClock()
    store = Composite(clock=clock)
    store.append_source(SlowDownStore({"k": b"v"}, n=3, code=code, clock=clock), max_rate=4)
    assert store.get("k") == b"v"
    stats = store.stats()["slowdown-store"]
    assert (stats.calls, stats.retries, stats.hits) == (4, 3, 1)
    assert stats.throttled == (3 if throttled else 0)
    limiter = store.tiers[0].limiter()
    assert limiter.backoffs == (3 if throttled else 0)
    # every backend sleep went through the gate, on the tier's clock, and each retry took a turn in the tier's
    # schedule: 1/4 s apart at 4 calls/s, or 1/2, 1, 2 s once each SlowDown halved the rate
    assert clock.now >= (0.25 + 0.5 + 1 if throttled else 0.75)
    assert stats.wait_seconds == pytest.approx(sum(clock.sleeps)) and len(clock.sleeps) >= 3


def test_a_limited_tier_does_not_hold_back_keys_served_elsewhere():
    """Head-of-line: while the limited API is stuck on its one allowed call, every key the archive has is
    fetched; only the keys that reach the API wait."""
    release = threading.Event()
    archive_blobs = blobs_of(50, "hol")
    archive = DictStore(archive_blobs)
    archive.name = "archive"

    class StuckAPI(DictAPI):
        def api_get(self, sha1_):
            release.wait(60)
            return super().api_get(sha1_)

    store = Sha1Composite()
    store.append_source(archive)
    store.append_source(StuckAPI({}, name="stuck-api"), max_concurrency=1)
    keys = ["1" * 40, "2" * 40, *archive_blobs]
    out: list = []
    consumer = threading.Thread(target=lambda: out.extend(store.get_many(keys, max_workers=16, progress=False)))
    consumer.start()
    seen_all = threading.Event()
    while not seen_all.wait(0.01):
        if sum(archive.calls.values()) >= len(keys) and not out:
            seen_all.set()
        if not consumer.is_alive():
            break
    assert seen_all.is_set() and out == []  # all archive keys fetched while the first key still waits
    release.set()
    consumer.join(60)
    assert [r.status for r in out] == ["missing", "missing"] + ["found"] * 50


def test_limit_keywords_are_checked_when_the_tier_is_added():
    store = Composite()
    with pytest.raises(ValueError, match="max_concurrency"):
        store.append_source(DictStore(), max_concurrency=0)
    with pytest.raises(ValueError, match="max_rate"):
        store.append_cache(DictStore(), max_rate=-1)
    assert store.sources == []


def test_tier_records_keep_the_public_attributes():
    cache, source, api = (Sha1Store(MemoryRaw(), f"mem://{n}/", name=n) for n in ("cache", "src", "api"))
    store = Sha1Composite()
    store.append_cache(cache, max_concurrency=4)
    store.append_source(source)
    store.append_source(api, cache_result=True, max_rate=5)
    assert store.sources == [cache, source, api] and store.cache is cache
    assert store.tier_names == ["cache", "src", "api"]
    assert store.cache_back == {id(api)}
    assert [t.is_cache for t in store.tiers] == [True, False, False]
    assert "4 at once" in store._repr_html_() and "5/s" in store._repr_html_()
