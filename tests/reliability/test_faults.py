"""get_many and FetchBlobs under injected faults (500/503/SlowDown/429, resets, stalls, truncated bodies).

A fault-injecting proxy (``tests/servers/faults.py``) sits in front of moto (S3), fake-gcs-server (GCS) or Azurite
and faults 20% of GETs. Present blobs must come back with their exact bytes (at least 99.9%) or as
``failed`` with a message, never ``missing``; absent blobs are ``missing``; nothing corrupt is cached.
"""
from __future__ import annotations

import os
import random
from concurrent.futures import ThreadPoolExecutor

import pytest

from bitstore import LocalRaw, MemoryRaw, RetryPolicy, Sha1Cache, Sha1Composite, Sha1Store, sha1_hex

N_PRESENT = 2000
N_MISSING = 40
BUCKET = "faulty"
PREFIX = "files/"
FAST_RETRY = RetryPolicy(attempts=8, base_delay=0.001, max_delay=0.02)
#: Client timeouts well under the proxy's stall, so a stalled GET times out and is retried.
TIMEOUT = (1.0, 2.0)
STALL = 3.0


def make_blobs(n: int, seed: int) -> dict[str, bytes]:
    rng = random.Random(seed)
    out = {}
    for i in range(n):
        data = rng.randbytes(rng.choice([0, 1, 37, 500, 3000, 20_000])) + i.to_bytes(4, "big")
        out[sha1_hex(data)] = data
    return out


def upload(put, blobs: dict[str, bytes]) -> None:
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda item: put(PREFIX + item[0], item[1]), blobs.items()))


@pytest.fixture(scope="module")
def blobs() -> dict[str, bytes]:
    return make_blobs(N_PRESENT, seed=9)


@pytest.fixture(scope="module")
def missing() -> list[str]:
    return [sha1_hex(f"absent {i}".encode()) for i in range(N_MISSING)]


def tiered(raw, prefix: str, cache_raw) -> tuple[Sha1Composite, Sha1Cache]:
    store = Sha1Composite(name="tiered")
    cache = Sha1Cache(cache_raw, "mem://cache/" if isinstance(cache_raw, MemoryRaw) else "", name="cache")
    store.append_cache(cache)
    store.append_source(Sha1Store(raw, prefix, name="cloud"), cache_result=True)
    return store, cache


def check_outcome(results, blobs: dict[str, bytes], missing: list[str]) -> dict[str, int]:
    """The issue's acceptance criteria; returns counts per status for the present blobs."""
    counts = {"found": 0, "failed": 0}
    for result in results:
        if result.key in blobs:
            assert result.status in ("found", "failed"), (result, "a present blob was reported as " + result.status)
            counts[result.status] += 1
            if result.status == "found":
                assert result.data == blobs[result.key], f"wrong bytes for {result.key}"
                assert result.source == "cloud"
            else:
                assert result.data is None and result.error and "attempts" in result.error, result
        else:
            assert result.key in missing
            assert result.status == "missing", result
    assert counts["found"] >= 0.999 * len(blobs), counts
    return counts


def check_cache(cache_contents: dict[str, bytes], results, blobs: dict[str, bytes]) -> None:
    """Every cached blob is whole (its SHA1 matches); exactly the blobs served from the cloud were cached."""
    for key, data in cache_contents.items():
        assert sha1_hex(data) == key, f"corrupt bytes cached under {key}"
    assert set(cache_contents) == {r.key for r in results if r.status == "found"}
    assert all(r.cached is True for r in results if r.status == "found")


def memory_contents(raw: MemoryRaw) -> dict[str, bytes]:
    return {uri.rsplit("/", 1)[1]: raw.get(uri) for uri in list(raw._blobs)}


def local_contents(folder) -> dict[str, bytes]:
    names = [n for n in os.listdir(folder)] if os.path.isdir(folder) else []
    assert not [n for n in names if n.startswith(".bitstore-")], "a temp file was left behind"
    return {n: open(os.path.join(folder, n), "rb").read() for n in names}


CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}


@pytest.fixture(scope="module")
def s3_bucket(moto_server, blobs):
    """The blobs uploaded once for the module (the function-scoped ``s3`` fixture would reset moto per test)."""
    import boto3

    client = boto3.client("s3", endpoint_url=moto_server.endpoint_url, **CREDENTIALS)
    moto_server.reset()
    client.create_bucket(Bucket=BUCKET)
    upload(lambda key, data: client.put_object(Bucket=BUCKET, Key=key, Body=data), blobs)
    return moto_server.endpoint_url


@pytest.fixture(scope="module")
def gcs_bucket(gcs_server, _gcs_client, blobs):
    gcs_server.reset(_gcs_client)
    bucket = _gcs_client.create_bucket(BUCKET)
    upload(lambda key, data: bucket.blob(key).upload_from_string(data), blobs)
    return gcs_server.endpoint


@pytest.fixture(scope="module")
def azure_container(azurite, _azure_client, blobs):
    azurite.reset(_azure_client)
    container = _azure_client.create_container(BUCKET)
    upload(lambda key, data: container.upload_blob(key, data, overwrite=True), blobs)
    return azurite


def azure_raw(server, host_url: str, **options):
    """An AZRaw for Azurite's account reached at ``host_url`` (a fault proxy: the account path is added)."""
    from bitstore import AZRaw

    return AZRaw(server.account_name, account_key=server.account_key, endpoint_url=f"{host_url}/{server.account_name}",
                 timeout=TIMEOUT, **{"retry": FAST_RETRY, **options})


def s3_raw(endpoint_url: str, **options):
    from bitstore import S3Raw

    return S3Raw(CREDENTIALS, endpoint_url=endpoint_url, timeout=TIMEOUT, **{"retry": FAST_RETRY, **options})


def gcs_raw(endpoint: str, **options):
    from bitstore import GSRaw

    return GSRaw(endpoint=endpoint, timeout=TIMEOUT, **{"retry": FAST_RETRY, **options})


def _run(store, blobs, missing):
    keys = list(blobs) + missing
    random.Random(1).shuffle(keys)
    return list(store.get_many(keys, max_workers=64, progress=False))


def subset(blobs: dict[str, bytes], n: int) -> dict[str, bytes]:
    return dict(list(blobs.items())[:n])


# The full 2,000 blobs through each backend's default transport ("auto": obstore when installed) and through the
# other transport on a smaller share, to keep the suite fast.
@pytest.mark.parametrize("transport, n", [("sdk", N_PRESENT), ("fast", 500)])
def test_s3_get_many_under_20_percent_faults(s3_bucket, fault_proxy, blobs, missing, transport, n):
    blobs = subset(blobs, n)
    proxy = fault_proxy(s3_bucket, rate=0.2, seed=3, stall_seconds=STALL)
    cache_raw = MemoryRaw()
    store, cache = tiered(s3_raw(proxy.url, transport=transport), f"s3://{BUCKET}/{PREFIX}", cache_raw)
    results = _run(store, blobs, missing)
    check_outcome(results, blobs, missing)
    check_cache(memory_contents(cache_raw), results, blobs)
    assert cache.write_failures == 0
    kinds = ("500", "503", "slowdown", "429", "reset", "stall", "truncate")
    assert sum(proxy.stats[k] for k in kinds) >= 0.15 * proxy.stats["requests"], proxy.stats
    assert min(proxy.stats[k] for k in kinds) > 0, proxy.stats


@pytest.mark.parametrize("transport, n", [("fast", N_PRESENT), ("sdk", 500)])
def test_gcs_get_many_under_20_percent_faults(gcs_bucket, fault_proxy, blobs, missing, transport, n, tmp_path):
    blobs = subset(blobs, n)
    proxy = fault_proxy(gcs_bucket, rate=0.2, seed=4, stall_seconds=STALL)
    store, cache = tiered(gcs_raw(proxy.url, transport=transport), f"gs://{BUCKET}/{PREFIX}",
                          LocalRaw(tmp_path / "cache"))
    results = _run(store, blobs, missing)
    check_outcome(results, blobs, missing)
    check_cache(local_contents(tmp_path / "cache"), results, blobs)
    assert cache.write_failures == 0
    assert proxy.stats["truncate"] > 0 and proxy.stats["stall"] > 0 and proxy.stats["reset"] > 0


# Azurite (one Node.js process) serves a few dozen faulted GETs a second here: 1,000 and 500 blobs keep each test
# well inside its timeout.
@pytest.mark.parametrize("transport, n", [("fast", 1000), ("sdk", 500)])
def test_azure_get_many_under_20_percent_faults(azure_container, fault_proxy, blobs, missing, transport, n):
    blobs = subset(blobs, n)
    proxy = fault_proxy(azure_container.endpoint_url, rate=0.2, seed=5, stall_seconds=STALL)
    cache_raw = MemoryRaw()
    store, cache = tiered(azure_raw(azure_container, proxy.url, transport=transport), f"az://{BUCKET}/{PREFIX}",
                          cache_raw)
    results = _run(store, blobs, missing)
    check_outcome(results, blobs, missing)
    check_cache(memory_contents(cache_raw), results, blobs)
    assert cache.write_failures == 0
    kinds = ("500", "503", "slowdown", "429", "reset", "stall", "truncate")
    assert min(proxy.stats[k] for k in kinds) > 0, proxy.stats


@pytest.mark.parametrize("kind", ["truncate", "reset", "503"])
def test_azure_tier_that_always_fails_gives_failed_never_missing(azure_container, fault_proxy, blobs, kind):
    blobs = subset(blobs, 30)
    proxy = fault_proxy(azure_container.endpoint_url, rate=1.0, faults=(kind,))
    cache_raw = MemoryRaw()
    raw = azure_raw(azure_container, proxy.url, retry=RetryPolicy(3, 0.001, 0.002))
    store, _ = tiered(raw, f"az://{BUCKET}/{PREFIX}", cache_raw)
    results = list(store.get_many(list(blobs) + ["0" * 40], max_workers=8, progress=False))
    assert [r.status for r in results] == ["failed"] * 31
    assert all("3 attempts" in r.error for r in results)
    assert len(cache_raw) == 0


@pytest.mark.parametrize("kind", ["truncate", "reset", "503"])
def test_a_tier_that_always_fails_gives_failed_never_missing(s3_bucket, fault_proxy, blobs, kind):
    blobs = subset(blobs, 30)
    proxy = fault_proxy(s3_bucket, rate=1.0, faults=(kind,))
    cache_raw = MemoryRaw()
    store, _ = tiered(s3_raw(proxy.url, retry=RetryPolicy(3, 0.001, 0.002)), f"s3://{BUCKET}/{PREFIX}", cache_raw)
    results = list(store.get_many(list(blobs) + ["0" * 40], max_workers=8, progress=False))
    assert [r.status for r in results] == ["failed"] * 31
    assert all("3 attempts" in r.error for r in results)
    assert len(cache_raw) == 0


@pytest.mark.timeout(240)
def test_fetchblobs_accounts_for_every_input_exactly_once_under_faults(s3_bucket, fault_proxy, blobs, tmp_path):
    import ast

    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from beam_transforms import FetchBlobs

    blobs = subset(blobs, 300)
    absent = [sha1_hex(f"gone {i}".encode()) for i in range(20)]
    junk = ["not a sha1", None, 7, b"\x00" * 20, "a" * 39]
    # A few hopeless keys: every GET of them fails, so they must come out as failed (not missing, not lost).
    doomed = list(blobs)[:5]
    proxy = fault_proxy(s3_bucket, rate=0.2, seed=8, stall_seconds=STALL,
                        fail_paths={f"/{BUCKET}/{PREFIX}{k}" for k in doomed})
    elements = list(blobs) + [k.upper() for k in list(blobs)[:20]] + absent + junk
    cache_dir = tmp_path / "cache"
    store, _ = tiered(s3_raw(proxy.url), f"s3://{BUCKET}/{PREFIX}", LocalRaw(cache_dir))
    out_dir = tmp_path / "out"
    with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as p:
        result = p | beam.Create(elements, reshuffle=False) | FetchBlobs(store, max_batch_size=64, max_workers=16)
        tagged = (
            result.found | "F" >> beam.Map(lambda kv: ("found", kv[0], sha1_hex(kv[1]) == kv[0])),
            result.missing | "M" >> beam.Map(lambda k: ("missing", k, True)),
            result.failed | "X" >> beam.Map(lambda kv: ("failed", kv[0], bool(kv[1]))),
            result.invalid | "I" >> beam.Map(lambda kv: ("invalid", repr(kv[0]), bool(kv[1]))),
        ) | beam.Flatten() | beam.Map(repr)
        tagged | beam.io.WriteToText(str(out_dir / "rows"))
    rows = [ast.literal_eval(line) for path in out_dir.iterdir() for line in path.read_text().splitlines()]
    assert len(rows) == len(elements)
    assert all(ok for _, _, ok in rows)
    by_status: dict[str, list] = {}
    for status, key, _ in rows:
        by_status.setdefault(status, []).append(key)
    assert sorted(by_status["invalid"]) == sorted(repr(j) for j in junk)
    assert sorted(by_status["missing"]) == sorted(absent)
    present = sorted(list(blobs) + [k.lower() for k in list(blobs)[:20]])
    assert sorted(by_status.get("found", []) + by_status.get("failed", [])) == present
    failed = by_status.get("failed", [])
    assert sorted(k for k in failed if k in doomed) == sorted(doomed * 2)  # each doomed key is there twice
    assert len(failed) - 2 * len(doomed) <= 1  # 20% faults, 8 attempts: another failure is a 1-in-1000 event
    for name, data in local_contents(cache_dir).items():
        assert sha1_hex(data) == name
    assert set(local_contents(cache_dir)) == set(by_status["found"])
