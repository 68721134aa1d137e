"""The driver side of ``bitstore fetch --engine spark|ray`` (``fetchjob.fetch_with_job``) with an in-process engine:
the same file as the local job, the input streamed a window at a time (never read far ahead of what was written),
partitions cut smaller for large blobs, and no engine started for an input without keys."""
from __future__ import annotations

import contextlib
import hashlib

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bitstore.integrations import fetchjob
from bitstore.integrations.fetchjob import fetch_to_file, fetch_with_job
from bitstore.integrations.inputs import open_keys
from bitstore.spec import load_spec


def _sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


class _Engine:
    """Runs each window with ``enrich_table`` in this process; records how far the driver had read the input
    when each window was handed over, and every partition's size."""

    def __init__(self, spec, counter: dict, parallelism: int):
        self.store, self.counter, self.parallelism = spec.build(), counter, parallelism
        self.partitions: list[int] = []
        self.lead: list[int] = []  # input rows read but not yet returned, at each window

    def run(self, partitions: list[pa.Table]) -> pa.Table:
        from bitstore.arrow import enrich_table

        self.partitions += [p.num_rows for p in partitions]
        self.lead.append(self.counter["read"] - self.counter["returned"])
        out = enrich_table(pa.concat_tables(partitions), self.store, status_column="status", source_column="source",
                           error_column="error", progress=False)
        self.counter["returned"] += out.num_rows
        return out


class _Counted:
    """A ``KeyInput`` whose batches count the rows read."""

    def __init__(self, source, counter: dict):
        self.source, self.counter = source, counter

    def __getattr__(self, name):
        return getattr(self.source, name)

    def batches(self, rows: int):
        for batch in self.source.batches(rows):
            self.counter["read"] += batch.num_rows
            yield batch


def _job(counter: dict, engines: list, parallelism: int = 2):
    @contextlib.contextmanager
    def open_job(spec, **options):
        engines.append(_Engine(spec, counter, parallelism))
        yield engines[-1]

    return open_job


def _store(tmp_path, n: int, size: int) -> tuple[object, list[str]]:
    root = tmp_path / "blobs"
    root.mkdir()
    keys = []
    for i in range(n):
        data = (b"%d:" % i) * (size // 4 + 1)
        keys.append(_sha1(data))
        if i % 7:
            (root / keys[-1]).write_bytes(data)
    spec = load_spec({"keys": "sha1", "tier": [{"type": "local", "prefix": f"{root}/", "name": "disk"}]})
    return spec, keys


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 300), batch=st.integers(1, 64), parallelism=st.integers(1, 3),
       extra=st.lists(st.sampled_from(["not a sha1", "", "SHA1://" + "A" * 40]), max_size=3))
def test_same_file_as_the_local_job_and_the_input_streamed(tmp_path_factory, n, batch, parallelism, extra):
    tmp_path = tmp_path_factory.mktemp("job")
    spec, keys = _store(tmp_path, n, 64)
    (tmp_path / "keys.txt").write_text("\n".join(keys[:n // 2] + extra + keys[n // 2:]) + "\n")
    fetch_to_file(spec.build(), open_keys(tmp_path / "keys.txt"), tmp_path / "local.parquet", batch_size=batch)
    counter, engines = {"read": 0, "returned": 0}, []
    summary = fetch_with_job(_job(counter, engines, parallelism), spec,
                             _Counted(open_keys(tmp_path / "keys.txt"), counter), tmp_path / "engine.parquet",
                             batch_size=batch)
    local, engine = pq.read_table(tmp_path / "local.parquet"), pq.read_table(tmp_path / "engine.parquet")
    assert engine.equals(local)
    assert summary.rows == engine.num_rows and summary.by_status["found"] == engine["status"].to_pylist().count(
        "found")
    window = parallelism * batch
    # Read ahead of what came back: at most the windows in flight, the one being written, and one input batch.
    assert max(engines[0].lead) <= (fetchjob.ENGINE_WINDOWS_AHEAD + 1) * window + batch
    assert max(engines[0].partitions) <= batch


def test_large_blobs_make_smaller_partitions(tmp_path, monkeypatch):
    monkeypatch.setattr(fetchjob, "ENGINE_WINDOW_BYTES", 64 * 1024)
    spec, keys = _store(tmp_path, 1200, 4096)
    (tmp_path / "keys.txt").write_text("\n".join(keys) + "\n")
    counter, engines = {"read": 0, "returned": 0}, []
    fetch_with_job(_job(counter, engines), spec, _Counted(open_keys(tmp_path / "keys.txt"), counter),
                   tmp_path / "out.parquet", batch_size=64)
    sizes = engines[0].partitions
    # The first windows go before any came back; then 64 KiB a window of 2 partitions at ~4 KiB a row (16: the floor).
    assert sizes[:3] == [64, 64, 64] and max(sizes[-10:]) == 16 and sum(sizes) == 1200
    assert pq.read_table(tmp_path / "out.parquet").num_rows == 1200


def test_no_keys_open_no_engine(tmp_path):
    (tmp_path / "keys.txt").write_text("\n\n")
    spec, _ = _store(tmp_path, 1, 8)
    engines: list = []
    summary = fetch_with_job(_job({"read": 0, "returned": 0}, engines), spec, open_keys(tmp_path / "keys.txt"),
                             tmp_path / "out.parquet")
    assert engines == [] and summary.rows == 0 and pq.read_table(tmp_path / "out.parquet").num_rows == 0


def test_an_engine_failure_leaves_no_output(tmp_path):
    spec, keys = _store(tmp_path, 50, 8)
    (tmp_path / "keys.txt").write_text("\n".join(keys) + "\n")

    @contextlib.contextmanager
    def broken(spec, **options):
        class Job:
            parallelism = 2

            def run(self, partitions):
                raise RuntimeError("executor lost")

        yield Job()

    with pytest.raises(RuntimeError, match="executor lost"):
        fetch_with_job(broken, spec, open_keys(tmp_path / "keys.txt"), tmp_path / "out.parquet", batch_size=8)
    assert not (tmp_path / "out.parquet").exists()


_ROW = st.one_of(
    st.tuples(st.just("found"), st.sampled_from(["cache", "archive"]), st.binary(max_size=30), st.none()),
    st.tuples(st.just("missing"), st.none(), st.none(), st.none()),
    st.tuples(st.just("failed"), st.none(), st.none(), st.sampled_from(["boom", "timed out", "boom"])),
)


@settings(deadline=None, max_examples=60)
@given(st.lists(_ROW, max_size=40), st.sampled_from([pa.string(), pa.large_string()]))
def test_summary_of_columns_counts_what_summary_of_results_counts(rows, text):
    from bitstore.ground.results import FetchResult

    keys = [hashlib.sha1(b"%d" % i).hexdigest() for i in range(len(rows))]
    by_results = fetchjob.FetchSummary()
    for key, (status, source, data, error) in zip(keys, rows):
        by_results.add(FetchResult(key, data, status, source=source, error=error))
    by_columns = fetchjob.FetchSummary()
    columns = [pa.chunked_array([pa.array([r[i] for r in rows], kind)]) for i, kind in
               ((0, text), (1, text), (2, pa.large_binary()), (3, text))]
    by_columns.add_columns(pa.chunked_array([pa.array(keys, text)]), columns[2], columns[0], columns[1], columns[3])
    assert by_columns.rows == by_results.rows == len(rows)
    assert by_columns.by_status == by_results.by_status
    assert by_columns.by_source == by_results.by_source
    assert by_columns.bytes_by_source == by_results.bytes_by_source
    assert by_columns.errors == by_results.errors


def test_process_allocator_is_the_c_librarys_unless_the_user_chose(monkeypatch):
    import subprocess
    import sys

    code = ("import os, pyarrow as pa\n"
            "from bitstore.integrations.fetchjob import process_allocator\n"
            "process_allocator()\n"
            "print(pa.default_memory_pool().backend_name, os.environ['ARROW_DEFAULT_MEMORY_POOL'])\n")
    monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL", raising=False)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["system", "system"]
    monkeypatch.setenv("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["jemalloc", "jemalloc"]
