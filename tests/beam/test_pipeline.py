"""``python -m beam_transforms.pipeline``: same inputs and output as ``bitstore fetch``, no Prism download."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from beam_transforms import pipeline
from bitstore import cli
from bitstore.integrations.fetchjob import output_schema

from .conftest import MULTI_PROCESS, ROOT

BLOBS = {hashlib.sha1(data).hexdigest(): data for data in (b"pipeline blob %d " % i * (i + 1) for i in range(6))}
KEYS = sorted(BLOBS)
MISSING = hashlib.sha1(b"absent").hexdigest()
FAILING = hashlib.sha1(b"failing").hexdigest()


@pytest.fixture
def job(tmp_path):
    archive = tmp_path / "archive"
    archive.mkdir()
    for key, data in BLOBS.items():
        (archive / key).write_bytes(data)
    spec = tmp_path / "store.toml"
    spec.write_text(
        'keys = "sha1"\n'
        '[[tier]]\ntype = "local"\nprefix = "cache/"\nrole = "cache"\nname = "cache"\n'
        '[[tier]]\ntype = "local"\nprefix = "archive/"\nname = "archive"\ncache_result = true\n'
    )
    keys = [KEYS[0], KEYS[1].upper(), "sha1://" + KEYS[2], *KEYS[3:], MISSING, "not a key", KEYS[0]]
    return tmp_path, spec, keys


def rows(path, inputs=()) -> list[tuple]:
    """(key, blob, status, source, *other input columns) of each row, sorted; the schema is checked: the input's
    columns (``inputs``, the key column ``key`` or, for text, ``sha1``) then fetch's three."""
    table = pq.read_table(path)
    if not inputs:
        assert table.schema.equals(output_schema()), table.schema
        return sorted(tuple(r.values()) for r in table.to_pylist())
    assert table.schema.equals(pa.schema([*inputs, *list(output_schema())[1:]])), table.schema
    names = [f[0] for f in inputs]
    key = "key"
    return sorted((r[key], r["blob"], r["status"], r["source"], *(r[n] for n in names if n != key))
                  for r in table.to_pylist())


CSV_COLUMNS = [("id", pa.string()), ("key", pa.string())]
PARQUET_COLUMNS = [("n", pa.int64()), ("key", pa.string())]


def write_input(folder, fmt: str, keys: list[str]) -> str:
    path = str(folder / f"keys{fmt}")
    if fmt == ".txt":
        with open(path, "w") as f:
            f.write("\ufeff" + "\n".join(f"  {k} " for k in keys) + "\n\n")
    elif fmt == ".csv":
        with open(path, "w") as f:
            f.write("id,key\n" + "".join(f'{i},"{k}"\n' for i, k in enumerate(keys)))
    else:
        pq.write_table(pa.table({"n": list(range(len(keys))), "key": keys}), path)
    return path


def test_pipeline_on_two_worker_processes_matches_bitstore_fetch_and_downloads_nothing(job):
    folder, spec, keys = job
    source = write_input(folder, ".csv", keys)
    home = folder / "home"
    env = {**os.environ, "HOME": str(home), "PYTHONPATH": ROOT,
           "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"}
    beam_args = [a for a in MULTI_PROCESS if not a.startswith("--runner")]  # the default runner is the point
    done = subprocess.run(
        [sys.executable, "-m", "beam_transforms.pipeline", "--input", source, "--column", "key",
         "--output", str(folder / "beam.parquet"), "--spec", str(spec), *beam_args],
        env=env, cwd=str(folder), capture_output=True, text=True, timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert not (home / ".apache_beam").exists()  # where Beam's DirectRunner caches the Prism binary it downloads
    assert "prism" not in done.stderr.lower()
    assert f"found: {len(KEYS) + 1}" in done.stderr and "hits.archive: " in done.stderr
    assert "missing: 1" in done.stderr and "invalid: 1" in done.stderr and "fetch_ms: " in done.stderr

    beam_rows = rows(folder / "beam.parquet", CSV_COLUMNS)
    assert len(beam_rows) == len(keys)
    assert not [n for n in os.listdir(folder) if ".shards-" in n]  # the per-bundle files were joined and removed
    assert cli.main(["--spec", str(spec), "fetch", "--input", source, "--column", "key",
                     "--output", str(folder / "cli.parquet"), "--no-progress"]) == 0
    cli_rows = rows(folder / "cli.parquet", CSV_COLUMNS)
    assert [r[:3] + r[4:] for r in beam_rows] == [r[:3] + r[4:] for r in cli_rows]  # every input column kept
    assert sorted(r[4] for r in beam_rows) == sorted(str(i) for i in range(len(keys)))
    assert {r[3] for r in beam_rows if r[2] == "found"} <= {"archive", "cache"}
    # The pipeline's workers wrote every archive hit back: the CLI run after it is served by the cache.
    assert sorted(os.listdir(folder / "cache")) == KEYS
    assert {r[3] for r in cli_rows if r[2] == "found"} == {"cache"}


@pytest.mark.parametrize("fmt", [".txt", ".parquet"])
def test_pipeline_reads_txt_and_parquet_like_bitstore_fetch(job, fmt, capsys):
    folder, spec, keys = job
    spec.write_text(spec.read_text() + f'[[tier]]\ntype = "api"\nclass = "tests.beam.helpers:FailingAPI"\n'
                                       f'fail_key = "{FAILING}"\n')
    keys = [*keys, FAILING]
    source = write_input(folder, fmt, keys)
    column = ["--column", "key"] if fmt == ".parquet" else []
    assert pipeline.main(["--input", source, *column, "--output", str(folder / "beam.parquet"),
                          "--spec", str(spec)]) == 3
    assert "failed: 1" in capsys.readouterr().err
    assert cli.main(["--spec", str(spec), "fetch", "--input", source, *column,
                     "--output", str(folder / "cli.parquet"), "--no-progress"]) == 3
    inputs = PARQUET_COLUMNS if fmt == ".parquet" else ()
    beam_rows = rows(folder / "beam.parquet", inputs)
    assert [r[:3] + r[4:] for r in beam_rows] == [r[:3] + r[4:] for r in rows(folder / "cli.parquet", inputs)]
    statuses = sorted(r[2] for r in beam_rows)
    assert statuses == sorted(["found"] * (len(KEYS) + 1) + ["missing", "invalid", "failed"])
    assert [r[1] for r in beam_rows if r[0] == KEYS[1]] == [BLOBS[KEYS[1]]]


@pytest.mark.parametrize("args, message", [
    (["--input", "keys.json"], "extension"),
    (["--input", "keys.csv", "--column", "nope"], "no column 'nope'"),
    (["--input", "absent.txt"], "cannot read"),
    (["--input", "keys.csv", "--spec", "absent.toml"], "absent.toml"),
])
def test_pipeline_usage_errors_exit_2(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "keys.json").write_text("[]")
    (tmp_path / "keys.csv").write_text("sha1\n" + "a" * 40 + "\n")
    assert pipeline.main([*args, "--output", str(tmp_path / "out.parquet")]) == 2
    assert message in capsys.readouterr().err


def test_default_runner_is_the_local_python_runner():
    assert pipeline._with_default_runner(["--project=p"]) == ["--runner=FnApiRunner", "--project=p"]
    assert pipeline._with_default_runner(["--runner", "DataflowRunner"]) == ["--runner", "DataflowRunner"]
    assert pipeline._with_default_runner(["--runner=DirectRunner"]) == ["--runner=DirectRunner"]


def test_merge_shards_joins_every_row_in_shard_order_and_removes_the_shards(tmp_path):
    schema = output_schema()
    prefix = str(tmp_path / "part")
    sizes = [3, 0, 5000, 1]  # an empty shard, and one longer than a merge batch
    start = 0
    for i, n in enumerate(sizes):
        keys = [f"{k:040x}" for k in range(start, start + n)]
        start += n
        table = pa.table({"sha1": keys, "blob": [k.encode() for k in keys], "status": ["found"] * n,
                          "source": ["t"] * n}, schema=schema)
        pq.write_table(table, f"{prefix}-{i:05d}-of-{len(sizes):05d}", row_group_size=700)
    pipeline.merge_shards(prefix, str(tmp_path / "out.parquet"), schema)
    out = pq.read_table(tmp_path / "out.parquet")
    assert out.schema.equals(schema)
    assert out.column("sha1").to_pylist() == [f"{k:040x}" for k in range(sum(sizes))]
    assert out.column("blob").to_pylist()[-1] == f"{sum(sizes) - 1:040x}".encode()
    assert sorted(os.listdir(tmp_path)) == ["out.parquet"]
