"""Conformance: listing, scrubbing and replicating on every row of the matrix (``_rows.py``).

A listing is the keys, canonical and ascending, read page by page (a small page size here, so every listing spans
pages), resumable with ``start_after``; names that are not keys are skipped. It is never short: a missing bucket is
``StoreNotAvailable`` naming it, a listing that fails midway raises ``FetchFailed`` after its retries. On a column
the fast transport may not address, explicit ``fast`` may refuse (``StoreNotAvailable`` naming the transport), never
answer a wrong listing.
"""
from __future__ import annotations

import hashlib

import pytest

import bitstore
from bitstore import FetchFailed, LocalRaw, Sha1Composite, Sha1Store, StoreNotAvailable

from ._rows import BUCKET, NO_SUCH_BUCKET, RecordingSleep, Row, policy

pytestmark = pytest.mark.timeout(60)

PAGE = 4


def _skip_http(row: Row) -> None:
    if row.backend == "http":
        pytest.skip("an http tier cannot list nor delete (test_an_http_tier_cannot_list_naming_it)")


def test_an_http_tier_cannot_list_naming_it(any_row: Row, tmp_path):
    if any_row.backend != "http":
        pytest.skip("the buckets of S3 and GCS list")
    from bitstore import HTTPRaw

    tier = Sha1Store(HTTPRaw(transport=any_row.transport), f"{any_row.endpoint}/blobs/", name="the-http-tier")
    with pytest.raises(NotImplementedError, match="the-http-tier"):
        tier.iter_keys()
    composite = Sha1Composite()
    composite.append_source(Sha1Store(LocalRaw(tmp_path), f"{tmp_path}/"))
    composite.append_source(tier)
    with pytest.raises(NotImplementedError, match="the-http-tier"):
        composite.iter_keys()
    with pytest.raises(NotImplementedError, match="the-http-tier"):
        bitstore.scrub(composite)
    with pytest.raises(NotImplementedError, match="the-http-tier"):
        bitstore.replicate(tier, Sha1Store(LocalRaw(tmp_path), f"{tmp_path}/"))


def _blobs(n: int = 11) -> dict[str, bytes]:
    out = {}
    for i in range(n):
        data = f"blob {i} ".encode() * (i + 1)
        out[hashlib.sha1(data).hexdigest()] = data
    return out


def _seed(row: Row, blobs: dict[str, bytes], folder: str = "blobs/") -> None:
    for key, data in blobs.items():
        row.seed(data, key=f"{folder}{key}")
    # names under the prefix that are not keys: skipped by every listing
    upper = next(iter(blobs)).upper()
    for name in ("README", ".bitstore-0123.tmp", f"{upper}", f"sub/{next(iter(blobs))}", "0" * 39):
        row.seed(b"not a key", key=f"{folder}{name}")
    row.seed(b"elsewhere", key=f"other/{'a' * 40}")


def _fill(row: Row, names: list[str]) -> None:
    """Empty objects at ``names`` in the row's bucket (which exists), written by a few threads."""
    from concurrent.futures import ThreadPoolExecutor

    if row.backend == "s3":
        def put(name: str) -> None:
            row.seeder.put(BUCKET, name, b"")
    elif row.backend == "gs":
        bucket = row.seeder.bucket(BUCKET)

        def put(name: str) -> None:
            bucket.blob(name).upload_from_string(b"")
    else:
        def put(name: str) -> None:
            row.seed(b"", key=name)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, names))


def _store(row: Row, **kwargs) -> Sha1Store:
    raw = row.store(retry=policy(RecordingSleep(), **kwargs))
    raw.list_page_size = PAGE
    return Sha1Store(raw, f"{row.backend}://{BUCKET}/blobs/")


def _listing(store, **kwargs):
    """The keys listed, or the refusal an explicit fast transport may give on its columns."""
    try:
        return list(store.iter_keys(**kwargs)), None
    except StoreNotAvailable as exc:
        return None, exc


def test_keys_listed_ascending_across_pages_non_keys_skipped(any_row: Row):
    _skip_http(any_row)
    blobs = _blobs()
    _seed(any_row, blobs)
    keys, refused = _listing(_store(any_row))
    if refused is not None:
        assert any_row.may_refuse and "fast" in str(refused).lower(), f"{any_row.id}: {refused}"
        return
    assert keys == sorted(blobs), f"{any_row.id}: {keys}"


def test_start_after_resumes(row: Row):
    _skip_http(row)
    blobs = _blobs()
    _seed(row, blobs)
    ordered = sorted(blobs)
    for cut in (0, 3, 4, len(ordered) - 1):
        keys, refused = _listing(_store(row), start_after=ordered[cut].upper())  # any case is the same key
        if refused is not None:
            assert row.may_refuse, f"{row.id}: {refused}"
            return
        assert keys == ordered[cut + 1:], f"{row.id}: after #{cut}: {keys}"


def test_missing_bucket_is_unavailable_naming_it(any_row: Row):
    _skip_http(any_row)
    any_row.seed(b"x")  # the server is up, another bucket exists
    raw = any_row.store(retry=policy(RecordingSleep()))
    store = Sha1Store(raw, f"{any_row.backend}://{NO_SUCH_BUCKET}/blobs/")
    with pytest.raises(StoreNotAvailable) as caught:
        list(store.iter_keys())
    if not any_row.may_refuse:
        assert NO_SUCH_BUCKET in str(caught.value), f"{any_row.id}: {caught.value}"


@pytest.mark.timeout(120)  # the fast rows write a thousand names first
def test_listing_failing_midway_raises_never_short(row: Row, fault_proxy):
    _skip_http(row)
    blobs = _blobs()
    _seed(row, blobs)
    if row.transport == "fast" and not row.may_refuse:
        # obstore asks for the service's pages (1,000 names): names after the keys fill the first one
        _fill(row, [f"blobs/zz-{i:04}" for i in range(1000)])
    proxy = fault_proxy(row.endpoint)  # forwards everything until told otherwise
    raw = row.store(proxy.url, retry=policy(RecordingSleep(), attempts=3))
    raw.list_page_size = PAGE
    keys = Sha1Store(raw, f"{row.backend}://{BUCKET}/blobs/").iter_keys()
    try:
        first = next(keys)
    except StoreNotAvailable as exc:
        assert row.may_refuse, f"{row.id}: {exc}"
        return
    assert first == min(blobs)
    proxy.configure(rate=1.0, faults=["500"])  # every request from now on: the next page cannot be read
    seen = [first]
    try:
        for key in keys:
            seen.append(key)
    except FetchFailed:
        assert seen == sorted(blobs)[:len(seen)], f"{row.id}: {seen}"
        assert proxy.stats["500"] >= 3, f"{row.id}: the page was not retried: {proxy.stats}"
    else:  # a server that ignores the page size (gcp-storage-emulator) sent every name at once: nothing failed
        assert proxy.stats["500"] == 0, f"{row.id}: a failed page ended the listing silently: {proxy.stats}"
        assert seen == sorted(blobs), f"{row.id}: {seen}"


def test_delete_is_idempotent(row: Row):
    _skip_http(row)
    uri = row.seed(b"gone soon", key="blobs/x")
    raw = row.store(retry=policy(RecordingSleep()))
    raw.delete(uri)
    raw.delete(uri)
    with pytest.raises((bitstore.NotFoundInStore, StoreNotAvailable)) as caught:
        raw.get(uri)
    assert isinstance(caught.value, bitstore.NotFoundInStore) or row.may_refuse, f"{row.id}: {caught.value}"
    with pytest.raises(StoreNotAvailable):
        raw.delete(row.uri("blobs/x", NO_SUCH_BUCKET))


def test_scrub_finds_and_removes_the_corrupt_copy(row: Row):
    _skip_http(row)
    blobs = _blobs(6)
    bad = sorted(blobs)[2]
    for key, data in blobs.items():
        row.seed(data if key != bad else b"rotten", key=f"blobs/{key}")
    store = _store(row)
    try:
        results = list(bitstore.scrub(store, max_workers=4, delete_corrupt=True, progress=False))
    except StoreNotAvailable as exc:
        assert row.may_refuse, f"{row.id}: {exc}"
        return
    assert [r.key for r in results] == sorted(blobs)
    assert {r.key: r.status for r in results if r.status != "ok"} == {bad: "corrupt"}, f"{row.id}: {results}"
    assert list(store.iter_keys()) == sorted(set(blobs) - {bad})


def test_replicate_both_ways_then_nothing_to_do(row: Row, tmp_path):
    _skip_http(row)
    blobs = _blobs(9)
    for key, data in blobs.items():
        row.seed(data, key=f"blobs/{key}")
    cloud = _store(row)
    local = Sha1Store(LocalRaw(tmp_path / "a"), f"{tmp_path}/a/")
    try:
        report = bitstore.replicate(cloud, local, max_workers=4, progress=False)
    except StoreNotAvailable as exc:
        assert row.may_refuse, f"{row.id}: {exc}"
        return
    assert (report.copied, report.skipped, report.corrupt, report.failed) == (9, 0, 0, 0), f"{row.id}: {report}"
    assert sorted(local.iter_keys()) == sorted(blobs)
    more = _blobs(12)
    for key in set(more) - set(blobs):
        local.put(key, more[key])
    back = bitstore.replicate(local, cloud, max_workers=4, progress=False)
    assert (back.copied, back.skipped) == (3, 9), f"{row.id}: {back}"
    assert list(cloud.iter_keys()) == sorted(more)
    again = bitstore.replicate(local, cloud, max_workers=4, progress=False)
    assert (again.copied, again.skipped, again.bytes) == (0, 12, 0)


def test_composite_of_a_cloud_tier_and_a_local_one_lists_the_union(row: Row, tmp_path):
    _skip_http(row)
    blobs = _blobs(8)
    ordered = sorted(blobs)
    for key in ordered[:5]:
        row.seed(blobs[key], key=f"blobs/{key}")
    local = Sha1Store(LocalRaw(tmp_path / "c"), f"{tmp_path}/c/")
    for key in ordered[3:]:
        local.put(key, blobs[key])
    composite = Sha1Composite()
    composite.append_source(local)
    composite.append_source(_store(row))
    keys, refused = _listing(composite)
    if refused is not None:
        assert row.may_refuse, f"{row.id}: {refused}"
        return
    assert keys == ordered
