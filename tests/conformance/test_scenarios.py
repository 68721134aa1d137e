"""Conformance: the same scenarios, with the same expected answers, on every row of the matrix (``_rows.py``).

The contract is API.md's "Missing is not failed": ``NotFoundInStore`` only when the service said the object is
not in a bucket that exists; a missing bucket, rejected credentials and configuration errors are
``StoreNotAvailable`` at once (not retried); transient errors are retried (honouring ``Retry-After``, capped)
within one overall deadline per blob, then ``FetchFailed``; a cache tier that fails is a failure, not a miss.

On a column the fast transport may not address (``_rows.FAST_MAY_REFUSE``), explicit ``transport="fast"`` may
answer ``StoreNotAvailable`` naming the transport instead; it may never answer "missing" for a present blob.
``auto`` (found / missing / no such bucket) is never less correct than ``sdk``: no refusal allowed.

Waits are checked through a recording ``sleep`` injected into ``RetryPolicy`` (never by wall-clock timing);
elapsed time is only checked as a hang guard, far above the deadline.

One documented difference in waiting, not in answers: obstore does not show response headers, so on the fast
transport the first throttling answer of a blob is followed by the policy's backoff; the blob's next attempts
go through the SDK, and every answer after that is honoured (``UNSEEN_RETRY_AFTER``).
"""
from __future__ import annotations

import hashlib
import time

import pytest

from bitstore import LocalRaw, Sha1Cache, Sha1Composite

from ._rows import KEY, MISSING_KEY, NO_SUCH_BUCKET, RecordingSleep, Row, blob, fetch, policy

pytestmark = pytest.mark.timeout(30)  # each scenario takes seconds; a hang fails in 30 s

#: Time-based scenarios: connect, read-idle (no byte for this long) and the overall deadline per blob.
FAST_TIMEOUT = (2.0, 0.4)


def unseen_retry_after(row: Row) -> int:
    """Throttling answers whose Retry-After the transport cannot see: the fast transport's first, per blob."""
    return 1 if row.transport == "fast" else 0

DEADLINE = 1.5
#: How far past the deadline a give-up may come on a busy shared machine before we call it a hang.
HANG_GUARD = 10.0


def object_requests(proxy, key: str = KEY) -> int:
    return sum(n for (_, path), n in proxy.requests.items() if key in path)


# --- 1, 2, 3: found, missing, no such bucket (also on the auto column) ------------------------------------
def test_found(any_row: Row):
    data = blob()
    uri = any_row.seed(data)
    answer = fetch(any_row.store(retry=policy(RecordingSleep())), uri)
    if any_row.transport == "auto" or any_row.transport == "sdk":
        assert answer.kind == "bytes" and answer.data == data, f"{any_row.id}: {answer!r}"
    else:
        any_row.expect(answer, "bytes", data)
    assert answer.kind != "missing", f"{any_row.id}: a present blob was reported missing"


def test_missing_key_in_existing_bucket(any_row: Row):
    any_row.seed(blob())
    sleep = RecordingSleep()
    answer = fetch(any_row.store(retry=policy(sleep)), any_row.uri(MISSING_KEY))
    if any_row.transport == "auto":
        assert answer.kind == "missing", f"{any_row.id}: {answer!r}"
    else:
        any_row.expect(answer, "missing")
    assert sleep.waits == [], f"{any_row.id}: a miss was retried ({sleep.waits})"


def test_no_such_bucket_is_unavailable_naming_it_not_retried(any_row: Row, fault_proxy):
    if not any_row.has_buckets:
        pytest.skip("an http tier has no buckets: its URL is the whole address, and a 404 there is 'missing'")
    any_row.seed(blob())  # another bucket exists: the server is up and answering
    proxy = fault_proxy(any_row.endpoint)  # no faults: counts requests
    sleep = RecordingSleep()
    answer = fetch(any_row.store(proxy.url, retry=policy(sleep)), any_row.uri(KEY, NO_SUCH_BUCKET))
    assert answer.kind == "unavailable", f"{any_row.id}: expected StoreNotAvailable, got {answer!r}"
    if not any_row.is_refusal(answer):
        assert NO_SUCH_BUCKET in str(answer.error), f"{any_row.id}: the message does not name the bucket: {answer!r}"
    assert sleep.waits == [], f"{any_row.id}: retried ({len(sleep.waits)} waits)"
    assert object_requests(proxy) <= 2, f"{any_row.id}: {dict(proxy.requests)}"


# --- 4: rejected credentials ------------------------------------------------------------------------------
def test_rejected_credentials_are_unavailable_not_retried(row: Row, fault_proxy, request):
    if row.backend == "http":
        return _rejected_token_on_http(row, fault_proxy)
    if row.backend == "gs":
        pytest.skip("GCS emulators do not authenticate: no 403 to provoke (S3 rows test it against moto with "
                    "INITIAL_NO_AUTH_ACTION_COUNT, Azure rows against Azurite, which checks every signature)")
    if row.backend == "az":
        return _rejected_azure_key(row, fault_proxy)
    moto_auth = request.getfixturevalue("moto_auth")  # moto with authentication on, its own subprocess
    proxy = fault_proxy(moto_auth.endpoint_url, preserve_host=True)  # the signature covers Host
    uri = f"s3://{moto_auth.bucket}/{moto_auth.key}"
    row.monkeypatch.setenv("AWS_ACCESS_KEY_ID", moto_auth.access_key)
    row.monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", moto_auth.secret_key)
    control = fetch(row.store(proxy.url, retry=policy(RecordingSleep())), uri)
    assert control.kind == "bytes" and control.data == moto_auth.data, (
        f"{row.id}: the right key must work on the authenticating server: {control!r}")

    row.monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-key")
    proxy.requests.clear()
    sleep = RecordingSleep()
    answer = fetch(row.store(proxy.url, retry=policy(sleep)), uri)
    assert answer.kind == "unavailable", f"{row.id}: expected StoreNotAvailable, got {answer!r}"
    assert "wrong-secret-key" not in str(answer.error)
    assert sleep.waits == [], f"{row.id}: a 403 was retried ({len(sleep.waits)} waits)"
    assert sum(proxy.requests.values()) <= 3, f"{row.id}: {dict(proxy.requests)}"


def _rejected_token_on_http(row: Row, fault_proxy) -> None:
    data = blob()
    uri = row.seed(data)
    row.server.token = "right-token"
    proxy = fault_proxy(row.endpoint)
    row.monkeypatch.setenv("CF_TOKEN", "Bearer right-token")
    control = fetch(row.store(proxy.url, retry=policy(RecordingSleep()), headers_env={"Authorization": "CF_TOKEN"}),
                    uri)
    assert control.kind == "bytes" and control.data == data, f"{row.id}: {control!r}"
    row.monkeypatch.setenv("CF_TOKEN", "Bearer wrong-token")
    proxy.requests.clear()
    sleep = RecordingSleep()
    answer = fetch(row.store(proxy.url, retry=policy(sleep), headers_env={"Authorization": "CF_TOKEN"}), uri)
    assert answer.kind == "unavailable", f"{row.id}: expected StoreNotAvailable, got {answer!r}"
    assert "wrong-token" not in str(answer.error)
    assert sleep.waits == [], f"{row.id}: a 401 was retried ({len(sleep.waits)} waits)"
    assert sum(proxy.requests.values()) == 1, f"{row.id}: {dict(proxy.requests)}"


WRONG_KEY = "d3Jvbmcta2V5LW5vdC10aGUtYWNjb3VudHM="  # base64, as account keys are, but not Azurite's


def _rejected_azure_key(row: Row, fault_proxy) -> None:
    data = blob()
    uri = row.seed(data)
    proxy = fault_proxy(row.endpoint)
    control = fetch(row.store(proxy.url, retry=policy(RecordingSleep())), uri)
    assert control.kind == "bytes" and control.data == data, f"{row.id}: the right key must work: {control!r}"
    proxy.requests.clear()
    sleep = RecordingSleep()
    answer = fetch(row.store(proxy.url, account_key=WRONG_KEY, retry=policy(sleep)), uri)
    assert answer.kind == "unavailable", f"{row.id}: expected StoreNotAvailable, got {answer!r}"
    assert WRONG_KEY not in str(answer.error) and row.server.account_key not in str(answer.error)
    assert sleep.waits == [], f"{row.id}: a 403 was retried ({len(sleep.waits)} waits)"
    assert sum(proxy.requests.values()) <= 3, f"{row.id}: {dict(proxy.requests)}"


# --- 5: throttling and 5xx with Retry-After ------------------------------------------------------------
@pytest.mark.parametrize("status", ["429", "503"])
def test_retry_after_is_honoured_and_the_blob_found(row: Row, fault_proxy, status):
    data = blob()
    uri = row.seed(data)
    # The first 2 GETs of each path holding the key answer `status` with Retry-After: 1 (a transport that reads
    # the object on another path, or checks its metadata, meets its own 2).
    proxy = fault_proxy(row.endpoint, fail_first=2, faults=[status], retry_after=1, match=KEY)
    sleep = RecordingSleep()
    answer = fetch(row.store(proxy.url, retry=policy(sleep)), uri)
    row.expect(answer, "bytes", data)
    if answer.kind == "bytes":
        throttled = proxy.stats[status]
        honoured = [w for w in sleep.waits if w >= 1.0]  # only Retry-After makes a wait >= max_delay (0.01 s)
        assert throttled >= 2
        assert len(honoured) == throttled - unseen_retry_after(row), (
            f"{row.id}: {throttled} answers asked for Retry-After: 1, {len(honoured)} waits honoured it: "
            f"{sleep.waits}")
        assert max(sleep.waits) <= 30.0


def test_retry_after_is_capped(row: Row, fault_proxy):
    data = blob()
    uri = row.seed(data)
    proxy = fault_proxy(row.endpoint, fail_first=1, faults=["503"], retry_after=3600, match=KEY)
    sleep = RecordingSleep()
    answer = fetch(row.store(proxy.url, retry=policy(sleep, max_retry_after=0.25)), uri)
    row.expect(answer, "bytes", data)
    if answer.kind == "bytes":
        capped = [w for w in sleep.waits if w >= 0.25 - 1e-6]
        assert max(sleep.waits, default=0) <= 0.25 + 0.01, f"{row.id}: Retry-After not capped: {sleep.waits}"
        assert len(capped) == proxy.stats["503"] - unseen_retry_after(row) >= 0 and proxy.stats["503"] >= 1, (
            f"{row.id}: {proxy.stats['503']} answers asked for Retry-After: 3600, waits {sleep.waits}")


# --- 6, 7: connection reset, truncated body -------------------------------------------------------------
@pytest.mark.parametrize("fault", ["reset", "truncate"])
def test_transient_fault_once_is_retried_and_found(row: Row, fault_proxy, fault):
    data = blob()
    uri = row.seed(data)
    proxy = fault_proxy(row.endpoint, fail_first=1, faults=[fault], match=KEY)
    sleep = RecordingSleep()
    answer = fetch(row.store(proxy.url, retry=policy(sleep)), uri)
    row.expect(answer, "bytes", data)
    if answer.kind == "bytes":
        assert proxy.stats[fault] >= 1 and len(sleep.waits) >= 1, f"{row.id}: {proxy.stats}, waits {sleep.waits}"


@pytest.mark.parametrize("fault", ["reset", "truncate"])
def test_transient_fault_always_is_failed_never_missing(row: Row, fault_proxy, fault):
    data = blob()
    uri = row.seed(data)
    proxy = fault_proxy(row.endpoint, rate=1.0, faults=[fault], match=KEY)
    sleep = RecordingSleep()
    answer = fetch(row.store(proxy.url, retry=policy(sleep, attempts=3)), uri)
    row.expect(answer, "failed")
    if answer.kind == "failed":
        assert len(sleep.waits) == 2, f"{row.id}: 3 attempts should wait twice, waited {sleep.waits}"
        assert object_requests(proxy) >= 3


# --- 8, 9, 10: silent server, trickle, slow but healthy ----------------------------------------------
@pytest.mark.parametrize("fault", ["silent", "trickle"])
def test_silent_or_trickling_server_fails_at_the_deadline(row: Row, fault_proxy, fault):
    data = blob()
    uri = row.seed(data)
    proxy = fault_proxy(row.endpoint, rate=1.0, faults=[fault], bytes_per_second=8, match=KEY)
    # 100 attempts: without an overall deadline this would take most of a minute (silent: 100 x the read-idle
    # timeout) or forever (trickle: a byte every 125 ms never trips the idle timeout, so one attempt never ends).
    store = row.store(proxy.url, timeout=FAST_TIMEOUT, retry=policy(RecordingSleep(), attempts=100,
                                                                     deadline=DEADLINE))
    start = time.monotonic()
    answer = fetch(store, uri)
    elapsed = time.monotonic() - start
    row.expect(answer, "failed")
    assert elapsed < DEADLINE + HANG_GUARD, f"{row.id}: gave up after {elapsed:.1f}s, deadline {DEADLINE}s"


def test_slow_but_healthy_large_blob_is_found(row: Row, fault_proxy):
    data = blob(1 << 20, seed=3)
    uri = row.seed(data)
    # 1 MiB at 768 KiB/s: about 1.3 s, more than three times the read-idle timeout, a chunk every 50 ms.
    proxy = fault_proxy(row.endpoint, rate=1.0, faults=["slow"], bytes_per_second=768 * 1024, match=KEY)
    store = row.store(proxy.url, timeout=FAST_TIMEOUT, retry=policy(RecordingSleep(), attempts=3, deadline=30.0))
    answer = fetch(store, uri)
    row.expect(answer, "bytes", data)


# --- 11: configuration errors ----------------------------------------------------------------------------
@pytest.mark.parametrize("endpoint", ["ftp://127.0.0.1:1", "http://127.0.0.1:not-a-port"])
def test_configuration_error_is_unavailable_at_once(row: Row, endpoint):
    if row.backend == "http" and endpoint.startswith("ftp:"):
        pytest.skip("an http tier's endpoint is its URL: an ftp:// URL is no key of it (InvalidURI), and from_url "
                    "refuses it (SpecError; tests/test_urls.py)")
    sleep = RecordingSleep()
    answer = fetch(row.store(endpoint, retry=policy(sleep)), row.uri())
    assert answer.kind == "unavailable", f"{row.id}: expected StoreNotAvailable, got {answer!r}"
    assert sleep.waits == [], f"{row.id}: a configuration error was retried ({len(sleep.waits)} waits)"


# --- 12: a cache tier that fails is not a miss -------------------------------------------------------------
def test_failing_cache_over_missing_bucket_gives_failed(row: Row):
    if not row.has_buckets:
        pytest.skip("an http tier has no buckets and cannot be a cache (read-only)")
    row.seed(blob())  # BUCKET exists; the blob asked for is in no tier
    data = blob(100, seed=9)
    sha1 = hashlib.sha1(data).hexdigest()
    store = Sha1Composite()
    cache_raw = row.store(retry=policy(RecordingSleep()))
    store.append_cache(Sha1Cache(cache_raw, f"{row.backend}://{NO_SUCH_BUCKET}/cache/"), read=True)
    store.append_source(row.sha1_source(retry=policy(RecordingSleep())))
    answer = fetch(store, sha1)
    assert answer.kind == "failed", f"{row.id}: a failing cache tier was taken for a miss: {answer!r}"
    assert [r.status for r in store.get_many([sha1], progress=False)] == ["failed"]


def test_failing_local_cache_over_its_size_limit_gives_failed(row: Row, tmp_path):
    row.seed(blob())
    data = blob(100, seed=9)
    sha1 = hashlib.sha1(data).hexdigest()
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / sha1).write_bytes(data)  # held by the cache, but above its max_blob_bytes
    store = Sha1Composite()
    store.append_cache(Sha1Cache(LocalRaw(max_blob_bytes=10), f"{tmp_path}/cache/"), read=True)
    store.append_source(row.sha1_source(retry=policy(RecordingSleep())))
    answer = fetch(store, sha1)
    assert answer.kind == "failed", f"{row.id}: a failing cache tier was taken for a miss: {answer!r}"
    assert [r.status for r in store.get_many([sha1], progress=False)] == ["failed"]
