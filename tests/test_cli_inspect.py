"""``bitstore stat``, ``put DIR --recursive``, ``warm``, ``verify``, streamed ``get``, and the command line refusing
bad input (output format by extension, a terminal for binary, header lines, failures grouped by cause)."""
from __future__ import annotations

import base64
import csv
import os
import pty
import subprocess
import sys

import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

from .test_cli import MISSING, REPO, bitstore, sha1


def local_spec(tmp_path, *, cache_result: bool = False, extra: str = ""):
    """A cache tier and an archive tier on disk (the archive's hits written back only with ``cache_result``)."""
    spec = tmp_path / "spec.toml"
    spec.write_text(f"""
keys = "sha1"
[[tier]]
type = "local"
prefix = "{tmp_path / 'cache'}"
role = "cache"
name = "cache"
[[tier]]
type = "local"
prefix = "{tmp_path / 'archive'}"
name = "archive"
cache_result = {str(cache_result).lower()}
{extra}""")
    return spec


def archive(tmp_path, *blobs: bytes) -> list[str]:
    folder = tmp_path / "archive"
    folder.mkdir(exist_ok=True)
    for data in blobs:
        (folder / sha1(data)).write_bytes(data)
    return [sha1(d) for d in blobs]


# --- stat ------------------------------------------------------------------------------------------
def test_stat_writes_a_table_with_every_input_column(tmp_path):
    spec = local_spec(tmp_path)
    a, b = archive(tmp_path, b"alpha", b"b" * 1000)
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / a).write_bytes(b"alpha")
    source = tmp_path / "keys.csv"
    source.write_text(f"name,sha1\nfirst,{a}\nsecond,{b.upper()}\nthird,{MISSING}\nfourth,junk\n")
    out = tmp_path / "stat.parquet"
    done = bitstore("--spec", spec, "stat", "-i", source, "-o", out, home=tmp_path / "home")
    assert done.returncode == 0, done.stderr
    table = pq.read_table(out)
    assert table.schema.names == ["name", "sha1", "status", "size", "source"]
    assert table.to_pylist() == [
        {"name": "first", "sha1": a, "status": "found", "size": 5, "source": "cache"},
        {"name": "second", "sha1": b, "status": "found", "size": 1000, "source": "archive"},
        {"name": "third", "sha1": MISSING, "status": "missing", "size": None, "source": None},
        {"name": "fourth", "sha1": "junk", "status": "invalid", "size": None, "source": None},
    ]
    assert "4 keys: found 2, missing 1, invalid 1, failed 0" in done.stderr.decode()
    assert not (tmp_path / "cache" / b).exists()  # stat reads nothing, writes nothing back


def test_stat_to_csv_and_to_stdout(tmp_path):
    spec = local_spec(tmp_path)
    (a,) = archive(tmp_path, b"alpha")
    source = tmp_path / "keys.txt"
    source.write_text(f"sha1\n{a}\n{MISSING}\n")  # a header line naming the key column is skipped
    out = tmp_path / "stat.csv"
    done = bitstore("--spec", spec, "stat", "-i", source, "-o", out, home=tmp_path / "home")
    assert done.returncode == 0, done.stderr
    assert list(csv.DictReader(out.open())) == [
        {"sha1": a, "status": "found", "size": "5", "source": "archive"},
        {"sha1": MISSING, "status": "missing", "size": "", "source": ""}]
    done = bitstore("--spec", spec, "stat", "-i", source, home=tmp_path / "home")
    assert done.stdout.decode().splitlines() == [f"{a}\tfound\t5\tarchive", f"{MISSING}\tmissing\t\t"]


# --- fetch output formats and input -----------------------------------------------------------------
def test_fetch_writes_csv_with_base64_blobs_and_refuses_unknown_extensions(tmp_path):
    spec = local_spec(tmp_path)
    a, b = archive(tmp_path, b"\x00\xffbinary", b"")
    source = tmp_path / "keys.txt"
    source.write_text(f"{a}\n{b}\n{MISSING}\n")
    out = tmp_path / "out.csv"
    done = bitstore("--spec", spec, "fetch", "-i", source, "-o", out, home=tmp_path / "home")
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(out.open()))
    assert [base64.b64decode(r["blob"]) if r["status"] == "found" else r["blob"] for r in rows] == [
        b"\x00\xffbinary", b"", ""]
    assert [r["status"] for r in rows] == ["found", "found", "missing"]
    for name in ("out.json", "out", "out.parquet.gz"):
        done = bitstore("--spec", spec, "fetch", "-i", source, "-o", tmp_path / name, home=tmp_path / "home")
        assert done.returncode == 2 and b"name it .parquet" in done.stderr and not (tmp_path / name).exists()


def test_fetch_refuses_an_input_whose_columns_clash_with_the_output(tmp_path):
    source = tmp_path / "k.csv"
    source.write_text(f"sha1,status\n{MISSING},new\n")
    done = bitstore("fetch", "-i", source, "-o", tmp_path / "o.parquet", home=tmp_path / "home")
    assert done.returncode == 2 and b"already has a column named 'status'" in done.stderr
    assert not (tmp_path / "o.parquet").exists()


def test_fetch_from_stdin_skips_a_header_line(tmp_path):
    spec = local_spec(tmp_path)
    (a,) = archive(tmp_path, b"alpha")
    out = tmp_path / "o.parquet"
    done = bitstore("--spec", spec, "fetch", "-i", "-", "-o", out, home=tmp_path / "home",
                    stdin=f"SHA1\n{a}\n".encode())
    assert done.returncode == 0, done.stderr
    assert [(r["sha1"], r["status"]) for r in pq.read_table(out).to_pylist()] == [(a, "found")]


def test_failures_are_one_line_grouped_by_cause(tmp_path):
    spec = local_spec(tmp_path, extra='[[tier]]\ntype = "api"\nclass = "tests.test_cli:BrokenAPI"\n'
                                      'env = { token = "TOKEN_VAR" }\n')
    archive(tmp_path)
    keys = [sha1(bytes([i])) for i in range(5)]
    source = tmp_path / "k.txt"
    source.write_text("\n".join(keys) + "\n")
    done = bitstore("--spec", spec, "fetch", "-i", source, "-o", tmp_path / "o.parquet", home=tmp_path / "home",
                    env={"TOKEN_VAR": "x"})
    assert done.returncode == 3
    lines = done.stderr.decode().splitlines()
    failures = [line for line in lines if line.strip().startswith("failed:")]
    assert failures == ["  failed: 5 keys: Sha1Composite failed to fetch '<key>': broken-api: ConnectionError: "
                        "upstream API is down"]


# --- put ---------------------------------------------------------------------------------------------
def test_put_a_folder_recursively_then_skips_what_is_there(tmp_path):
    spec = local_spec(tmp_path)
    files = tmp_path / "files"
    (files / "sub").mkdir(parents=True)
    for name, data in [("a", b"one"), ("sub/b", b"two"), ("sub/c", b"one")]:
        (files / name).write_bytes(data)
    refused = bitstore("--spec", spec, "put", files, home=tmp_path / "home")
    assert refused.returncode == 2 and b"add --recursive" in refused.stderr
    done = bitstore("--spec", spec, "put", files, "--recursive", home=tmp_path / "home")
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().splitlines() == [f"{sha1(d)}  {files / n}" for n, d in
                                                 [("a", b"one"), ("sub/b", b"two"), ("sub/c", b"one")]]
    assert sorted(os.listdir(tmp_path / "cache")) == sorted({sha1(b"one"), sha1(b"two")})
    assert "2 files stored, 1 already there" in done.stderr.decode()
    again = bitstore("--spec", spec, "put", "-r", files, home=tmp_path / "home")
    assert "0 files stored, 3 already there, 0 unreadable, 0 failed" in again.stderr.decode()
    to = bitstore("--spec", spec, "put", "-r", files, "--to", "archive", home=tmp_path / "home")
    assert to.returncode == 0  # two contents: "c" has the bytes of "a", so it is written once
    assert "bitstore put -> archive: 2 files stored, 1 already there, 0 unreadable, 0 failed" in to.stderr.decode()
    assert (tmp_path / "archive" / sha1(b"two")).read_bytes() == b"two"
    unknown = bitstore("--spec", spec, "put", files / "a", "--to", "nope", home=tmp_path / "home")
    assert unknown.returncode == 2 and b"no tier named 'nope'" in unknown.stderr and b"'archive'" in unknown.stderr


# --- get ---------------------------------------------------------------------------------------------
def test_get_refuses_to_write_binary_to_a_terminal(tmp_path):
    spec = local_spec(tmp_path)
    (a,) = archive(tmp_path, b"\x00binary")
    master, slave = pty.openpty()
    env = {**os.environ, "BITSTORE_HOME": str(tmp_path / "home"), "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "bitstore.cli", "--spec", str(spec), "get", a], stdout=slave,
                          stderr=subprocess.PIPE, env=env, cwd=REPO, timeout=60)
    os.close(slave)
    os.close(master)
    assert proc.returncode == 2 and b"refusing to write a blob to the terminal" in proc.stderr
    out = tmp_path / "blob.bin"
    assert bitstore("--spec", spec, "get", a, "-o", out, home=tmp_path / "home").returncode == 0
    assert out.read_bytes() == b"\x00binary"


def test_get_streams_and_refuses_corrupt_bytes(tmp_path):
    spec = local_spec(tmp_path, extra="")
    spec.write_text(spec.read_text().replace('name = "archive"', 'name = "archive"\nmax_blob_bytes = 100'))
    data = os.urandom(300_000)
    (a,) = archive(tmp_path, data)
    out = tmp_path / "blob.bin"
    done = bitstore("--spec", spec, "get", a, "-o", out, home=tmp_path / "home")
    assert done.returncode == 0, done.stderr  # over max_blob_bytes, but streamed: the cap is for whole reads
    assert out.read_bytes() == data
    assert bitstore("--spec", spec, "fetch", "-i", "-", "-o", tmp_path / "o.parquet", home=tmp_path / "home",
                    stdin=a.encode()).returncode == 3  # a whole read is still refused
    (tmp_path / "archive" / a).write_bytes(b"corrupted")
    out.unlink()
    done = bitstore("--spec", spec, "get", a, "-o", out, home=tmp_path / "home")
    assert done.returncode == 3 and b"corrupt" in done.stderr and not out.exists()
    assert os.listdir(tmp_path) and not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


# --- warm and verify ---------------------------------------------------------------------------------
def test_warm_fills_the_cache_and_writes_nothing_else(tmp_path):
    spec = local_spec(tmp_path)  # the archive's hits are not written back by reads
    keys = archive(tmp_path, b"one", b"two")
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / keys[0]).write_bytes(b"one")
    source = tmp_path / "k.txt"
    source.write_text("\n".join([*keys, MISSING, "junk"]) + "\n")
    before = set(os.listdir(tmp_path))
    done = bitstore("--spec", spec, "warm", "-i", source, home=tmp_path / "home")
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"" and set(os.listdir(tmp_path)) == before
    assert sorted(os.listdir(tmp_path / "cache")) == sorted(keys)
    assert "4 keys: cached 1, present 1, missing 1, invalid 1, failed 0" in done.stderr.decode()
    no_cache = tmp_path / "nocache.toml"
    no_cache.write_text(f'[[tier]]\ntype = "local"\nprefix = "{tmp_path / "archive"}"\n')
    refused = bitstore("--spec", no_cache, "warm", "-i", source, home=tmp_path / "home")
    assert refused.returncode == 2 and b"no" in refused.stderr and b"cache" in refused.stderr


def test_verify_reports_corrupt_blobs_with_its_exit_code(tmp_path):
    spec = local_spec(tmp_path)
    keys = archive(tmp_path, b"one", b"two", b"three")
    source = tmp_path / "k.txt"
    source.write_text("\n".join([keys[0], f"sha1://{keys[1].upper()}", keys[2], MISSING]) + "\n")
    clean = bitstore("--spec", spec, "verify", "--tier", "archive", "-i", source, home=tmp_path / "home")
    assert clean.returncode == 0 and clean.stdout == b""
    assert "4 keys: ok 3, corrupt 0, missing 1" in clean.stderr.decode()
    (tmp_path / "archive" / keys[1]).write_bytes(b"bit rot")
    bad = bitstore("--spec", spec, "verify", "--tier", "2", "-i", source, home=tmp_path / "home")
    assert bad.returncode == 1
    assert bad.stdout.decode() == f"{keys[1]}  corrupt in archive: data has SHA1 {sha1(b'bit rot')}\n"
    cache = bitstore("--spec", spec, "verify", "-i", source, home=tmp_path / "home")  # default: the cache tier
    assert cache.returncode == 0 and "missing 4" in cache.stderr.decode()


def test_progress_total_is_counted_for_csv_input(tmp_path):
    from bitstore.integrations.inputs import open_keys

    source = tmp_path / "k.csv"
    source.write_text('sha1,n\n"a\nb",1\n\nc,2\nd\n')  # a quoted newline, a blank line, a short row
    keys = open_keys(source)
    assert keys.total is None and keys.count() == 3 and keys.total == 3
    assert list(keys) == ["a\nb", "c", "d"]
    text = tmp_path / "k.txt"
    text.write_text("SHA1\n\nx\n y \n")
    assert open_keys(text).count() == 2
    assert list(open_keys(text)) == ["x", "y"]



OBSTORE_DUMP = ("s3 failed to fetch 's3://b/" + "ab" * 20 + "': 2 attempts, last error: GenericError: Generic S3 "
                "error: Error performing GET http://127.0.0.1:9/b/" + "ab" * 20 + " in 167.029µs - HTTP error: "
                "error sending request\n\nDebug source:\nGeneric {\n    store: \"S3\",\n"
                "    source: RetryError(\n...(+918 chars)")


def test_failure_cause_is_one_line_without_the_key_or_the_debug_dump():
    from bitstore.integrations.fetchjob import failure_cause

    cause = failure_cause(OBSTORE_DUMP, "ab" * 20)
    assert cause == ("s3 failed to fetch 's3://b/<key>': 2 attempts, last error: GenericError: Generic S3 error: "
                     "Error performing GET http://127.0.0.1:9/b/<key> - HTTP error: error sending request")
    other = OBSTORE_DUMP.replace("ab" * 20, "cd" * 20).replace("167.029", "3.5")
    assert failure_cause(other, "cd" * 20) == cause  # two keys failing alike group together
    long = "x" * 400 + " (Caused by NewConnectionError('[Errno 111] Connection refused'))"
    assert failure_cause(long).endswith("... (Connection refused)")
    assert "ab" * 20 in failure_cause(OBSTORE_DUMP, mask_keys=False)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=2000))
def test_failure_cause_is_always_one_bounded_line(text):
    from bitstore.integrations.fetchjob import failure_cause

    cause = failure_cause(text, text[:40])
    assert "\n" not in cause and "\r" not in cause and len(cause) <= 300 + 200
