"""``stat``, ``put -r --to``, ``warm``, ``verify`` and streamed ``get`` against S3 (moto) and GCS (fake-gcs-server),
and connection failures reported in one line, grouped by cause."""
from __future__ import annotations

import os
import socket

import pyarrow.parquet as pq

from .test_cli import MISSING, bitstore, sha1
from .test_cli_cloud import CANARY, cloud  # noqa: F401 - the fixture


def test_stat_names_the_cloud_tier_and_size_without_downloading(cloud, tmp_path):  # noqa: F811
    blobs, spec, env = cloud
    s3_only, gcs_only, both = blobs
    source = tmp_path / "k.txt"
    source.write_text("\n".join([s3_only, gcs_only, both, MISSING]) + "\n")
    out = tmp_path / "stat.parquet"
    done = bitstore("--spec", spec, "stat", "-i", source, "-o", out, home=tmp_path / "home", env=env)
    assert done.returncode == 0, done.stderr
    assert [(r["status"], r["size"], r["source"]) for r in pq.read_table(out).to_pylist()] == [
        ("found", len(blobs[s3_only]), "s3-archive"), ("found", len(blobs[gcs_only]), "gcs-lake"),
        ("found", len(blobs[both]), "s3-archive"), ("missing", None, None)]
    assert not list((tmp_path / "cache").iterdir())  # nothing was downloaded, so nothing written back
    assert CANARY not in done.stderr.decode()


def test_stat_on_a_bucket_that_does_not_exist_fails_instead_of_missing(cloud, tmp_path):  # noqa: F811
    blobs, spec, env = cloud
    spec.write_text(spec.read_text().replace("s3://archive/files/", "s3://no-such-bucket/files/")
                    .replace("gs://lake/blobs/", "gs://no-such-lake/blobs/"))
    source = tmp_path / "k.txt"
    source.write_text(f"{next(iter(blobs))}\n")
    done = bitstore("--spec", spec, "stat", "-i", source, home=tmp_path / "home", env=env)
    assert done.returncode == 3
    assert done.stdout.decode().split("\t")[1] == "failed"
    stderr = done.stderr.decode()
    assert "bucket 'no-such-bucket' does not exist" in stderr and "bucket 'no-such-lake' does not exist" in stderr


def test_get_streams_a_blob_larger_than_max_blob_bytes_from_s3(cloud, s3, tmp_path):  # noqa: F811
    _, spec, env = cloud
    data = os.urandom(3 * 1024 * 1024)
    s3.put("archive", f"files/{sha1(data)}", data)
    spec.write_text(spec.read_text().replace('name = "s3-archive"', 'name = "s3-archive"\nmax_blob_bytes = 1000'))
    out = tmp_path / "big.bin"
    done = bitstore("--spec", spec, "get", sha1(data), "-o", out, home=tmp_path / "home", env=env)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == data


def test_put_a_folder_to_a_cloud_tier_then_warm_and_verify(cloud, s3, tmp_path):  # noqa: F811
    _, spec, env = cloud
    files = tmp_path / "files"
    files.mkdir()
    contents = [b"first file", b"second file"]
    for i, data in enumerate(contents):
        (files / f"f{i}").write_bytes(data)
    done = bitstore("--spec", spec, "put", "-r", files, "--to", "s3-archive", home=tmp_path / "home", env=env)
    assert done.returncode == 0, done.stderr
    assert "bitstore put -> s3-archive: 2 files stored" in done.stderr.decode()
    for data in contents:
        assert s3.client.get_object(Bucket="archive", Key=f"files/{sha1(data)}")["Body"].read() == data
    source = tmp_path / "k.txt"
    source.write_text("\n".join(sha1(d) for d in contents) + "\n")
    warm = bitstore("--spec", spec, "warm", "-i", source, home=tmp_path / "home", env=env)
    assert warm.returncode == 0 and "cached 2" in warm.stderr.decode()
    assert sorted(os.listdir(tmp_path / "cache")) == sorted(sha1(d) for d in contents)
    s3.put("archive", f"files/{sha1(contents[0])}", b"tampered")
    verify = bitstore("--spec", spec, "verify", "--tier", "s3-archive", "-i", source, home=tmp_path / "home", env=env)
    assert verify.returncode == 1
    assert verify.stdout.decode().startswith(f"{sha1(contents[0])}  corrupt in s3-archive")


def test_connection_failures_are_one_line_and_grouped(tmp_path):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    spec = tmp_path / "down.toml"
    spec.write_text(f"""
retry = {{ attempts = 2, base_delay = 0.001, max_delay = 0.01 }}
[[tier]]
type = "gcs"
prefix = "gs://lake/blobs/"
endpoint = "http://127.0.0.1:{port}"
project = "test"
transport = "fast"
""")
    keys = [sha1(bytes([i])) for i in range(4)]
    source = tmp_path / "k.txt"
    source.write_text("\n".join(keys) + "\n")
    done = bitstore("--spec", spec, "fetch", "-i", source, "-o", tmp_path / "o.parquet", home=tmp_path / "home")
    assert done.returncode == 3
    failures = [line for line in done.stderr.decode().splitlines() if line.strip().startswith("failed:")]
    assert len(failures) == 1 and failures[0].startswith("  failed: 4 keys: ")
    assert "Debug source" not in done.stderr.decode() and "chars)" not in failures[0]
    get = bitstore("--spec", spec, "get", keys[0], "-o", tmp_path / "b.bin", home=tmp_path / "home")
    assert get.returncode == 3 and get.stderr.decode().count("\n") == 1
