"""The fast transport reads a whole blob with one ranged GET, and falls back to a plain GET where the range is
refused (an empty object, an endpoint that ignores ranges), against moto, fake-gcs-server and Azurite through a
counting proxy. What a key answers never depends on which GET was made."""
from __future__ import annotations

import asyncio
import os

import pytest

from bitstore import NotFoundInStore

from .conftest import _ENVS, Cloud


@pytest.fixture(params=["s3", "gs", "az"])
def fast(request) -> Cloud:
    return Cloud(request.getfixturevalue(_ENVS[request.param]), request.param, "fast")


def _gets(proxy, name: str) -> int:
    return sum(n for (method, path), n in proxy.requests.items() if method == "GET" and path.endswith("/" + name))


def _fill(fast: Cloud, bucket: str) -> dict[str, tuple[str, bytes]]:
    fast.create_bucket(bucket)
    blobs = {"one": os.urandom(3000), "empty": b"", "two": b"2" * 10, "three": os.urandom(70_000)}
    return {name: (fast.put(bucket, name, data), data) for name, data in blobs.items()}


def test_a_blob_is_one_ranged_get_and_an_empty_one_is_asked_again(fast, fault_proxy):
    blobs = _fill(fast, "ranged")
    counter = fault_proxy(fast.endpoint)  # no faults: it counts requests
    raw = fast.raw_via(counter.url)
    for name in ("one", "empty", "two"):
        uri, data = blobs[name]
        assert raw.get(uri) == data
    uri, data = blobs["three"]
    assert asyncio.run(raw.aget(uri)) == data  # the first attempt on the caller's loop
    assert [r.data for r in raw.get_many([blobs["one"][0], blobs["empty"][0]], progress=False)] == [
        blobs["one"][1], b""]
    with pytest.raises(NotFoundInStore):
        raw.get(f"{fast.scheme}://ranged/absent")
    assert raw._fast.get()._ranged is True  # an empty object does not stop the ranging
    # one GET a read, but for the empty blob: its range is refused (416), so it is asked plainly too
    assert [_gets(counter, name) for name in ("one", "two", "three")] == [2, 1, 1]
    assert _gets(counter, "empty") in (3, 4)  # 416 then the plain GET each time (an endpoint may answer 206)


def test_an_endpoint_that_ignores_ranges_is_asked_plainly_from_then_on(fast, fault_proxy):
    if fast.scheme == "az":
        pytest.skip("Azure's shared-key signature covers the Range header: a proxy cannot drop it")
    blobs = _fill(fast, "unranged")
    proxy = fault_proxy(fast.endpoint, ignore_ranges=True)  # every GET answered 200 with the whole object
    raw = fast.raw_via(proxy.url)
    assert raw.get(blobs["one"][0]) == blobs["one"][1]
    assert raw._fast.get()._ranged is False
    assert raw.get(blobs["two"][0]) == blobs["two"][1]
    assert asyncio.run(raw.aget(blobs["three"][0])) == blobs["three"][1]
    assert raw.get(blobs["empty"][0]) == b""
    with pytest.raises(NotFoundInStore):
        raw.get(f"{fast.scheme}://unranged/absent")
    results = list(raw.get_many([blobs["one"][0], f"{fast.scheme}://unranged/absent"], progress=False))
    assert [r.status for r in results] == ["found", "missing"]
    # the refused ranged GET, then plain GETs only
    assert [_gets(proxy, name) for name in ("one", "two", "three", "empty")] == [3, 1, 1, 1]


def test_a_404_to_a_ranged_get_is_missing_and_a_size_limit_still_names_the_size(fast, fault_proxy):
    blobs = _fill(fast, "limits")
    counter = fault_proxy(fast.endpoint)
    raw = fast.raw_via(counter.url, max_blob_bytes=5000)
    assert raw.get(blobs["one"][0]) == blobs["one"][1]
    from bitstore import BlobTooLarge

    with pytest.raises(BlobTooLarge, match="70,000 bytes"):  # the ranged GET stops at the limit; the plain one says
        raw.get(blobs["three"][0])
    with pytest.raises(NotFoundInStore):
        raw.get(f"{fast.scheme}://limits/absent")
    assert _gets(counter, "absent") == 1
