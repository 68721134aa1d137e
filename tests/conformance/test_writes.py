"""Conformance: ``put`` of bytes on every cloud row of the matrix (``_rows.py``), the write-side of "missing is not
failed".

A put either stores the whole blob (read back with the same bytes through the row's store and through the SDK, so the
fast transport wrote where every client reads) or raises a typed error: a missing bucket, rejected credentials and
configuration errors are ``StoreNotAvailable`` at once (not retried); 5xx, resets and silences are retried within the
policy, then ``FetchFailed``. A failed put never leaves an object that reads as present with other bytes than the old
or the new ones. On a fast row whose server takes obstore's writes, the put goes through obstore (the SDK's write is
never called); where it does not (every GCS emulator: ``_writes_fast``), the store writes through the SDK. A cache
tier whose writes fail counts them (``write_failures``) and the read still answers. An http tier cannot write: its
rows are skipped.
"""
from __future__ import annotations

import hashlib

import pytest

from bitstore import FetchFailed, LocalRaw, Sha1Cache, Sha1Composite, Sha1Store, StoreNotAvailable

from ._rows import BUCKET, KEY, NO_SUCH_BUCKET, RecordingSleep, Row, blob, fetch, policy

pytestmark = pytest.mark.timeout(60)

#: Faulted methods: S3, Azure and GCS's XML API write with PUT, GCS's JSON API uploads with POST.
WRITES = ("PUT", "POST")
FAST_TIMEOUT = (2.0, 0.4)


def _cloud(row: Row) -> None:
    if row.backend == "http":
        pytest.skip("an http tier is read-only: no put")


def _writes_fast(row: Row) -> bool:
    """Whether the row's server takes obstore's writes: moto and Azurite do; no GCS emulator does (fake-gcs-server
    serves no XML-API upload, gcp-storage-emulator answers one without an ETag): there the store writes through the
    SDK, on ``fast`` too (logged once)."""
    return row.transport == "fast" and row.backend != "gs"


def _no_sdk_write(row: Row, store):
    """On a fast row whose server takes obstore's writes, the SDK's write is not called."""
    if _writes_fast(row):
        def sdk_put(*_args):
            raise AssertionError(f"{row.id}: the put went through the SDK")

        store._put_once = sdk_put
        store._put_stream_once = sdk_put
    return store


def _put(store, uri: str, data: bytes) -> BaseException | None:
    try:
        store.put(uri, data)
    except Exception as exc:  # noqa: BLE001 - the answer is checked by the caller
        return exc
    return None


def _reads(row: Row, uri: str, url: str | None = None):
    """What the row's server holds at ``uri``, read through the SDK (the reference every client agrees with)."""
    return fetch(row.store(url, transport="sdk", retry=policy(RecordingSleep())), uri)


def test_put_then_read_back(any_row: Row):
    _cloud(any_row)
    any_row.seed(b"x", key="other")  # the bucket exists
    data = blob(seed=5)
    store = _no_sdk_write(any_row, any_row.store(retry=policy(RecordingSleep())))
    error = _put(store, any_row.uri(), data)
    assert error is None, f"{any_row.id}: {error!r}"
    if any_row.transport != "sdk":  # what the store learnt: obstore writes there, or the server refused its PUT
        assert store._facts.fast_writes is (any_row.backend != "gs"), f"{any_row.id}: {store._facts.fast_writes}"
    back = fetch(store, any_row.uri())
    any_row.expect(back, "bytes", data)  # a read through fast may refuse where fast cannot address objects
    seen = _reads(any_row, any_row.uri())
    assert seen.kind == "bytes" and seen.data == data, f"{any_row.id}: the SDK reads {seen!r}"
    again = blob(100, seed=6)  # an overwrite replaces the object whole
    assert _put(store, any_row.uri(), again) is None
    assert _reads(any_row, any_row.uri()).data == again


def test_put_empty_blob(row: Row):
    _cloud(row)
    row.seed(b"x", key="other")
    store = _no_sdk_write(row, row.store(retry=policy(RecordingSleep())))
    error = _put(store, row.uri(), b"")
    assert error is None, f"{row.id}: {error!r}"
    seen = _reads(row, row.uri())
    assert seen.kind == "bytes" and seen.data == b"", f"{row.id}: {seen!r}"


def test_put_to_missing_bucket_is_unavailable_naming_it_not_retried(any_row: Row, fault_proxy):
    _cloud(any_row)
    any_row.seed(b"x", key="other")  # the server is up, another bucket exists
    proxy = fault_proxy(any_row.endpoint)  # no faults: counts requests
    sleep = RecordingSleep()
    error = _put(any_row.store(proxy.url, retry=policy(sleep)), any_row.uri(KEY, NO_SUCH_BUCKET), blob())
    assert isinstance(error, StoreNotAvailable), f"{any_row.id}: expected StoreNotAvailable, got {error!r}"
    assert NO_SUCH_BUCKET in str(error), f"{any_row.id}: the message does not name the bucket: {error}"
    assert sleep.waits == [], f"{any_row.id}: retried ({len(sleep.waits)} waits)"
    writes = sum(n for (method, _), n in proxy.requests.items() if method in WRITES)
    assert writes <= 2, f"{any_row.id}: {dict(proxy.requests)}"


@pytest.mark.parametrize("fault", ["500", "503", "reset", "truncate"])
def test_put_fault_once_is_retried_and_stored(row: Row, fault_proxy, fault):
    _cloud(row)
    row.seed(b"x", key="other")
    data = blob(seed=7)
    proxy = fault_proxy(row.endpoint, fail_first=1, faults=[fault], methods=WRITES, match=BUCKET)
    sleep = RecordingSleep()
    store = row.store(proxy.url, retry=policy(sleep))
    if fault != "503":  # a throttling answer sends the blob's next attempts through the SDK (to see Retry-After)
        _no_sdk_write(row, store)
    error = _put(store, row.uri(), data)
    assert error is None, f"{row.id}: {error!r}"
    assert proxy.stats[fault] >= 1, f"{row.id}: {proxy.stats}"  # the SDK, on another path, meets its own
    if fault != "truncate":  # an answer with no body (S3's, Azure's 201) has nothing to cut: no retry needed
        assert len(sleep.waits) >= 1, f"{row.id}: {proxy.stats}, waits {sleep.waits}"
    seen = _reads(row, row.uri())
    assert seen.kind == "bytes" and seen.data == data, f"{row.id}: {seen!r}"


@pytest.mark.parametrize("fault", ["500", "reset", "truncate", "silent"])
def test_put_fault_always_raises_failed_never_a_wrong_object(row: Row, fault_proxy, fault):
    _cloud(row)
    old = blob(300, seed=8)
    row.seed(old)  # an older object at the key: a failed put leaves it or the new one, nothing else
    data = blob(seed=9)
    proxy = fault_proxy(row.endpoint, rate=1.0, faults=[fault], methods=WRITES, match=BUCKET)
    sleep = RecordingSleep()
    store = _no_sdk_write(row, row.store(proxy.url, timeout=FAST_TIMEOUT,
                                         retry=policy(sleep, attempts=3,
                                                      deadline=5.0 if fault == "silent" else 60.0)))
    error = _put(store, row.uri(), data)
    assert proxy.stats[fault] >= 1, f"{row.id}: {proxy.stats}"
    seen = _reads(row, row.uri())
    if fault == "truncate" and error is None:  # an answer with no body has nothing to cut: the put succeeded
        assert seen.kind == "bytes" and seen.data == data, f"{row.id}: {seen!r}"
        return
    assert isinstance(error, FetchFailed), f"{row.id}: a put that always fails answered {error!r}"
    if fault != "silent":  # switching to the SDK (a server that refused obstore's PUT) costs an attempt, no wait
        switched = int(row.transport != "sdk" and store._facts.fast_writes is False)
        assert len(sleep.waits) == 2 - switched, f"{row.id}: 3 attempts, {switched} switch, waited {sleep.waits}"
    assert seen.kind == "bytes" and seen.data in (old, data), f"{row.id}: after a failed put the key reads {seen!r}"
    if fault in ("500", "reset"):  # never forwarded: the old object stands
        assert seen.data == old, f"{row.id}: a put never forwarded changed the object"


def test_put_with_rejected_credentials_is_unavailable_not_retried(row: Row, fault_proxy, request):
    _cloud(row)
    if row.backend == "gs":
        pytest.skip("GCS emulators do not authenticate: no 403 to provoke")
    sleep = RecordingSleep()
    if row.backend == "az":
        from .test_scenarios import WRONG_KEY

        row.seed(b"x", key="other")
        proxy = fault_proxy(row.endpoint)
        error = _put(row.store(proxy.url, account_key=WRONG_KEY, retry=policy(sleep)), row.uri(), blob())
        secrets = (WRONG_KEY, row.server.account_key)
        assert _reads(row, row.uri()).kind == "missing"
    else:
        moto_auth = request.getfixturevalue("moto_auth")
        proxy = fault_proxy(moto_auth.endpoint_url, preserve_host=True)  # the signature covers Host
        row.monkeypatch.setenv("AWS_ACCESS_KEY_ID", moto_auth.access_key)
        row.monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-key")
        error = _put(row.store(proxy.url, retry=policy(sleep)), f"s3://{moto_auth.bucket}/cf-written.bin", blob())
        secrets = ("wrong-secret-key",)
    assert isinstance(error, StoreNotAvailable), f"{row.id}: expected StoreNotAvailable, got {error!r}"
    assert not any(s in str(error) for s in secrets), f"{row.id}: a secret in {error}"
    assert sleep.waits == [], f"{row.id}: a rejected write was retried ({len(sleep.waits)} waits)"
    assert sum(proxy.requests.values()) <= 3, f"{row.id}: {dict(proxy.requests)}"


@pytest.mark.parametrize("endpoint", ["ftp://127.0.0.1:1", "http://127.0.0.1:not-a-port"])
def test_put_configuration_error_is_unavailable_at_once(row: Row, endpoint):
    _cloud(row)
    sleep = RecordingSleep()
    error = _put(row.store(endpoint, retry=policy(sleep)), row.uri(), blob())
    assert isinstance(error, StoreNotAvailable), f"{row.id}: expected StoreNotAvailable, got {error!r}"
    assert sleep.waits == [], f"{row.id}: a configuration error was retried ({len(sleep.waits)} waits)"


@pytest.mark.parametrize("failing", [False, True], ids=["writes", "writes-fail"])
def test_cache_write_back_is_stored_or_counted(row: Row, fault_proxy, tmp_path, failing):
    _cloud(row)
    row.seed(b"x", key="other")
    data = blob(500, seed=11)
    sha1 = hashlib.sha1(data).hexdigest()
    source = Sha1Store(LocalRaw(), f"{tmp_path}/src/")
    source.put(sha1, data)
    proxy = fault_proxy(row.endpoint, rate=1.0 if failing else 0.0, faults=["500"], methods=WRITES, match=BUCKET)
    raw = _no_sdk_write(row, row.store(proxy.url, retry=policy(RecordingSleep(), attempts=2)))
    cache = Sha1Cache(raw, f"{row.backend}://{BUCKET}/cache/")
    store = Sha1Composite()
    store.append_cache(cache)
    store.append_source(source, cache_result=True)
    got = fetch(store, sha1)
    assert got.kind == "bytes" and got.data == data, f"{row.id}: {got!r}"
    seen = _reads(row, row.uri(f"cache/{sha1}"))
    if failing:
        assert cache.write_failures.value == 1 and store.cache_write_failures.value == 1, f"{row.id}"
        assert seen.kind == "missing", f"{row.id}: a failed write-back left {seen!r}"
        return
    assert cache.write_failures.value == 0 and store.cache_writes.value == 1, f"{row.id}"
    assert seen.kind == "bytes" and seen.data == data, f"{row.id}: {seen!r}"


def test_concurrent_first_puts_are_all_stored(any_row: Row):
    """A fresh store's first puts at once (replicate's workers): where the server refuses obstore's PUT, each of them
    learns it and goes on through the SDK; none fails for another's refusal."""
    from concurrent.futures import ThreadPoolExecutor

    _cloud(any_row)
    any_row.seed(b"x", key="other")
    blobs = {f"many/{i:02}": blob(200 + i, seed=i) for i in range(12)}
    store = _no_sdk_write(any_row, any_row.store(retry=policy(RecordingSleep())))
    with ThreadPoolExecutor(8) as pool:
        errors = list(pool.map(lambda key: _put(store, any_row.uri(key), blobs[key]), blobs))
    assert errors == [None] * len(blobs), f"{any_row.id}: {errors}"
    for key, data in blobs.items():
        seen = _reads(any_row, any_row.uri(key))
        assert seen.kind == "bytes" and seen.data == data, f"{any_row.id}: {key} reads {seen!r}"
