"""Bad input everywhere: only typed errors or per-key statuses, never a crash, a traceback or a hang."""
from __future__ import annotations

import contextlib
import csv
import io
import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bitstore
from bitstore import (
    InvalidURI,
    LocalRaw,
    MemoryRaw,
    S3Raw,
    Sha1Cache,
    Sha1Composite,
    Sha1Store,
    SpecError,
    Store,
    sha1_hex,
)
from bitstore.arrow import ColumnError, ColumnTypeError, MissingColumn, enrich_table
from bitstore.cli import main

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# --- keys ----------------------------------------------------------------------------------------------
ANY_KEY = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.binary(max_size=60), st.text(max_size=60),
    st.text(alphabet="0123456789abcdefABCDEF", min_size=39, max_size=41),
    st.builds(lambda h, p: p + h, st.text(alphabet="0123456789abcdef", min_size=40, max_size=40),
              st.sampled_from(["", "sha1://", "SHA1://", " ", "sha1:/", "s3://", "\n"])),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.tuples(st.text(max_size=3)), st.just(object()), st.just(float("inf")),
)


def _sha1_store() -> tuple[Sha1Composite, dict[str, bytes]]:
    blobs = {sha1_hex(bytes([i])): bytes([i]) for i in range(5)}
    raw = MemoryRaw()
    for k, v in blobs.items():
        raw.put(f"mem://b/{k}", v)
    store = Sha1Composite()
    store.append_cache(Sha1Cache(MemoryRaw(), "mem://c/"))
    store.append_source(Sha1Store(raw, "mem://b/"), cache_result=True)
    return store, blobs


@SETTINGS
@given(st.lists(ANY_KEY, max_size=20))
def test_get_many_answers_every_key_of_any_type(keys):
    store, blobs = _sha1_store()
    results = list(store.get_many(keys, max_workers=4, progress=False))
    assert len(results) == len(keys)
    for key, result in zip(keys, results):
        assert result.key is key
        canonical = store.canonical_key(key) if store.accepts(key) else None
        if canonical is None:
            assert result.status == "invalid" and result.error
        elif canonical in blobs:
            assert result.status == "found" and result.data == blobs[canonical]
        else:
            assert result.status == "missing" and result.error


@SETTINGS
@given(ANY_KEY)
def test_every_store_rejects_junk_with_a_typed_error(key):
    stores: list[Store] = [MemoryRaw(), LocalRaw("/nonexistent-root"), S3Raw.anonymous(), _sha1_store()[0]]
    for store in stores:
        valid = store.accepts(key)
        assert isinstance(valid, bool)
        if not valid:
            with pytest.raises(InvalidURI):
                store.get(key)
            assert store.fetch(key).status == "invalid"


# --- specs ---------------------------------------------------------------------------------------------
SPEC_KEYS = ["keys", "name", "max_workers", "max_bytes_in_flight", "retry", "tier", "type", "prefix", "role", "read",
             "cache_result", "verify", "endpoint_url", "anonymous", "profile", "region", "credentials_env",
             "credentials_file", "transport", "max_blob_bytes", "max_bytes", "attempts", "base_delay", "max_delay",
             "class", "env", "endpoint", "project", "url", "aws_secret_access_key"]
SPEC_VALUES = ["s3", "gcs", "local", "memory", "api", "sha1", "uri", "cache", "source", "s3://b/p/", "gs://b/p/",
               "mem://x/", "/tmp/x", "file:///tmp/y", "sha1://", "auto", "fast", "sdk", "collections:OrderedDict",
               "x:y", "no.such.module:C", "bitstore.backends.memory:MemoryRaw", "s3://", "gs:///", "mem:/"]
SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-3, 10**12), st.floats(allow_nan=True), st.text(max_size=20),
                   st.sampled_from(SPEC_VALUES))
SPEC_KEY = st.one_of(st.sampled_from(SPEC_KEYS), st.text(max_size=8))
VALUE = st.recursive(SCALAR, lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(SPEC_KEY, c, max_size=4)),
                     max_leaves=12)
TIER = st.builds(lambda kind, rest: {**rest, "type": kind}, st.sampled_from(["s3", "gcs", "local", "memory", "api"]),
                 st.dictionaries(SPEC_KEY, VALUE, max_size=6))
SPEC = st.fixed_dictionaries({}, optional={
    "keys": st.one_of(st.sampled_from(["sha1", "uri"]), VALUE), "tier": st.one_of(st.lists(TIER, max_size=4), VALUE),
    "retry": VALUE, "name": VALUE, "max_workers": VALUE})


@settings(max_examples=400, deadline=None)
@given(SPEC)
def test_from_spec_builds_a_store_or_raises_spec_error(spec):
    try:
        store = bitstore.from_spec(spec)
    except SpecError as exc:
        assert str(exc).startswith("invalid store spec")
        return
    assert isinstance(store, Store)


@SETTINGS
@given(st.binary(max_size=300))
def test_spec_files_of_junk_bytes_raise_spec_error(tmp_path, content):
    path = tmp_path / "spec.toml"
    path.write_bytes(content)
    try:
        bitstore.from_spec(str(path))
    except SpecError as exc:
        assert str(path) in str(exc)


# --- CLI -----------------------------------------------------------------------------------------------
def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def assert_one_clean_error_line(code: int, err: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bitstore: error: "), err


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("BITSTORE_HOME", str(tmp_path / "home"))
    return tmp_path


TEXT_LINES = st.lists(st.one_of(st.text(max_size=50), st.sampled_from(["a" * 40, "sha1://" + "B" * 40, " ", ""])),
                      max_size=20)


@SETTINGS
@given(content=st.one_of(st.binary(max_size=400), TEXT_LINES.map(lambda ls: "\n".join(ls).encode("utf-8", "replace"))),
       ext=st.sampled_from([".txt", ".csv", ".parquet", ".json", ""]),
       column=st.sampled_from(["sha1", "key", "", "nope"]))
def test_cli_fetch_on_any_file_exits_cleanly(home, content, ext, column):
    src = home / f"input{ext}"
    src.write_bytes(content)
    out = home / "out.parquet"
    if out.exists():
        out.unlink()
    code, _, err = run_cli(["fetch", "--input", str(src), "--column", column, "--output", str(out)])
    assert "Traceback" not in err
    if code == 2:
        assert_one_clean_error_line(code, err)
        return
    assert code == 0, err
    table = pq.read_table(out)
    assert table.column_names[-3:] == ["blob", "status", "source"]  # after the input's columns
    assert table.column_names[:-3] == (["sha1"] if ext == ".txt" or not content.strip() else
                                       next(csv.reader(content.decode("utf-8-sig").splitlines())))
    assert set(table.column("status").to_pylist()) <= {"invalid", "missing"}


@SETTINGS
@given(column_type=st.sampled_from([pa.int64(), pa.float32(), pa.bool_(), pa.binary(), pa.list_(pa.string()),
                                    pa.timestamp("s"), pa.null(), pa.struct([("a", pa.string())])]),
       n=st.integers(0, 5))
def test_cli_fetch_parquet_with_a_wrong_column_type(home, column_type, n):
    src = home / "typed.parquet"
    pq.write_table(pa.table({"sha1": pa.nulls(n, type=column_type)}), src)
    out = home / "out.parquet"
    code, _, err = run_cli(["fetch", "--input", str(src), "--output", str(out)])
    assert "Traceback" not in err
    assert code in (0, 2), err
    if code == 2:
        assert_one_clean_error_line(code, err)
    else:
        assert pq.read_table(out).num_rows == n


@pytest.mark.parametrize("name, content, args", [
    ("junk.txt", os.urandom(2000) + b"\xff\x00", []),
    ("junk.parquet", b"PAR1" + os.urandom(500), []),
    ("junk.csv", b"sha1\n" + b"\x00" * 50, []),
    ("wrong.csv", b"a,b\n1,2\n", []),
    ("keys.csv", b"sha1\n" + b"a" * 40 + b"\n", ["--column", "missing"]),
    ("keys.unknown", b"x\n", []),
])
def test_cli_fetch_bad_inputs_as_a_subprocess(home, name, content, args):
    src = home / name
    src.write_bytes(content)
    done = subprocess.run([sys.executable, "-m", "bitstore.cli", "fetch", "--input", str(src), *args,
                           "--output", str(home / "out.parquet")],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert done.stdout == ""
    assert_one_clean_error_line(done.returncode, done.stderr)
    assert name in done.stderr


def test_cli_bad_spec_and_bad_key_are_one_line(home):
    spec = home / "spec.toml"
    spec.write_bytes(b"[[tier]]\ntype = 's3'\nprefix = 's3://b/'\naws_secret_access_key = 'x'\n")
    assert_one_clean_error_line(*run_cli(["--spec", str(spec), "get", "a" * 40])[::2])
    spec.write_bytes(os.urandom(100))
    assert_one_clean_error_line(*run_cli(["--spec", str(spec), "get", "a" * 40])[::2])
    assert_one_clean_error_line(*run_cli(["get", "not-a-sha1"])[::2])
    assert_one_clean_error_line(*run_cli(["fetch", "--input", str(home / "nope.txt"), "--output",
                                          str(home / "o.parquet")])[::2])


# --- Arrow ---------------------------------------------------------------------------------------------
@SETTINGS
@given(column_type=st.sampled_from([pa.int64(), pa.float64(), pa.bool_(), pa.binary(), pa.large_binary(),
                                    pa.list_(pa.string()), pa.date32(), pa.decimal128(5, 2),
                                    pa.struct([("a", pa.string())]), pa.dictionary(pa.int8(), pa.int64())]),
       n=st.integers(0, 4))
def test_enrich_table_wrong_key_types_are_typed_errors(column_type, n):
    """(A column of the null type is accepted: every key is null, so every row is invalid.)"""
    store, _ = _sha1_store()
    table = pa.table({"sha1": pa.nulls(n, type=column_type)})
    with pytest.raises(ColumnTypeError) as raised:
        enrich_table(table, store)
    assert isinstance(raised.value, TypeError) and "sha1" in str(raised.value)


@SETTINGS
@given(st.lists(st.one_of(st.none(), st.text(max_size=50), st.sampled_from(["a" * 40, "sha1://" + "F" * 40])),
                max_size=30))
def test_enrich_table_any_strings_get_a_status(keys):
    store, blobs = _sha1_store()
    table = enrich_table(pa.table({"sha1": pa.array(keys, type=pa.string())}), store, status_column="status")
    assert table.num_rows == len(keys)
    for key, status, blob in zip(keys, table.column("status").to_pylist(), table.column("blob").to_pylist()):
        if key is None or not store.accepts(key):
            assert status == "invalid" and blob is None
        else:
            assert status in ("found", "missing")
            assert (blob is not None) == (status == "found")


def test_enrich_table_missing_column_and_collisions_are_typed():
    store, _ = _sha1_store()
    with pytest.raises(MissingColumn):
        enrich_table(pa.table({"key": ["a" * 40]}), store)
    with pytest.raises(ColumnError):
        enrich_table(pa.table({"sha1": ["a" * 40], "blob": [1]}), store)


# --- Beam ----------------------------------------------------------------------------------------------
@pytest.mark.timeout(180)
def test_beam_non_string_elements_go_to_invalid():
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.testing.util import assert_that, equal_to

    from beam_transforms import FetchBlobs

    good = sha1_hex(b"\x01")
    junk = [None, b"a" * 40, 42, 3.5, ("a" * 40,), ["b" * 40], {"sha1": good}, "", "g" * 40, "a" * 41,
            "sha1://" + "a" * 39, "\x00" * 40, True, float("nan")]
    elements = junk + [good, good.upper(), "sha1://" + good, "c" * 40]
    spec = {"tier": [{"type": "memory", "prefix": "mem://b/"}]}
    with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as p:
        out = p | beam.Create(elements, reshuffle=False) | FetchBlobs(spec, max_batch_size=3)
        invalid = out.invalid | "InvalidKinds" >> beam.Map(lambda pair: (repr(pair[0]), bool(pair[1])))
        assert_that(invalid, equal_to([(repr(e), True) for e in junk]), label="invalid")
        assert_that(out.missing, equal_to([good, good, good, "c" * 40]), label="missing")
        assert_that(out.found, equal_to([]), label="found")
        assert_that(out.failed, equal_to([]), label="failed")
