"""The benchmarks' loopback S3 server (``benchmarks/server.py``) lists (ListObjectsV2 and V1) and stores PUT bodies
as S3 does, for boto3 (and obstore) on 127.0.0.1: what replication and listing benchmarks will rely on."""
from __future__ import annotations

import hashlib
import io

import pytest

from benchmarks.server import ServerProcess

ODD_KEYS = ["odd/a b.bin", "odd/a+b.bin", "odd/é.bin", "odd/x&y<z>.bin", "odd/~tilde", "odd/%41"]


@pytest.fixture(scope="module")
def server():
    with ServerProcess() as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server):
    import boto3

    return boto3.client("s3", endpoint_url=server.endpoint, aws_access_key_id="k", aws_secret_access_key="s",
                        region_name="us-east-1")


@pytest.fixture(scope="module")
def many(server, client) -> list[str]:
    """2,500 keys ``blobs/<sha1>`` (filled by the server) plus keys that need escaping, in bucket ``listing``."""
    keys = [f"blobs/{sha1}" for sha1 in server.fill("listing", "blobs/", 2500, 16, seed=3)]
    for key in ODD_KEYS:
        client.put_object(Bucket="listing", Key=key, Body=key.encode())
    return sorted(keys + ODD_KEYS, key=str.encode)


def _v2_keys(client, **kwargs) -> tuple[list[str], list[int]]:
    keys, pages = [], []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket="listing", **kwargs):
        pages.append(page["KeyCount"])
        keys += [c["Key"] for c in page.get("Contents", [])]
    return keys, pages


def test_v2_paginator_returns_every_key_in_order(client, many):
    keys, pages = _v2_keys(client, PaginationConfig={"PageSize": 1000})
    assert keys == many and len(keys) == 2506
    assert pages == [1000, 1000, 506]
    blobs, pages = _v2_keys(client, Prefix="blobs/", PaginationConfig={"PageSize": 1000})
    assert blobs == [k for k in many if k.startswith("blobs/")] and pages == [1000, 1000, 500]


def test_v2_page_fields_prefix_start_after_and_token(client, many):
    blobs = [k for k in many if k.startswith("blobs/")]
    first = client.list_objects_v2(Bucket="listing", Prefix="blobs/", MaxKeys=1000)
    assert first["IsTruncated"] is True and first["KeyCount"] == 1000 and first["MaxKeys"] == 1000
    assert [c["Key"] for c in first["Contents"]] == blobs[:1000]
    second = client.list_objects_v2(Bucket="listing", Prefix="blobs/", MaxKeys=1000,
                                    ContinuationToken=first["NextContinuationToken"])
    assert second["ContinuationToken"] == first["NextContinuationToken"]
    assert [c["Key"] for c in second["Contents"]] == blobs[1000:2000]
    after = client.list_objects_v2(Bucket="listing", Prefix="blobs/", StartAfter=blobs[2489])
    assert after["IsTruncated"] is False and "NextContinuationToken" not in after
    assert after["StartAfter"] == blobs[2489] and [c["Key"] for c in after["Contents"]] == blobs[2490:]
    assert client.list_objects_v2(Bucket="listing", MaxKeys=5)["KeyCount"] == 5
    assert client.list_objects_v2(Bucket="listing", MaxKeys=5000)["KeyCount"] == 1000  # S3's page limit
    assert client.list_objects_v2(Bucket="listing", Prefix="nothing/")["KeyCount"] == 0
    entry = client.list_objects_v2(Bucket="listing", Prefix=blobs[7])["Contents"][0]
    assert entry["Size"] == 16 and entry["ETag"].strip('"') and entry["StorageClass"] == "STANDARD"


def test_v2_keys_that_need_escaping(client, many):
    # boto3 asks for encoding-type=url and decodes; the raw XML must also be well formed with & and <.
    keys, _ = _v2_keys(client, Prefix="odd/")
    assert keys == sorted(ODD_KEYS, key=str.encode)
    for key in ODD_KEYS:
        assert client.get_object(Bucket="listing", Key=key)["Body"].read() == key.encode()


def _names(page: dict) -> list[str]:
    return [c["Key"] for c in page.get("Contents", [])] + [p["Prefix"] for p in page.get("CommonPrefixes", [])]


def test_v2_delimiter_gives_common_prefixes_across_pages(client, many):
    top = client.list_objects_v2(Bucket="listing", Delimiter="/")
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["blobs/", "odd/"] and "Contents" not in top
    client.create_bucket(Bucket="folders")
    # "a" and "a/" (keys equal to a prefix) and "a/b" under the prefix "a/"
    for key in ["a", "a/", "a/b", "a/c/d", "a/c/e", "b/x", "b/y", "c"]:
        client.put_object(Bucket="folders", Key=key, Body=key.encode())
    for page_size in (1, 2, 1000):
        seen: list[str] = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket="folders", Delimiter="/",
                                                                     PaginationConfig={"PageSize": page_size}):
            seen += _names(page)
        assert sorted(seen) == ["a", "a/", "b/", "c"], page_size
        inside: list[str] = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket="folders", Delimiter="/", Prefix="a/",
                                                                     PaginationConfig={"PageSize": page_size}):
            inside += _names(page)
        assert sorted(inside) == ["a/", "a/b", "a/c/"], page_size


def test_v1_marker_prefix_and_max_keys(client, many):
    visible = many
    page = client.list_objects(Bucket="listing", MaxKeys=1000)
    assert page["IsTruncated"] is True and page["MaxKeys"] == 1000 and page["Marker"] == ""
    keys = [c["Key"] for c in page["Contents"]]
    assert keys == visible[:1000] and page["NextMarker"] == keys[-1]
    nxt = client.list_objects(Bucket="listing", Marker=keys[-1], MaxKeys=1000)
    assert nxt["Marker"] == keys[-1] and [c["Key"] for c in nxt["Contents"]] == visible[1000:2000]
    last = client.list_objects(Bucket="listing", Marker=visible[2000], MaxKeys=1000)
    assert last["IsTruncated"] is False and "NextMarker" not in last
    assert [c["Key"] for c in last["Contents"]] == visible[2001:]
    odd = client.list_objects(Bucket="listing", Prefix="odd/", Marker="odd/a b.bin")
    assert [c["Key"] for c in odd["Contents"]] == [k for k in visible if k.startswith("odd/") and k > "odd/a b.bin"]
    paged = [c["Key"] for p in client.get_paginator("list_objects").paginate(
        Bucket="listing", PaginationConfig={"PageSize": 1000}) for c in p.get("Contents", [])]
    assert paged == visible
    folders = client.list_objects(Bucket="listing", Delimiter="/", MaxKeys=1)
    assert [p["Prefix"] for p in folders["CommonPrefixes"]] == ["blobs/"] and folders["NextMarker"] == "blobs/"
    rest = client.list_objects(Bucket="listing", Delimiter="/", Marker="blobs/")
    assert [p["Prefix"] for p in rest["CommonPrefixes"]] == ["odd/"]


def test_put_then_get_round_trip(server, client):
    client.create_bucket(Bucket="replica")
    data = bytes(range(256)) * 1000
    put = client.put_object(Bucket="replica", Key="dir/copy.bin", Body=data)
    assert put["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    assert client.get_object(Bucket="replica", Key="dir/copy.bin")["Body"].read() == data
    assert client.head_object(Bucket="replica", Key="dir/copy.bin")["ContentLength"] == len(data)
    client.put_object(Bucket="replica", Key="dir/copy.bin", Body=b"replaced")  # overwrite
    assert client.get_object(Bucket="replica", Key="dir/copy.bin")["Body"].read() == b"replaced"
    client.upload_fileobj(io.BytesIO(data), "replica", "dir/uploaded.bin")  # the transfer manager
    listed = client.list_objects_v2(Bucket="replica")["Contents"]
    assert [(c["Key"], c["Size"]) for c in listed] == [("dir/copy.bin", 8), ("dir/uploaded.bin", len(data))]
    client.head_bucket(Bucket="replica")
    with pytest.raises(client.exceptions.NoSuchBucket):
        client.put_object(Bucket="no-such-bucket", Key="x", Body=b"x")
    with pytest.raises(client.exceptions.NoSuchBucket):
        client.list_objects_v2(Bucket="no-such-bucket")
    with pytest.raises(client.exceptions.NoSuchBucket):
        client.list_objects(Bucket="no-such-bucket")
    counts = server.stats()["counts"]
    assert counts["GET s3:list-v2"] >= 1 and counts["GET s3:list-v1"] >= 1 and counts["PUT s3:object"] >= 2


def test_obstore_lists_and_puts(server, client, many):
    import obstore
    from obstore.store import S3Store

    store = S3Store("listing", endpoint=server.endpoint, access_key_id="k", secret_access_key="s",
                    region="us-east-1", client_options={"allow_http": True})
    listed = [m["path"] for batch in obstore.list(store, prefix="blobs", chunk_size=1000) for m in batch]
    assert listed == [k for k in many if k.startswith("blobs/")]
    obstore.put(store, "from-obstore", b"obstore body")
    assert client.get_object(Bucket="listing", Key="from-obstore")["Body"].read() == b"obstore body"


def test_ranged_gets_are_answered_as_s3_answers_them(client):
    from botocore.exceptions import ClientError

    client.create_bucket(Bucket="ranges")
    client.put_object(Bucket="ranges", Key="ten", Body=b"0123456789")
    client.put_object(Bucket="ranges", Key="empty", Body=b"")

    def ranged(key: str, spec: str):
        answer = client.get_object(Bucket="ranges", Key=key, Range=spec)
        return answer["ResponseMetadata"]["HTTPStatusCode"], answer.get("ContentRange"), answer["Body"].read()

    assert ranged("ten", "bytes=2-4") == (206, "bytes 2-4/10", b"234")
    assert ranged("ten", "bytes=0-1000") == (206, "bytes 0-9/10", b"0123456789")  # an end past the object's is cut
    assert ranged("ten", "bytes=7-") == (206, "bytes 7-9/10", b"789")
    assert ranged("ten", "bytes=-3") == (206, "bytes 7-9/10", b"789")
    for key, spec in (("ten", "bytes=10-20"), ("empty", "bytes=0-100")):
        with pytest.raises(ClientError) as info:
            client.get_object(Bucket="ranges", Key=key, Range=spec)
        assert info.value.response["Error"]["Code"] == "InvalidRange"
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 416
    assert client.get_object(Bucket="ranges", Key="ten")["Body"].read() == b"0123456789"  # no range: the whole
