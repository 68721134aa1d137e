"""Composites on the async engine of ``get_many``: the event loop drives the composite's own tier walk, with first
attempts of unlimited fast-transport tiers (moto S3, fake-gcs-server) on the loop and every other tier (local
cache, user stores, limited tiers) and every write-back on threads. Both engines must give the same answers
(status, bytes, source, cached, error) and the same per-tier statistics. No timing is asserted.

One set of servers, buckets and raw stores serves the whole module (each composite is cheap to build; a boto3
client is not)."""
from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter
from dataclasses import asdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bitstore import Composite, LocalRaw, MemoryRaw, Sha1Cache, Sha1Composite, Sha1Store, StoreNotAvailable
from bitstore.engine.routes import CompositeRoute
from bitstore.ground.limits import ManualClock
from bitstore.ground.retry import RetryPolicy
from tests.core_helpers import DictAPI, WritableDictStore
from tests.servers.faults import FaultProxy

RETRY = RetryPolicy(attempts=2, base_delay=0.001, max_delay=0.002)
COUNTERS = ("calls", "hits", "misses", "failures", "throttled", "retries", "bytes", "cache_writes",
            "cache_write_failures")


def _blob(tag: str, i: int) -> bytes:
    return hashlib.sha256(f"{tag}{i}".encode()).digest() * (1 + i % 5)


def _key(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


class World:
    """Blobs in S3 (``s3``), in GCS (``gs``), in a user API (``api``); corrupt S3 copies of blobs GCS has
    (``corrupt_then_gs``) and of blobs nobody has (``corrupt_only``); keys nobody has (``nowhere``)."""

    def __init__(self, s3_endpoint: str, gcs_endpoint: str, s3_client, gcs_client, proxy_url: str):
        from bitstore.backends.gcs import GSRaw
        from bitstore.backends.s3 import S3Raw

        s3_client.create_bucket(Bucket="tiers")
        gcs_client.create_bucket("tiers")
        self.data: dict[str, bytes] = {}
        self.groups: dict[str, list[str]] = {}

        def group(name: str, n: int) -> list[str]:
            blobs = [_blob(name, i) for i in range(n)]
            self.data.update((_key(b), b) for b in blobs)
            self.groups[name] = [_key(b) for b in blobs]
            return blobs

        for data in group("s3", 6):
            s3_client.put_object(Bucket="tiers", Key=f"s3/{_key(data)}", Body=data)
        for data in group("gs", 5):
            gcs_client.bucket("tiers").blob(f"gs/{_key(data)}").upload_from_string(data)
        self.api_blobs = {_key(b): b for b in group("api", 4)}
        for data in group("corrupt_then_gs", 2):
            s3_client.put_object(Bucket="tiers", Key=f"s3/{_key(data)}", Body=data + b"!")
            gcs_client.bucket("tiers").blob(f"gs/{_key(data)}").upload_from_string(data)
        for data in group("corrupt_only", 1):
            s3_client.put_object(Bucket="tiers", Key=f"s3/{_key(data)}", Body=data[:-1])
        group("nowhere", 3)
        self.s3_endpoint = s3_endpoint
        self.s3_raw = S3Raw(endpoint_url=s3_endpoint, transport="fast", retry=RETRY)
        self.gs_raw = GSRaw(endpoint=gcs_endpoint, transport="fast", retry=RETRY)
        self.s3_faulty = S3Raw(endpoint_url=proxy_url, transport="fast", retry=RETRY)  # every GET answered 500
        self.s3_sdk = S3Raw(endpoint_url=s3_endpoint, transport="sdk", retry=RETRY)

    @property
    def keys(self) -> list[str]:
        return [k for name in self.groups for k in self.groups[name]]

    def s3(self, verify: bool = True, raw=None) -> Sha1Store:
        return Sha1Store(raw or self.s3_raw, "s3://tiers/s3/", verify=verify, name="s3")

    def gs(self) -> Sha1Store:
        return Sha1Store(self.gs_raw, "gs://tiers/gs/", verify=True, name="gs")

    def api(self) -> DictAPI:
        return DictAPI(self.api_blobs, name="api")


@pytest.fixture(scope="module")
def world(moto_server, _moto_client, gcs_server, _gcs_client):
    from tests.servers.fixtures import _AWS_ENV, _AWS_UNSET

    with pytest.MonkeyPatch.context() as patch:
        for name in _AWS_UNSET:
            patch.delenv(name, raising=False)
        for name, value in _AWS_ENV.items():
            patch.setenv(name, value)
        patch.setenv("STORAGE_EMULATOR_HOST", gcs_server.endpoint)
        moto_server.reset()
        gcs_server.reset(_gcs_client)
        proxy = FaultProxy(moto_server.endpoint_url, rate=1.0, faults=["500"]).start()
        try:
            yield World(moto_server.endpoint_url, gcs_server.endpoint, _moto_client, _gcs_client, proxy.url)
        finally:
            proxy.stop()


def _local_cache(tmp_path_factory) -> Sha1Cache:
    return Sha1Cache(LocalRaw(tmp_path_factory.mktemp("cache")), "", name="local")


def _standard(world: World, cache, **options) -> Sha1Composite:
    """A user's composite: a local cache read first, S3, GCS, then a paid API whose hits are cached."""
    composite = Sha1Composite(**options)
    composite.append_cache(cache)
    composite.append_source(world.s3(), cache_result=True)
    composite.append_source(world.gs(), cache_result=True)
    composite.append_source(world.api())
    return composite


def _answers(results) -> list[tuple]:
    return [(r.key, r.status, None if r.data is None else bytes(r.data), r.source, r.cached, r.error)
            for r in results]


def _counts(composite: Composite) -> dict[str, dict]:
    return {name: {k: v for k, v in asdict(snap).items() if k in COUNTERS}
            for name, snap in composite.stats().items()}


def _both(build, keys, **options) -> tuple[list, list, Composite, Composite]:
    """``get_many`` of ``keys`` on a fresh composite per engine: (threads' answers, async's, both composites)."""
    on_threads, on_loop = build(), build()
    assert on_loop.async_route() is not None  # or this would compare the thread engine with itself
    threads = list(on_threads.get_many(keys, max_workers=4, engine="threads"))
    answers = list(on_loop.get_many(keys, max_workers=4, engine="async"))
    return _answers(threads), _answers(answers), on_threads, on_loop


class LoopCalls:
    """Counts the first attempts made on the event loop through a raw store's fast transport."""

    def __init__(self, raw):
        self.uris: Counter[str] = Counter()
        fast = raw._fast.get()
        self._fast, self._original = fast, fast.get_async

        async def counted(bucket, key, owner, uri, views):
            self.uris[uri] += 1
            return await self._original(bucket, key, owner, uri, views)

        fast.get_async = counted

    def restore(self) -> None:
        self._fast.get_async = self._original


def test_only_composites_with_an_unlimited_fast_tier_are_routed(world):
    plain = Sha1Composite().append_source(world.s3())
    route = plain.async_route()
    assert isinstance(route, CompositeRoute) and len(route.tiers) == 1
    assert Sha1Composite().append_source(world.s3(raw=world.s3_sdk)).async_route() is None
    assert Sha1Composite().append_source(world.s3(), max_concurrency=4).async_route() is None
    assert Sha1Composite().append_source(world.api()).async_route() is None
    assert Sha1Composite().append_source(plain).async_route() is None  # a nested composite is a thread tier
    mixed = Sha1Composite().append_source(world.s3(), max_rate=100.0).append_source(world.gs())
    assert list(mixed.async_route().tiers) == [id(mixed.tiers[1])]

    class Custom(Sha1Composite):
        def _fetch(self, uri):
            return super()._fetch(uri)

    assert Custom().append_source(world.s3()).async_route() is None


def test_local_tiers_are_read_on_the_loop_itself_and_other_tiers_are_not(world, tmp_path_factory):
    """bitstore's own local and memory stores (bare or under Sha1Store/Sha1Cache) are read on the loop, without a
    hop to a thread; a subclass, a limited local tier, an API tier and a cloud tier are not."""
    class SlowLocal(LocalRaw):
        pass

    composite = Sha1Composite()
    composite.append_cache(_local_cache(tmp_path_factory))
    composite.append_source(Sha1Store(MemoryRaw(), "mem://blobs/"))
    composite.append_source(Sha1Store(SlowLocal(tmp_path_factory.mktemp("slow")), ""))
    composite.append_source(Sha1Store(LocalRaw(tmp_path_factory.mktemp("lim")), ""), max_concurrency=2)
    composite.append_source(world.api())
    composite.append_source(world.s3())
    route = composite.async_route()
    assert [route.inline(t) for t in composite.tiers] == [True, True, False, False, False, False]
    on_loop: list[bool] = []
    original = LocalRaw.get

    def recording(self, uri):
        on_loop.append(threading.current_thread().name == "bitstore-engine-loop")
        return original(self, uri)

    LocalRaw.get = recording
    try:
        keys = [_key(b"%d" % i) for i in range(6)]
        answers = list(composite.get_many(keys, max_workers=4, engine="async"))
    finally:
        LocalRaw.get = original
    assert [a.status for a in answers] == ["missing"] * 6
    # per key: the cache on the loop, then SlowLocal and the limited tier on threads
    assert sorted(on_loop) == [False] * 12 + [True] * 6


def test_both_engines_answer_alike_with_the_same_statistics(world, tmp_path_factory):
    keys = world.keys + [world.keys[0].upper(), "sha1://" + world.groups["gs"][0], "not a sha1"]
    loop = LoopCalls(world.s3_raw)
    try:
        threads, answers, on_threads, on_loop = _both(lambda: _standard(world, _local_cache(tmp_path_factory)),
                                                      keys)
        in_loop = Counter(loop.uris)
    finally:
        loop.restore()
    assert answers == threads
    by_key = {a[0]: a for a in answers}
    sources = {name: {by_key[k][3] for k in world.groups[name]} for name in world.groups}
    assert sources == {"s3": {"s3"}, "gs": {"gs"}, "api": {"api"}, "corrupt_then_gs": {"gs"},
                       "corrupt_only": {None}, "nowhere": {None}}
    assert {by_key[k][4] for k in world.groups["s3"] + world.groups["gs"] + world.groups["api"]} == {True}
    assert all("do not match this SHA1" in by_key[k][5] for k in world.groups["corrupt_only"])
    assert [a[1] for a in answers[-3:]] == ["found", "found", "invalid"]
    assert _counts(on_loop) == _counts(on_threads)
    # Every key the cache did not have went to S3 first, on the loop, once (the repeats later were cache hits).
    assert set(in_loop) == {f"s3://tiers/s3/{k}" for k in world.keys} and set(in_loop.values()) == {1}


def test_a_second_pass_is_served_by_the_cache_on_both_engines(world, tmp_path_factory):
    keys = world.groups["s3"] + world.groups["api"]

    def build():
        return _standard(world, _local_cache(tmp_path_factory))

    on_threads, on_loop = build(), build()
    for _ in range(2):
        threads = _answers(on_threads.get_many(keys, max_workers=4, engine="threads"))
        answers = _answers(on_loop.get_many(keys, max_workers=4, engine="async"))
        assert answers == threads
    assert {a[3] for a in answers} == {"local"} and {a[4] for a in answers} == {None}
    assert _counts(on_loop) == _counts(on_threads)


def test_failing_tiers_fail_alike(world, tmp_path_factory):
    """A tier answering 500 to every GET (its retries go on from the loop's attempt), a tier whose bucket does not
    exist, a user tier raising: a hit later still wins, a miss becomes failed, with the same message."""
    from bitstore.backends.s3 import S3Raw

    nobucket = S3Raw(endpoint_url=world.s3_endpoint, transport="fast", retry=RETRY)
    broken = WritableDictStore(fail={k: RuntimeError("user tier down") for k in world.keys})

    def build() -> Sha1Composite:
        composite = Sha1Composite()
        composite.append_source(world.s3(raw=world.s3_faulty))
        composite.append_source(Sha1Store(nobucket, "s3://no-such-bucket/", name="nobucket"))
        composite.append_source(broken)
        composite.append_source(world.gs())
        return composite

    keys = world.groups["gs"] + world.groups["nowhere"]
    threads, answers, on_threads, on_loop = _both(build, keys)
    assert answers == threads
    assert [a[1] for a in answers] == ["found"] * len(world.groups["gs"]) + ["failed"] * len(world.groups["nowhere"])
    error = answers[-1][5]
    assert "2 attempts" in error and "does not exist" in error and "user tier down" in error
    counts = _counts(on_loop)
    assert counts == _counts(on_threads)
    assert counts["s3"]["retries"] == len(keys) and counts["s3"]["failures"] == len(keys)


def test_cache_write_failures_are_answered_alike(world):
    def build() -> Sha1Composite:
        composite = Sha1Composite()
        composite.append_cache(WritableDictStore(put_error=OSError("disk full")), read=False)
        composite.append_source(world.s3(), cache_result=True)
        return composite

    threads, answers, on_threads, on_loop = _both(build, world.groups["s3"])
    assert answers == threads and {a[4] for a in answers} == {False}
    assert int(on_loop.cache_write_failures) == len(world.groups["s3"])
    assert _counts(on_loop) == _counts(on_threads)


def test_missing_ttl_is_remembered_alike(world, tmp_path_factory):
    clocks = []

    def build() -> Sha1Composite:
        clocks.append(ManualClock())
        return _standard(world, _local_cache(tmp_path_factory), missing_ttl=60, clock=clocks[-1])

    on_threads, on_loop = build(), build()
    keys = world.groups["nowhere"]
    calls, remembered = [], []
    for advance in (0, 1, 60):
        for clock in clocks:
            clock.advance(advance)
        threads = _answers(on_threads.get_many(keys, max_workers=4, engine="threads"))
        answers = _answers(on_loop.get_many(keys, max_workers=4, engine="async"))
        assert answers == threads and {a[1] for a in answers} == {"missing"}
        assert _counts(on_loop) == _counts(on_threads)
        calls.append(_counts(on_loop)["s3"]["calls"])
        remembered.append(all("less than 60s ago" in a[5] for a in answers))
    assert calls == [len(keys), len(keys), 2 * len(keys)]  # remembered, then asked again after the TTL
    assert remembered == [False, True, False]


class Peak:
    """Calls at once, at their peak, of the wrapped ``get``s (each call lasts a few ms so calls overlap)."""

    def __init__(self):
        self.lock, self.now, self.peak, self.calls = threading.Lock(), 0, 0, 0

    def wrap(self, get):
        def counted(uri):
            with self.lock:
                self.now += 1
                self.calls += 1
                self.peak = max(self.peak, self.now)
            try:
                time.sleep(0.003)
                return get(uri)
            finally:
                with self.lock:
                    self.now -= 1

        return counted


def test_limited_tiers_keep_their_limits_on_the_event_loop(world):
    """A limited S3 tier (not routed: its limiter blocks) and a limited user tier, behind an unlimited S3 tier the
    loop answers: at most their ``max_concurrency`` calls at once, with 16 keys in flight."""
    s3_peak, api_peak = Peak(), Peak()
    limited_s3 = world.s3()
    limited_s3.get = s3_peak.wrap(limited_s3.get)
    api = world.api()
    api.get = api_peak.wrap(api.get)
    composite = Sha1Composite()
    composite.append_source(Sha1Store(world.s3_raw, "s3://tiers/nothing-here/", name="empty"))
    composite.append_source(limited_s3, max_concurrency=2)
    composite.append_source(api, max_concurrency=3)
    route = composite.async_route()
    assert list(route.tiers) == [id(composite.tiers[0])]
    keys = world.groups["s3"] * 3 + world.groups["api"] * 4  # repeats are fetched again once out of the window
    results = list(composite.get_many(keys, max_workers=16, engine="async"))
    assert [r.source for r in results] == ["s3"] * 18 + ["api"] * 16
    assert s3_peak.calls >= len(world.groups["s3"]) and api_peak.calls >= len(world.groups["api"])
    assert 1 <= s3_peak.peak <= 2 and 1 <= api_peak.peak <= 3


def test_the_write_back_is_done_before_the_result_is_seen(world):
    class SlowCache(WritableDictStore):
        def put(self, uri, data):
            time.sleep(0.002)  # a result delivered before the put ended would be seen without its blob
            super().put(uri, data)

    cache = SlowCache()
    composite = Sha1Composite().append_cache(cache, read=False)
    composite.append_source(world.s3(), cache_result=True).append_source(world.api())
    keys = world.groups["s3"] + world.groups["api"]
    seen = []
    for result in composite.get_many(keys, max_workers=8, engine="async"):
        assert result.cached is True and cache.blobs.get(result.key) == bytes(result.data)
        seen.append(result.key)
    assert seen == keys


_TIERS = ("local", "s3", "s3-plain", "gs", "api", "broken", "faulty", "sdk")


@settings(max_examples=20, deadline=None)
@given(layout=st.lists(st.tuples(st.sampled_from(_TIERS), st.booleans()), min_size=1, max_size=4),
       picks=st.lists(st.integers(0, 200), min_size=1, max_size=8), engine_first=st.booleans())
def test_random_layouts_answer_alike(world, tmp_path_factory, layout, picks, engine_first):
    """Random tiers in random order, each written back or not, over keys of every kind: same answers, same
    statistics. (``local`` is a cache read at its position; ``s3-plain`` does not check SHA1s.)"""
    keys = [world.keys[p % len(world.keys)] for p in picks]
    broken = {k: StoreNotAvailable("broken", "a user tier that is down") for k in world.keys[::2]}

    def build() -> Sha1Composite:
        composite = Sha1Composite()
        for kind, write_back in layout:
            if kind == "local":
                if composite.cache is None:
                    composite.append_cache(_local_cache(tmp_path_factory))
                continue
            store = {"s3": world.s3, "s3-plain": lambda: world.s3(verify=False), "gs": world.gs, "api": world.api,
                     "broken": lambda: WritableDictStore(fail=broken),
                     "faulty": lambda: world.s3(raw=world.s3_faulty),
                     "sdk": lambda: world.s3(raw=world.s3_sdk)}[kind]()
            composite.append_source(store, cache_result=write_back)
        return composite

    first, second = build(), build()
    if not engine_first:
        first, second = second, first
    threads = _answers(first.get_many(keys, max_workers=3, engine="threads"))
    answers = _answers(second.get_many(keys, max_workers=3, engine="async"))
    assert answers == threads
    assert _counts(second) == _counts(first)


def test_corrupt_bytes_never_reach_the_cache_on_either_engine(world, tmp_path_factory):
    """A tier that does not check SHA1s serves corrupt copies: the composite's one checked write (``_checked_put``)
    refuses them on the loop's write-back as on the threads'."""
    caches = []

    def build() -> Sha1Composite:
        caches.append(_local_cache(tmp_path_factory))
        composite = Sha1Composite().append_cache(caches[-1])
        return composite.append_source(world.s3(verify=False), cache_result=True)

    keys = world.groups["s3"] + world.groups["corrupt_then_gs"] + world.groups["corrupt_only"]
    threads, answers, _, _ = _both(build, keys)
    assert answers == threads
    corrupt = set(world.groups["corrupt_then_gs"] + world.groups["corrupt_only"])
    assert {a[4] for a in answers if a[0] in corrupt} == {False} and {a[4] for a in answers} == {True, False}
    for cache in caches:
        assert [cache.accepts(k) and _has(cache, k) for k in keys] == [k not in corrupt for k in keys]


def _has(cache, key) -> bool:
    try:
        cache.get(key)
    except Exception:  # noqa: BLE001 - not there
        return False
    return True
