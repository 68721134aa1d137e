"""The ``bitstore`` console script, run as a subprocess against the local store and spec files:
get/put/fetch exit codes, Parquet output row by row for each input format, errors in one line, no secrets."""
from __future__ import annotations

import fcntl
import hashlib
import os
import pty
import select
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bitstore import Sha1APISource

REPO = Path(__file__).resolve().parents[1]
CANARY = "canary-secret-5be01c77"
MISSING = hashlib.sha1(b"never stored").hexdigest()


class BrokenAPI(Sha1APISource):
    """An API source that fails every call (after checking it was given a token)."""

    def __init__(self, token: str, name: str = "broken-api"):
        super().__init__(name=name)
        self.token = token

    def api_get(self, sha1: str) -> bytes | None:
        raise ConnectionError("upstream API is down")


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def bitstore(*args, home: Path, env: dict | None = None, stdin: bytes | None = None, cwd: Path | None = None):
    """Run the console script in a fresh interpreter; returns the CompletedProcess (bytes output)."""
    full_env = {**os.environ, "BITSTORE_HOME": str(home), "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, "-m", "bitstore.cli", *map(str, args)], input=stdin, capture_output=True,
                          env=full_env, cwd=cwd or REPO, timeout=120)


@pytest.fixture
def home(tmp_path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def stored(tmp_path, home) -> dict[str, bytes]:
    """Three blobs put into the default local store through ``bitstore put``."""
    blobs = {}
    files = []
    for i, data in enumerate([b"", b"hello\n", bytes(range(256)) * 300]):
        path = tmp_path / f"file{i}.bin"
        path.write_bytes(data)
        files.append(path)
        blobs[sha1(data)] = data
    done = bitstore("put", *files, home=home)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().splitlines() == [f"{sha1(p.read_bytes())}  {p}" for p in files]
    return blobs


ADDED = [("blob", pa.large_binary()), ("status", pa.string(), False), ("source", pa.string())]
KEYS_ONLY = (("sha1", pa.string()),)


def read_rows(path: Path, inputs=KEYS_ONLY) -> list[dict]:
    """The rows of a fetch output whose input columns were ``inputs`` (one key a line: just ``sha1``)."""
    table = pq.read_table(path)
    assert table.schema == pa.schema([*inputs, *ADDED])
    return table.to_pylist()


# --- get / put -------------------------------------------------------------------------------------
def test_put_then_get(stored, home, tmp_path):
    assert sorted(os.listdir(home / "blobs")) == sorted(stored)
    for key, data in stored.items():
        done = bitstore("get", key, home=home)
        assert (done.returncode, done.stdout) == (0, data)
        out = tmp_path / "out.bin"
        done = bitstore("get", f"sha1://{key.upper()}", "-o", out, home=home)
        assert done.returncode == 0 and done.stdout == b"" and out.read_bytes() == data


def test_get_exit_codes(stored, home):
    missing = bitstore("get", MISSING, home=home)
    assert missing.returncode == 1 and missing.stdout == b""
    assert missing.stderr.decode().strip() == f"bitstore: error: not found: {MISSING}"
    assert bitstore("get", f" {MISSING}\n", home=home).returncode == 1  # surrounding whitespace is ignored
    for bad in ["xyz", MISSING + "0", MISSING[:20] + " " + MISSING[20:]]:
        invalid = bitstore("get", bad, home=home)
        assert invalid.returncode == 2 and b"not a valid key" in invalid.stderr and b"Traceback" not in invalid.stderr
    usage = bitstore("get", home=home)
    assert usage.returncode == 2 and b"usage:" in usage.stderr
    assert bitstore("--help", home=home).returncode == 0


def test_get_failed_is_3_and_put_goes_to_the_cache_tier(tmp_path, home):
    cache = tmp_path / "cache"
    spec = tmp_path / "spec.toml"
    spec.write_text(f"""
[[tier]]
type = "api"
class = "tests.test_cli:BrokenAPI"
env = {{ token = "BROKEN_TOKEN" }}

[[tier]]
type = "local"
prefix = "{cache}"
role = "cache"
""")
    env = {"BROKEN_TOKEN": CANARY}
    data = b"put into the cache"
    (tmp_path / "f").write_bytes(data)
    put = bitstore("--spec", spec, "put", tmp_path / "f", home=home, env=env)
    assert put.returncode == 0 and (cache / sha1(data)).read_bytes() == data
    assert not (home / "blobs").exists()  # with --spec, the default store is not touched
    failed = bitstore("-vv", "get", MISSING, "--spec", spec, home=home, env=env)
    assert failed.returncode == 3
    assert b"upstream API is down" in failed.stderr and CANARY.encode() not in failed.stderr + failed.stdout
    found = bitstore("get", sha1(data), "--spec", spec, home=home, env=env)  # a later tier has it: found
    assert (found.returncode, found.stdout) == (0, data)


def test_put_reports_unreadable_files_and_keeps_going(tmp_path, home):
    (tmp_path / "ok").write_bytes(b"ok")
    done = bitstore("put", tmp_path / "absent", tmp_path / "ok", home=home)
    assert done.returncode == 2
    assert done.stdout.decode() == f"{sha1(b'ok')}  {tmp_path / 'ok'}\n"
    expected = f"bitstore: error: cannot read {tmp_path / 'absent'}: No such file or directory"
    assert done.stderr.decode().splitlines() == [
        expected, "bitstore put -> local: 1 file stored, 0 already there, 1 unreadable, 0 failed"]


def test_put_needs_sha1_keys(tmp_path, home):
    spec = tmp_path / "uri.toml"
    spec.write_text('keys = "uri"\n[[tier]]\ntype = "memory"\n')
    (tmp_path / "f").write_bytes(b"f")
    done = bitstore("--spec", spec, "put", tmp_path / "f", home=home)
    assert done.returncode == 2 and b'keys = "sha1"' in done.stderr


# --- fetch -----------------------------------------------------------------------------------------
def keys_and_expected(stored: dict[str, bytes]) -> tuple[list, list[dict]]:
    """Input keys (valid, upper-case, sha1://, duplicate, missing, invalid) and the rows they must give."""
    a, b, c = stored
    keys = [a, b.upper(), f"sha1://{c}", MISSING, "not-a-sha1", a]
    rows = [
        {"sha1": a, "blob": stored[a], "status": "found", "source": "local"},
        {"sha1": b, "blob": stored[b], "status": "found", "source": "local"},
        {"sha1": c, "blob": stored[c], "status": "found", "source": "local"},
        {"sha1": MISSING, "blob": None, "status": "missing", "source": None},
        {"sha1": "not-a-sha1", "blob": None, "status": "invalid", "source": None},
        {"sha1": a, "blob": stored[a], "status": "found", "source": "local"},
    ]
    return keys, rows


@pytest.mark.parametrize("fmt", [".txt", ".csv", ".parquet"])
def test_fetch_each_input_format(stored, home, tmp_path, fmt):
    keys, expected = keys_and_expected(stored)
    source = tmp_path / f"keys{fmt}"
    if fmt == ".txt":
        source.write_text("\n".join(keys) + "\n")
    elif fmt == ".csv":
        source.write_text("id,sha1,note\n" + "".join(f"{i},{k},n{i}\n" for i, k in enumerate(keys)))
    else:
        pq.write_table(pa.table({"id": list(range(len(keys))), "sha1": keys}), source, row_group_size=4)
    out = tmp_path / "out.parquet"
    done = bitstore("fetch", "--input", source, "--output", out, "--batch-size", "4", home=home)
    assert done.returncode == 0, done.stderr
    if fmt == ".txt":
        assert read_rows(out) == expected
    elif fmt == ".csv":  # every input column kept, in place; CSV cells are strings
        inputs = [("id", pa.string()), ("sha1", pa.string()), ("note", pa.string())]
        assert read_rows(out, inputs) == [{"id": str(i), **row, "note": f"n{i}"} for i, row in enumerate(expected)]
    else:  # Parquet columns keep their types
        assert read_rows(out, [("id", pa.int64()), ("sha1", pa.string())]) == [
            {"id": i, **row} for i, row in enumerate(expected)]
    assert pq.ParquetFile(out).metadata.num_row_groups == 2  # written in row groups of --batch-size
    summary = done.stderr.decode()
    assert "6 keys" in summary and "found 4, missing 1, invalid 1, failed 0" in summary
    assert "local: 4 blobs" in summary
    # composite.stats(): the key given twice (in two forms) was fetched once
    assert "calls per tier:\n  local: 4 calls, 3 hits, 1 misses, 0 failed, p50 " in summary
    assert "\r" not in summary and "blob/s" not in summary  # no progress bar when stderr is not a terminal
    assert done.stdout == b""


def test_fetch_csv_and_parquet_with_another_column_and_odd_values(stored, home, tmp_path):
    a = next(iter(stored))
    csv_in = tmp_path / "k.csv"
    csv_in.write_text(f'key,other\n{a},x\n"",y\n\n{a.upper()}\nshort\n')  # empty cell, blank line, short rows
    out = tmp_path / "o.parquet"
    done = bitstore("fetch", "-i", csv_in, "--column", "key", "-o", out, home=home)
    assert done.returncode == 0, done.stderr
    rows = read_rows(out, [("key", pa.string()), ("other", pa.string())])
    assert [(r["key"], r["other"], r["status"]) for r in rows] == [
        (a, "x", "found"), ("", "y", "invalid"), (a, None, "found"), ("short", None, "invalid")]
    parquet_in = tmp_path / "k.parquet"
    pq.write_table(pa.table({"k": pa.array([a, None, a.upper()], pa.large_string()), "n": [7, 8, None]}), parquet_in)
    done = bitstore("fetch", "-i", parquet_in, "--column", "k", "-o", out, home=home)
    assert done.returncode == 0, done.stderr
    rows = read_rows(out, [("k", pa.large_string()), ("n", pa.int64())])
    assert [(r["k"], r["n"], r["status"]) for r in rows] == [(a, 7, "found"), (None, 8, "invalid"), (a, None, "found")]
    out.unlink()
    done = bitstore("fetch", "-i", parquet_in, "--column", "n", "-o", out, home=home)  # not strings: refused
    assert done.returncode == 2 and b"holds int64, not strings" in done.stderr and not out.exists()


def test_fetch_from_stdin(stored, home, tmp_path):
    a = next(iter(stored))
    out = tmp_path / "o.parquet"
    done = bitstore("fetch", "--input", "-", "--output", out, home=home, stdin=f"{a}\n{MISSING}\n".encode())
    assert done.returncode == 0, done.stderr
    assert [r["status"] for r in read_rows(out)] == ["found", "missing"]


@pytest.mark.parametrize("name, content", [
    ("empty.txt", b""), ("blank.txt", b"\n\n  \n"), ("empty.csv", b""), ("header.csv", b"sha1\n"),
    ("rows0.parquet", None),
])
def test_fetch_empty_inputs_give_an_empty_file_with_the_schema(home, tmp_path, name, content):
    source = tmp_path / name
    if content is None:
        pq.write_table(pa.table({"sha1": pa.array([], pa.string())}), source)
    else:
        source.write_bytes(content)
    out = tmp_path / "o.parquet"
    done = bitstore("fetch", "--input", source, "--output", out, home=home)
    assert done.returncode == 0, done.stderr
    assert read_rows(out) == []
    assert "0 keys" in done.stderr.decode()


@pytest.mark.parametrize("name, content, words", [
    ("keys.json", b"[]", "extension"),
    ("junk.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not a list of keys"),
    ("nul.txt", b"abc\x00def\n", "binary data"),
    ("latin.txt", "caf\xe9\n".encode("latin-1"), "not UTF-8"),
    ("long.txt", b"a" * 100_000, "longer than"),
    ("nocol.csv", b"id,key\n1,2\n", "no column 'sha1'"),
    ("nul.csv", b"sha1\nab\x00cd\n", "binary data"),
    ("long.csv", b"sha1\n" + b"b" * 100_000, "longer than"),
    ("notparquet.parquet", b"this is not parquet", "Parquet"),
    ("empty.parquet", b"", "0 bytes"),
    ("nocol.parquet", None, "no column 'sha1'"),
    ("absent.txt", False, "No such file"),
])
def test_fetch_bad_inputs_exit_2_with_one_line(home, tmp_path, name, content, words):
    source = tmp_path / name
    if content is None:
        pq.write_table(pa.table({"hash": ["x"]}), source)
    elif content is not False:
        source.write_bytes(content)
    out = tmp_path / "o.parquet"
    done = bitstore("fetch", "--input", source, "--output", out, home=home)
    stderr = done.stderr.decode()
    assert done.returncode == 2, stderr
    assert stderr.count("\n") == 1 and stderr.startswith("bitstore: error: ") and words in stderr
    assert "Traceback" not in stderr
    assert not out.exists() and os.listdir(tmp_path) == [name] * (content is not False)  # no partial output


def test_fetch_junk_after_good_lines_leaves_no_partial_output(stored, home, tmp_path):
    a = next(iter(stored))
    source = tmp_path / "k.txt"
    source.write_bytes(f"{a}\n".encode() * 50 + b"\xff\xfe junk\n")
    out = tmp_path / "o.parquet"
    done = bitstore("fetch", "--input", source, "--output", out, "--batch-size", "7", home=home)
    assert done.returncode == 2 and b"line 51 is not UTF-8" in done.stderr
    assert sorted(os.listdir(tmp_path)) == sorted(["k.txt", "home", *[f"file{i}.bin" for i in range(3)]])


def test_fetch_usage_errors(home, tmp_path):
    source = tmp_path / "k.txt"
    source.write_text(MISSING)
    for args, words in [
        (["--output", tmp_path / "o.parquet"], "--input"),
        (["--input", source, "--output", tmp_path / "nope" / "o.parquet"], "no such folder"),
        (["--input", source, "--output", tmp_path], "is a folder"),
        (["--input", source, "--output", tmp_path / "o.parquet", "--max-workers", "0"], "at least 1"),
    ]:
        done = bitstore("fetch", *args, home=home)
        assert done.returncode == 2 and words in done.stderr.decode() and b"Traceback" not in done.stderr


def test_fetch_exits_3_when_a_key_failed_and_never_prints_the_secret(stored, home, tmp_path):
    a = next(iter(stored))
    spec = tmp_path / "spec.toml"
    spec.write_text(f"""
name = "two-tier"
max_workers = 4
[[tier]]
type = "local"
prefix = "{home / 'blobs'}"
name = "disk"
[[tier]]
type = "api"
class = "tests.test_cli:BrokenAPI"
env = {{ token = "SECRET_TOKEN_VAR" }}
""")
    source = tmp_path / "k.txt"
    source.write_text(f"{a}\n{MISSING}\n")
    out = tmp_path / "o.parquet"
    done = bitstore("-vv", "--spec", spec, "fetch", "-i", source, "-o", out, home=home,
                    env={"SECRET_TOKEN_VAR": CANARY})
    assert done.returncode == 3, done.stderr
    rows = read_rows(out)
    assert [(r["sha1"], r["status"], r["source"]) for r in rows] == [(a, "found", "disk"), (MISSING, "failed", None)]
    stderr = done.stderr.decode()
    assert "failed 1" in stderr and "disk: 1 blob," in stderr and "upstream API is down" in stderr
    assert CANARY not in stderr and CANARY.encode() not in done.stdout
    unset = bitstore("--spec", spec, "fetch", "-i", source, "-o", out, home=home)
    assert unset.returncode == 2 and b"SECRET_TOKEN_VAR is not set" in unset.stderr


def test_spec_errors_are_one_line_naming_key_and_file(home, tmp_path):
    spec = tmp_path / "bad.toml"
    spec.write_text(f'[[tier]]\ntype = "s3"\nprefix = "s3://b/"\naws_secret_access_key = "{CANARY}"\n')
    done = bitstore("--spec", spec, "get", MISSING, home=home)
    stderr = done.stderr.decode()
    assert done.returncode == 2 and stderr.count("\n") == 1
    assert str(spec) in stderr and "tier[1].aws_secret_access_key" in stderr and CANARY not in stderr
    spec.write_text('[[tier]]\ntype = "memory"\ncolour = "blue"\n')
    done = bitstore("fetch", "-i", spec, "-o", tmp_path / "o.parquet", "--spec", spec, home=home)
    assert done.returncode == 2 and b"tier[1].colour" in done.stderr and b"unknown key" in done.stderr


def test_fetch_shows_a_progress_bar_on_a_terminal(stored, home, tmp_path):
    source = tmp_path / "k.txt"
    source.write_text("\n".join(stored) + "\n")
    out = tmp_path / "o.parquet"
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a 100-column terminal
    env = {**os.environ, "BITSTORE_HOME": str(home), "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "bitstore.cli", "fetch", "-i", str(source), "-o", str(out)],
                            stdout=subprocess.DEVNULL, stderr=slave, env=env, cwd=REPO)
    os.close(slave)
    seen = b""
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    assert proc.wait(timeout=60) == 0
    assert b"bitstore: " in seen and b"3/3" in seen  # tqdm's bar with a total: the rows were counted first
    assert len(read_rows(out)) == 3


def test_demo_still_runs(home):
    done = bitstore("demo", "--no-progress", home=home)
    assert done.returncode == 0, done.stderr
    assert b"second pass served from the cache: yes" in done.stdout
