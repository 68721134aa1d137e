"""The async engine of ``get_many`` against moto, fake-gcs-server and Azurite: the same answers as the threads engine
(order, statuses, bytes, sources, errors), dedupe, the bytes-in-flight bound, fallback to the store's own path
on faults, fork safety of the engine's event loop. No timing is asserted."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from collections import Counter

import pytest

from bitstore import Sha1Store
from bitstore.engine.batch import ASYNC_MIN_WORKERS, WINDOW_PER_WORKER
from bitstore.ground.views import VIEW_MIN_BYTES

from .test_batch import CountingKeys


class Env:
    """One backend (moto S3, fake-gcs-server or Azurite) with ``n`` blobs under ``bkt/blobs/<sha1>``."""

    def __init__(self, env, scheme: str, n: int = 40):
        self.env, self.scheme = env, scheme
        self.endpoint = env.endpoint if scheme != "s3" else env.endpoint_url
        env.create_bucket("bkt")
        self.blobs: dict[str, bytes] = {}
        for i in range(n):
            data = hashlib.sha256(str(i).encode()).digest() * (1 + i % 7)
            key = hashlib.sha1(data).hexdigest()
            env.put("bkt", f"blobs/{key}", data)
            self.blobs[key] = data

    def raw(self, **kwargs):
        if self.scheme == "az":  # tests/backends' Cloud helper: a proxy URL gets Azurite's account path
            kwargs.setdefault("transport", "fast")
            if "endpoint" in kwargs:
                return self.env.raw_via(kwargs.pop("endpoint"), **kwargs)
            return self.env.raw(**kwargs)
        if "endpoint" in kwargs and self.scheme == "s3":
            kwargs["endpoint_url"] = kwargs.pop("endpoint")
        kwargs.setdefault("transport", "fast")
        return self.env.raw(**kwargs)

    def sha1_store(self, **kwargs) -> Sha1Store:
        return Sha1Store(self.raw(**kwargs), f"{self.scheme}://bkt/blobs/")

    def uri(self, key: str) -> str:
        return f"{self.scheme}://bkt/blobs/{key}"


@pytest.fixture(params=["s3", "gs", "az"])
def env(request) -> Env:
    scheme = request.param
    if scheme == "az":
        from tests.backends.conftest import Cloud

        return Env(Cloud(request.getfixturevalue("azure_blob"), "az", "fast"), scheme)
    return Env(request.getfixturevalue("s3" if scheme == "s3" else "gcs"), scheme)


class Counting:
    """Counts the synchronous ``get`` calls of a raw store (the threads' path; the async path never calls it)."""

    def __init__(self, raw):
        self.calls: Counter[str] = Counter()
        original = raw.get

        def get(uri):
            self.calls[uri] += 1
            return original(uri)

        raw.get = get


def _answers(results) -> list[tuple]:
    return [(r.key, r.status, None if r.data is None else bytes(r.data), r.source, r.error, r.cached) for r in results]


def _mixed_keys(env: Env) -> list:
    keys = list(env.blobs)
    missing = ["0" * 40, "f" * 40]
    return keys[:10] + [keys[0].upper(), "not a sha1", None, missing[0]] + keys[10:] + [missing[1], keys[3], 7]


def test_the_store_is_routed_only_on_the_fast_transport(env):
    assert env.sha1_store().async_route() is not None and env.raw().async_route() is not None
    assert env.sha1_store(transport="sdk").async_route() is None

    class Custom(Sha1Store):
        def get(self, sha1):
            return super().get(sha1)

    assert Custom(env.raw(), f"{env.scheme}://bkt/blobs/").async_route() is None


@pytest.mark.parametrize("max_workers", [1, 4, 64])
def test_async_answers_like_threads(env, max_workers):
    store = env.sha1_store()
    keys = _mixed_keys(env)
    threads = list(store.get_many(keys, max_workers=max_workers, engine="threads"))
    counting = Counting(store.base_store)
    answers = list(store.get_many(keys, max_workers=max_workers, engine="async"))
    assert _answers(answers) == _answers(threads)
    assert [r.key for r in answers] == keys
    assert Counter(r.status for r in answers) == {"found": len(env.blobs) + 2, "missing": 2, "invalid": 3}
    assert all(r.source == store.name for r in answers if r.ok)
    # Every found answer came from the event loop; so did missing ones where the 404 names its code (moto's
    # NoSuchKey, Azurite's BlobNotFound). fake-gcs-server's XML 404 has no code: the store's own path settles it.
    missing = {env.uri("0" * 40), env.uri("f" * 40)}
    assert set(counting.calls) == (missing if env.scheme == "gs" else set())


def test_raw_store_answers_like_threads(env):
    raw = env.raw()
    keys = [env.uri(k) for k in env.blobs] + [env.uri("absent"), f"{env.scheme}://nobucket-here/x", "bad uri"]
    threads = list(raw.get_many(keys, max_workers=8, engine="threads"))
    answers = list(raw.get_many(keys, max_workers=8, engine="async"))
    assert _answers(answers) == _answers(threads)
    assert [r.status for r in answers[-3:]] == ["missing", "failed", "invalid"]


def test_duplicates_share_one_request(env):
    raw = env.raw()
    first, second = (env.uri(k) for k in list(env.blobs)[:2])
    keys = [first, second, first, first, second] * 5
    calls = Counter()
    fast = raw._fast.get()
    original = fast.get_async

    async def counted(bucket, key, owner, uri, views):
        calls[uri] += 1
        return await original(bucket, key, owner, uri, views)

    fast.get_async = counted
    results = list(raw.get_many(keys, max_workers=16, engine="async"))
    assert [r.key for r in results] == keys and all(r.ok for r in results)
    assert calls == {first: 1, second: 1}


def test_failed_keys_fall_back_to_the_stores_own_path(env, fault_proxy):
    """Every first attempt fails (5xx, resets, cut bodies): the threads' path retries and finds every blob."""
    proxy = fault_proxy(env.endpoint, fail_first=1, faults=["500", "reset", "truncate", "slowdown"])
    store = env.sha1_store(endpoint=proxy.url)
    counting = Counting(store.base_store)
    keys = list(env.blobs)
    results = list(store.get_many(keys, max_workers=8, engine="async"))
    assert [(r.key, r.status, r.data) for r in results] == [(k, "found", env.blobs[k]) for k in keys]
    assert sum(counting.calls.values()) == len(keys)  # each key's first attempt failed on the loop


def test_hopeless_keys_are_failed_never_missing(env, fault_proxy):
    present = list(env.blobs)[0]
    path = f"/bkt/blobs/{present}" if env.scheme == "s3" else None
    proxy = fault_proxy(env.endpoint, rate=1.0, faults=["500", "503", "reset"])
    if path:
        proxy.configure(rate=0.0, fail_paths=[path])
    store = env.sha1_store(endpoint=proxy.url, retry={"attempts": 2, "base_delay": 0.001, "max_delay": 0.002})
    results = list(store.get_many([present, "0" * 40], max_workers=4, engine="async"))
    statuses = [r.status for r in results]
    assert statuses[0] == "failed"
    assert statuses[1] == ("missing" if path else "failed")


def test_bytes_in_flight_bound_the_read_ahead(env):
    """A byte budget below one blob: keys are read no further than the threads engine would."""
    store = env.sha1_store()
    keys = CountingKeys(list(env.blobs) * 3)
    ahead = []
    for received, result in enumerate(store.get_many(keys, max_workers=2, max_bytes_in_flight=1, engine="async"),
                                      start=1):
        assert result.ok
        ahead.append(keys.read - received)
    assert max(ahead) <= 2 * WINDOW_PER_WORKER
    assert min(ahead[:-10]) >= 1  # but never fewer than max_workers in the window while keys remain


def test_views_come_as_views_from_the_loop(env):
    big = os.urandom(VIEW_MIN_BYTES + 1)
    key = hashlib.sha1(big).hexdigest()
    env.env.put("bkt", f"blobs/{key}", big)
    store = env.sha1_store()
    small = list(env.blobs)[0]
    results = list(store.get_many([key, small], engine="async", views=True))
    assert type(results[0].data) is memoryview and results[0].data.readonly and bytes(results[0].data) == big
    assert type(results[1].data) is bytes and results[1].data == env.blobs[small]
    plain = list(store.get_many([key], engine="async"))
    assert type(plain[0].data) is bytes and plain[0].data == big


def test_stopping_early_then_running_again(env):
    store = env.sha1_store()
    keys = list(env.blobs)
    results = store.get_many(keys * 10, max_workers=4, engine="async")
    assert next(results).key == keys[0]
    results.close()
    again = list(store.get_many(keys, max_workers=4, engine="async"))
    assert [r.data for r in again] == [env.blobs[k] for k in keys]


@pytest.mark.parametrize("auto_async", [False, True])
def test_auto_routes_stores_above_the_threshold_only_when_allowed(env, monkeypatch, auto_async):
    """``auto``: a composite with a loop tier and a single store on the fast transport go to the loop above
    ASYNC_MIN_WORKERS, to threads up to there; ``threads`` and ``async`` choose for themselves."""
    from bitstore import Sha1Composite
    from bitstore.engine import batch

    monkeypatch.setattr(batch, "AUTO_ASYNC", auto_async)
    composite = Sha1Composite().append_source(env.sha1_store())
    single = env.sha1_store()
    chosen = []
    original = batch._route
    monkeypatch.setattr(batch, "_route", lambda *a: chosen.append(original(*a)) or chosen[-1])
    keys = list(env.blobs)[:3]
    for store in (composite, single):
        list(store.get_many(keys, max_workers=ASYNC_MIN_WORKERS))
        list(store.get_many(keys, max_workers=ASYNC_MIN_WORKERS + 1))
        list(store.get_many(keys, max_workers=ASYNC_MIN_WORKERS + 1, engine="threads"))
        list(store.get_many(keys, max_workers=4, engine="async"))
    assert [r is not None for r in chosen] == [False, auto_async, False, True, False, auto_async, False, True]


def test_engine_argument_is_checked(env):
    with pytest.raises(ValueError, match="engine"):
        env.raw().get_many([], engine="fibers")


_FORK_SCRIPT = """
    import os, sys
    from bitstore import Sha1Store
    from bitstore.backends.{module} import {cls}
    store = Sha1Store({cls}({arguments}, transport="auto"), "{scheme}://bkt/blobs/")
    keys = {keys!r}
    def fetch():
        return [r.status for r in store.get_many(keys + ["0" * 40], max_workers=4, engine="async")]
    expected = ["found"] * len(keys) + ["missing"]
    if {use_before_fork}:
        assert fetch() == expected  # the parent ran obstore and its engine loop
    pid = os.fork()
    if pid == 0:
        routed = store.async_route() is not None
        ok = fetch() == expected and routed == (not {use_before_fork})
        sys.exit(0 if ok else 3)  # the child ends the ordinary way too: atexit handlers, then finalization
    _, status = os.waitpid(pid, 0)
    assert fetch() == expected  # and the parent still can
    sys.exit(os.waitstatus_to_exitcode(status) % 256)
"""


@pytest.mark.parametrize("use_before_fork", [True, False])
def test_a_forked_child_gets_answers(env, use_before_fork):
    """A child forked after the parent ran its loop and obstore stays on threads (obstore does not survive
    fork); a child forked before makes its own loop. Neither hangs, and both exit the ordinary way with 0."""
    if not hasattr(os, "fork"):
        pytest.skip("no fork on this platform")
    if env.scheme == "az":
        server = env.env.env.server
        module, cls = "azure", "AZRaw"
        arguments = f"{server.account_name!r}, account_key={server.account_key!r}, endpoint_url={env.endpoint!r}"
    else:
        module, cls, arg = ("s3", "S3Raw", "endpoint_url") if env.scheme == "s3" else ("gcs", "GSRaw", "endpoint")
        arguments = f"{arg}={env.endpoint!r}"
    code = textwrap.dedent(_FORK_SCRIPT.format(module=module, cls=cls, arguments=arguments, scheme=env.scheme,
                                               keys=list(env.blobs)[:5], use_before_fork=use_before_fork))
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ))
    assert run.returncode == 0, run.stderr[-2000:]


def test_processes_with_the_async_engine_in_each(env):
    if env.scheme != "s3":
        pytest.skip("one backend is enough for the process pool; the engines are compared above")
    store = env.sha1_store()
    keys = _mixed_keys(env)
    threads = list(store.get_many(keys, max_workers=4, engine="threads"))
    spread = list(store.get_many(keys, max_workers=4, engine="async", processes=2))
    assert _answers(spread) == _answers(threads)


def test_a_fetch_window_that_only_polls_gets_every_answer(env):
    """Fewer keys than the dispatcher hands over at once (``FLUSH_EVERY``): a consumer that never waits still
    gets them, because a non-blocking pop hands queued keys to the loop. Answers as the threads engine gives."""
    import time

    from bitstore.engine.aio import AsyncDispatcher
    from bitstore.engine.batch import FetchWindow

    store = env.sha1_store()
    keys = list(env.blobs)[:3] + ["0" * 40, list(env.blobs)[0].upper()]
    assert len(keys) < AsyncDispatcher.FLUSH_EVERY
    threads = list(store.get_many(keys, engine="threads"))
    counting = Counting(store.base_store)
    got = []
    with FetchWindow(store, max_workers=4, max_bytes_in_flight=1 << 30, engine="async") as window:
        for key in keys:
            window.offer(key)
        deadline = time.monotonic() + 30
        while len(got) < len(keys):
            assert time.monotonic() < deadline, "queued keys were never handed to the event loop"
            result = window.pop(block=False)
            if result is None:
                time.sleep(0.0005)
            else:
                got.append(result)
    assert _answers(got) == _answers(threads)
    assert set(counting.calls) <= {env.uri("0" * 40)}  # found blobs came from the loop


def test_the_loops_attempt_is_the_policys_first(env, fault_proxy):
    """Two attempts in all, both answered 500: the loop's attempt and one retry on a thread, then failed, as the
    threads engine would (the thread goes on from the loop's attempt rather than starting the policy again)."""
    proxy = fault_proxy(env.endpoint, fail_first=2, faults=["500"], match="/bkt/blobs/")
    store = env.sha1_store(endpoint=proxy.url, retry={"attempts": 2, "base_delay": 0.001, "max_delay": 0.002})
    keys = list(env.blobs)[:4]
    results = list(store.get_many(keys, max_workers=4, engine="async"))
    assert [r.status for r in results] == ["failed"] * len(keys)
    assert all("2 attempts" in r.error for r in results)
    asked = {path: n for (_, path), n in proxy.requests.items() if "/bkt/blobs/" in path}
    assert sorted(asked.values()) == [2] * len(keys) and proxy.stats["500"] == 2 * len(keys)
