"""Conformance of the key families: the same answers for SHA1 and SHA-256 keys on every row of the matrix (S3, GCS
and Azure, ``fast`` and ``sdk`` transports, every endpoint configuration), through a verifying family store in a
composite: found (also on the event loop's fast path), missing, a corrupt copy (missing, with the corruption in
the message, never cached), a key of the other family (invalid, no request made), HEAD, and a cache tier whose
bucket does not exist (failed, never missing).

On a column the fast transport may not address (``_rows.FAST_MAY_REFUSE``) explicit ``fast`` may answer
``StoreNotAvailable`` naming the transport; it never answers "missing" for a present blob.
"""
from __future__ import annotations

import hashlib

import pytest

from bitstore import (
    MemoryRaw,
    Sha1Cache,
    Sha1Composite,
    Sha1Store,
    Sha256Cache,
    Sha256Composite,
    Sha256Store,
)
from bitstore.engine.routes import CompositeRoute
from tests.test_batch_async_composite import LoopCalls

from ._rows import BUCKET, NO_SUCH_BUCKET, RecordingSleep, Row, blob, fetch, policy

pytestmark = pytest.mark.timeout(60)

FAMILIES = {
    "sha1": (hashlib.sha1, Sha1Store, Sha1Cache, Sha1Composite),
    "sha256": (hashlib.sha256, Sha256Store, Sha256Cache, Sha256Composite),
}
OTHER = {"sha1": "sha256", "sha256": "sha1"}
PREFIX = "fam/"


@pytest.fixture(params=sorted(FAMILIES))
def family(request, row) -> str:
    if row.backend not in ("s3", "gs", "az"):
        pytest.skip("the key families are checked on the S3, GCS and Azure rows (an http row's URL is the whole "
                    "address, with no bucket or prefix to put keys under)")
    return request.param


def _key(family: str, data: bytes) -> str:
    return FAMILIES[family][0](data).hexdigest()


def _composite(row: Row, family: str, cache_raw=None):
    """A memory cache read first, then a verifying family store over the row's raw store."""
    _, store_class, cache_class, composite_class = FAMILIES[family]
    composite = composite_class()
    composite.append_cache(cache_class(cache_raw if cache_raw is not None else MemoryRaw(), "mem://c/"))
    composite.append_source(store_class(row.store(retry=policy(RecordingSleep())),
                                        f"{row.backend}://{BUCKET}/{PREFIX}", verify=True, name="cloud"),
                            cache_result=True)
    return composite


def _refused(row: Row, answer) -> bool:
    """A composite's answer when its tier refused (explicit fast on a column it may not address): ``failed``,
    saying that the transport is why."""
    return row.may_refuse and answer.kind == "failed" and "fast transport" in str(answer.error)


def _expect(row: Row, answer, kind: str, data: bytes | None = None) -> None:
    if _refused(row, answer):
        return
    assert answer.kind == kind, f"{row.id}: expected {kind}, got {answer!r}"
    if kind == "bytes":
        assert answer.data == data, f"{row.id}: wrong bytes"


def test_found_missing_corrupt_and_other_family(row: Row, family: str):
    good, rotten = blob(5000, seed=4), blob(3000, seed=5)
    row.seed(good, f"{PREFIX}{_key(family, good)}")
    row.seed(b"bit rot", f"{PREFIX}{_key(family, rotten)}")  # the copy does not match its key
    cache = MemoryRaw()
    store = _composite(row, family, cache)

    found = fetch(store, f"{family.upper()}://{_key(family, good).upper()}")
    _expect(row, found, "bytes", good)
    assert found.kind != "missing", f"{row.id}/{family}: a present blob was reported missing"
    if found.kind == "bytes":
        assert cache.get(f"mem://c/{_key(family, good)}") == good  # written back under the canonical key
        info = store.stat(_key(family, good))
        assert (info.status, info.size, info.source) == ("found", len(good), "mem://c/")

    _expect(row, fetch(store, _key(family, blob(10, seed=6))), "missing")

    corrupt = fetch(store, _key(family, rotten))
    if not _refused(row, corrupt):
        assert corrupt.kind == "missing", f"{row.id}/{family}: {corrupt!r}"
        assert "do not match" in str(corrupt.error) and _key(family, b"bit rot") in str(corrupt.error)
        assert f"mem://c/{_key(family, rotten)}" not in cache  # never cached

    other = _key(OTHER[family], good)
    asked = store.stats()["cloud"].calls
    [result] = store.get_many([other], progress=False)
    assert result.status == "invalid", f"{row.id}/{family}: a key of the other family must be invalid"
    assert store.stats()["cloud"].calls == asked and not store.is_valid(other)  # no request made


def test_the_event_loop_answers_as_the_threads(row: Row, family: str):
    """``get_many`` on the event-loop engine: on the fast transport the first attempts are made on the loop, and
    every answer (found, missing, corrupt, other family, canonical forms) equals the thread engine's."""
    present = [blob(2000 + i, seed=10 + i) for i in range(4)]
    for data in present:
        row.seed(data, f"{PREFIX}{_key(family, data)}")
    rotten = blob(100, seed=20)
    row.seed(b"not it", f"{PREFIX}{_key(family, rotten)}")
    keys = ([_key(family, d) for d in present] + [f"{family}://{_key(family, present[0]).upper()}"]
            + [_key(family, blob(7, seed=30)), _key(family, rotten), _key(OTHER[family], present[1]), None])

    def answers(engine: str):
        store = _composite(row, family)
        calls = None
        if engine == "async" and row.transport == "fast":
            route = store.async_route()
            if not row.may_refuse:
                assert isinstance(route, CompositeRoute) and len(route.tiers) == 1, f"{row.id}: no fast path"
            if route is not None:
                calls = LoopCalls(store.sources[1].base_store)
        try:
            out = [(r.key, r.status, None if r.data is None else bytes(r.data))
                   for r in store.get_many(keys, max_workers=4, engine=engine, progress=False)]
        finally:
            if calls is not None:
                calls.restore()
        return out, calls

    threads, _ = answers("threads")
    on_loop, calls = answers("async")
    refused = row.may_refuse and any(s == "failed" for _, s, _ in threads + on_loop)
    if not refused:
        assert on_loop == threads, f"{row.id}/{family}"
        expected = ["found"] * 5 + ["missing", "missing", "invalid", "invalid"]
        assert [s for _, s, _ in on_loop] == expected, f"{row.id}/{family}: {on_loop}"
        assert [d for _, _, d in on_loop[:4]] == present
    assert all(s != "missing" for _, s, _ in on_loop[:5]), f"{row.id}/{family}: a present blob reported missing"
    if calls is not None and not row.may_refuse:
        assert sum(calls.uris.values()) >= 6, f"{row.id}/{family}: the loop made no first attempts ({calls.uris})"
        assert not any(_key(OTHER[family], present[1]) in uri for uri in calls.uris)  # invalid: never asked


def test_a_failing_cache_over_a_missing_bucket_gives_failed(row: Row, family: str):
    row.seed(blob())
    _, store_class, cache_class, composite_class = FAMILIES[family]
    key = _key(family, blob(100, seed=9))
    store = composite_class()
    store.append_cache(cache_class(row.store(retry=policy(RecordingSleep())),
                                   f"{row.backend}://{NO_SUCH_BUCKET}/cache/"), read=True)
    store.append_source(store_class(row.store(retry=policy(RecordingSleep())), f"{row.backend}://{BUCKET}/blobs/"))
    answer = fetch(store, key)
    assert answer.kind == "failed", f"{row.id}/{family}: a failing cache tier was taken for a miss: {answer!r}"
    assert [r.status for r in store.get_many([key], progress=False)] == ["failed"]
