"""The console script against the S3 (moto) and GCS (fake-gcs-server) test servers through spec files:
``fetch`` on each input format row by row, write-back to a local cache, ``get``/``put`` on S3, failures, and
a canary secret read from the environment that never shows in the output."""
from __future__ import annotations

import socket

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from .test_cli import MISSING, bitstore, read_rows, sha1

CANARY = "canary-aws-secret-3c9e71d0"


@pytest.fixture
def cloud(s3, gcs, tmp_path):
    """Blobs on both servers (one only on S3, one only on GCS, one on both) and a spec file over them."""
    blobs = {sha1(d): d for d in [b"only on s3", b"only on gcs", b"on both" * 1000]}
    s3_only, gcs_only, both = blobs
    s3.create_bucket("archive")
    gcs.create_bucket("lake")
    for key in (s3_only, both):
        s3.put("archive", f"files/{key}", blobs[key])
    for key in (gcs_only, both):
        gcs.put("lake", f"blobs/{key}", blobs[key])
    spec = tmp_path / "cloud.toml"
    spec.write_text(f"""
keys = "sha1"
max_workers = 8
retry = {{ attempts = 2, base_delay = 0.001, max_delay = 0.01 }}

[[tier]]
type = "local"
prefix = "cache"
role = "cache"

[[tier]]
type = "s3"
name = "s3-archive"
prefix = "s3://archive/files/"
endpoint_url = "{s3.endpoint_url}"
credentials_env = {{ aws_access_key_id = "CLOUD_KEY_ID", aws_secret_access_key = "CLOUD_SECRET" }}

[[tier]]
type = "gcs"
name = "gcs-lake"
prefix = "gs://lake/blobs/"
endpoint = "{gcs.endpoint}"
project = "test"
cache_result = true
""")
    env = {"CLOUD_KEY_ID": "AKIDCLOUDTEST", "CLOUD_SECRET": CANARY}
    return blobs, spec, env


def write_keys(path, keys: list) -> None:
    if path.suffix == ".txt":
        path.write_text("\n".join(keys) + "\n")
    elif path.suffix == ".csv":
        path.write_text("sha1\n" + "\n".join(keys) + "\n")
    else:
        pq.write_table(pa.table({"sha1": keys}), path)


@pytest.mark.parametrize("fmt", [".txt", ".csv", ".parquet"])
def test_fetch_from_s3_and_gcs_writes_back_and_rereads_from_the_cache(cloud, tmp_path, fmt):
    blobs, spec, env = cloud
    s3_only, gcs_only, both = blobs
    source = tmp_path / f"keys{fmt}"
    write_keys(source, [s3_only, gcs_only.upper(), both, MISSING, "junk"])
    out = tmp_path / "out.parquet"
    done = bitstore("-vv", "--spec", spec, "fetch", "-i", source, "-o", out, home=tmp_path / "home", env=env)
    assert done.returncode == 0, done.stderr
    assert read_rows(out) == [
        {"sha1": s3_only, "blob": blobs[s3_only], "status": "found", "source": "s3-archive"},
        {"sha1": gcs_only, "blob": blobs[gcs_only], "status": "found", "source": "gcs-lake"},
        {"sha1": both, "blob": blobs[both], "status": "found", "source": "s3-archive"},
        {"sha1": MISSING, "blob": None, "status": "missing", "source": None},
        {"sha1": "junk", "blob": None, "status": "invalid", "source": None},
    ]
    stderr = done.stderr.decode()
    assert "s3-archive: 2 blobs" in stderr and "gcs-lake: 1 blob," in stderr
    assert "written back to the cache: 1 (0 failed)" in stderr
    assert CANARY not in stderr and CANARY.encode() not in done.stdout
    cache = tmp_path / "cache"  # relative to the spec file's folder
    assert sorted(p.name for p in cache.iterdir()) == [gcs_only]

    again = bitstore("--spec", spec, "fetch", "-i", source, "-o", out, home=tmp_path / "home", env=env)
    assert again.returncode == 0, again.stderr
    assert [r["source"] for r in read_rows(out)] == ["s3-archive", "local:" + str(cache) + "/", "s3-archive",
                                                     None, None]


def test_get_and_put_on_s3(cloud, s3, tmp_path):
    blobs, _, env = cloud
    spec = tmp_path / "s3.toml"
    spec.write_text(f"""
[[tier]]
type = "s3"
prefix = "s3://archive/uploads/"
endpoint_url = "{s3.endpoint_url}"
transport = "sdk"
credentials_env = {{ aws_access_key_id = "CLOUD_KEY_ID", aws_secret_access_key = "CLOUD_SECRET" }}
""")
    data = b"uploaded through the cli"
    (tmp_path / "up.bin").write_bytes(data)
    put = bitstore("--spec", spec, "put", tmp_path / "up.bin", home=tmp_path / "home", env=env)
    assert put.returncode == 0, put.stderr
    assert put.stdout.decode() == f"{sha1(data)}  {tmp_path / 'up.bin'}\n"
    assert s3.client.get_object(Bucket="archive", Key=f"uploads/{sha1(data)}")["Body"].read() == data
    got = bitstore("--spec", spec, "get", sha1(data), home=tmp_path / "home", env=env)
    assert (got.returncode, got.stdout) == (0, data)
    missing = bitstore("--spec", spec, "get", MISSING, home=tmp_path / "home", env=env)
    assert missing.returncode == 1
    for output in (put, got, missing):
        assert CANARY.encode() not in output.stdout + output.stderr


def test_an_unreachable_server_is_a_failure_not_a_miss(cloud, tmp_path):
    _, _, env = cloud
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    spec = tmp_path / "down.toml"
    spec.write_text(f"""
[[tier]]
type = "s3"
prefix = "s3://archive/files/"
endpoint_url = "http://127.0.0.1:{port}"
attempts = 2
base_delay = 0.001
credentials_env = {{ aws_access_key_id = "CLOUD_KEY_ID", aws_secret_access_key = "CLOUD_SECRET" }}
""")
    source = tmp_path / "k.txt"
    source.write_text(f"{MISSING}\n")
    out = tmp_path / "o.parquet"
    done = bitstore("-vv", "--spec", spec, "fetch", "-i", source, "-o", out, home=tmp_path / "home", env=env)
    assert done.returncode == 3, done.stderr
    assert [r["status"] for r in read_rows(out)] == ["failed"]
    get = bitstore("-vv", "--spec", spec, "get", MISSING, home=tmp_path / "home", env=env)
    assert get.returncode == 3
    for output in (done, get):
        text = (output.stdout + output.stderr).decode()
        assert CANARY not in text and "AKIDCLOUDTEST" not in text and "Traceback" not in text


def test_replicate_from_s3_to_a_folder_imports_no_boto3_and_a_missing_bucket_exits_3(s3, tmp_path):
    """With the keys and endpoint in the environment, the fast transport lists without boto3 (a short command's
    start); a bucket that is not there is an error (exit 3), never an empty source."""
    pytest.importorskip("obstore")
    import json
    import os
    import subprocess
    import sys

    from .test_cli import REPO

    s3.create_bucket("archive")
    blobs = {sha1(d): d for d in (b"first", b"second")}
    for key, data in blobs.items():
        s3.put("archive", f"files/{key}", data)
    env = {**os.environ, "AWS_ENDPOINT_URL": s3.endpoint_url, "PYTHONPATH": str(REPO)}
    probe = ("import sys, json\nfrom bitstore.cli.main import main\ncode = main(sys.argv[1:])\n"
             "print(json.dumps([code, sorted(m for m in ('boto3', 'botocore') if m in sys.modules)]))")
    out = tmp_path / "copy"
    for _ in range(2):  # the copy, then the rerun with nothing to do
        done = subprocess.run([sys.executable, "-c", probe, "replicate", "--from", "s3://archive/files/", "--to",
                               str(out), "--no-progress"], env=env, capture_output=True, text=True, timeout=60)
        assert json.loads(done.stdout.splitlines()[-1]) == [0, []], done.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(blobs)
    assert "skipped 2" in done.stderr
    missing = bitstore("replicate", "--from", "s3://no-such-bucket/files/", "--to", tmp_path / "none",
                       home=tmp_path / "home", env={"AWS_ENDPOINT_URL": s3.endpoint_url})
    said = missing.stderr.decode()
    assert missing.returncode == 3 and "no-such-bucket" in said and "does not exist" in said, said
