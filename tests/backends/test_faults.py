"""Retries through the fault-injecting proxy: transient faults are retried (the whole GET, body included),
a store that always fails gives ``failed`` and never ``missing``, and present blobs always come back intact."""
from __future__ import annotations

import hashlib

import pytest

from bitstore import FetchFailed, NotFoundInStore

#: A read timeout under the proxy's stall (so a stalled request is abandoned and retried) yet well above what
#: moto needs on a busy machine (a slow real answer is retried too, but should not be the norm).
TIMEOUT = (2.0, 1.5)
STALL = 2.5


@pytest.mark.parametrize("fault", ["503", "slowdown", "500", "429", "truncate", "reset", "stall"])
def test_first_attempts_fail_then_the_blob_is_returned(cloud, fault_proxy, fault):
    cloud.create_bucket("bkt")
    data = bytes(range(256)) * 64
    uri = cloud.put("bkt", "blob", data)
    failures = 1 if fault == "stall" else 3
    proxy = fault_proxy(cloud.endpoint, fail_first=failures, faults=[fault], stall_seconds=STALL)
    raw = cloud.raw_via(proxy.url, timeout=TIMEOUT)
    assert raw.get(uri) == data
    assert proxy.stats[fault] >= failures and proxy.stats["forwarded"] >= 1


def test_truncated_bodies_are_detected_and_retried(cloud, fault_proxy):
    cloud.create_bucket("bkt")
    data = b"0123456789" * 10_000
    uri = cloud.put("bkt", "blob", data)
    proxy = fault_proxy(cloud.endpoint, fail_first=5, faults=["truncate"])
    results = list(cloud.raw_via(proxy.url).get_many([uri], progress=False))
    assert [(r.status, r.data == data) for r in results] == [("found", True)]
    assert proxy.stats["truncate"] >= 5  # 5 for the blob (S3Raw's access check may have been cut too)


def test_always_failing_is_failed_never_missing(cloud, fault_proxy):
    cloud.create_bucket("bkt")
    present = cloud.put("bkt", "present", b"data")
    # faults that never let the server's real answer through ("truncate" forwards a genuine 404's status)
    proxy = fault_proxy(cloud.endpoint, rate=1.0, faults=["500", "503", "slowdown", "reset"])
    raw = cloud.raw_via(proxy.url, retry={"attempts": 3, "base_delay": 0.001, "max_delay": 0.002})
    with pytest.raises(FetchFailed) as info:
        raw.get(present)
    assert not isinstance(info.value, NotFoundInStore)
    assert "3 attempts" in str(info.value)
    results = list(raw.get_many([present, f"{cloud.scheme}://bkt/absent"], progress=False))
    assert [r.status for r in results] == ["failed", "failed"]


def test_throttling_exhausts_the_policy_into_failed(cloud, fault_proxy):
    cloud.create_bucket("bkt")
    uri = cloud.put("bkt", "k", b"data")
    proxy = fault_proxy(cloud.endpoint, rate=1.0, faults=["slowdown", "429"])
    raw = cloud.raw_via(proxy.url, retry=4)
    with pytest.raises(FetchFailed):
        raw.get(uri)
    access_check = 1 if cloud.scheme == "s3" else 0  # S3Raw's list_buckets when the client is built
    assert proxy.stats["requests"] == 4 + access_check  # the policy's 4 attempts, no hidden SDK retries


def test_twenty_percent_mixed_faults_lose_nothing(cloud, fault_proxy):
    cloud.create_bucket("bkt")
    blobs = {}
    for i in range(250):
        data = hashlib.sha256(str(i).encode()).digest() * (1 + i % 40)
        blobs[cloud.put("bkt", f"blobs/{i:04d}", data)] = data
    absent = [f"{cloud.scheme}://bkt/absent/{i}" for i in range(20)]
    proxy = fault_proxy(cloud.endpoint, rate=0.2, seed=7, stall_seconds=STALL)
    raw = cloud.raw_via(proxy.url, timeout=TIMEOUT)
    keys = list(blobs) + absent
    results = list(raw.get_many(keys, max_workers=32, progress=False))
    assert [r.key for r in results] == keys
    found = {r.key: r.data for r in results if r.status == "found"}
    assert found == blobs
    assert [r.status for r in results[len(blobs):]] == ["missing"] * len(absent)
    injected = sum(proxy.stats[k] for k in ("500", "503", "slowdown", "429", "reset", "stall", "truncate"))
    assert injected >= 20
