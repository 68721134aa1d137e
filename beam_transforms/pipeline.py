"""``python -m beam_transforms.pipeline``: the ``bitstore fetch`` job as an Apache Beam pipeline.

Reads rows from a ``.txt`` (one key a line), ``.csv`` (with a header) or ``.parquet`` input, fetches
their keys with ``EnrichWithBlobs`` and writes a Parquet file with the same columns as ``bitstore fetch``
(every input column, the key column canonical for valid keys, then ``blob``, ``status``, ``source``),
then prints the ``bitstore`` metrics. Rows are not in input order. Every other option is a Beam pipeline
option; with no ``--runner`` the local Python runner (``FnApiRunner``) is used, which never tries to
download the Prism runner.

Exit codes, as ``bitstore fetch``: 0 done, 2 bad input or usage, 3 some key failed.
"""
from __future__ import annotations

import argparse
import csv
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

from bitstore.integrations.inputs import FORMATS, TEXT_COLUMN
from bitstore.spec import load_spec_or_default

__all__ = ["main", "build", "merge_shards", "DEFAULT_RUNNER"]

DEFAULT_RUNNER = "FnApiRunner"
EXIT_OK, EXIT_USAGE, EXIT_FAILED = 0, 2, 3
_WRITE_BATCH_ROWS = 256
#: Rows a Parquet writer buffers before writing a row group, in bytes (Beam's default is 64 MiB).
_ROW_GROUP_BYTES = 8 * 1024 * 1024
#: Rows read from the shards and written to the output at a time when they are joined.
_MERGE_BATCH_ROWS = 4096


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m beam_transforms.pipeline",
        description="Fetch the blobs of the keys in a file into a Parquet file, as a Beam pipeline. "
                    "Other options are passed to Beam (e.g. --runner=DataflowRunner --project ...).",
    )
    parser.add_argument("--input", required=True, metavar="PATH", help="keys: .txt, .csv or .parquet")
    parser.add_argument("--output", required=True, metavar="PATH.parquet")
    parser.add_argument("--spec", metavar="PATH",
                        help="store spec (TOML); default: the local store under $BITSTORE_HOME (~/.bitstore)")
    parser.add_argument("--column", default=None, help="the key column of a .csv or .parquet input (default: sha1; "
                                                        "sha256 under a keys = \"sha256\" spec)")
    parser.add_argument("--max_workers", "--max-workers", type=int, default=None, metavar="N",
                        help="concurrent fetches per worker thread (default: the spec's max_workers, else 64)")
    parser.add_argument("--max_batch_size", "--max-batch-size", type=int, default=None, metavar="N",
                        help="the most keys a worker thread holds whose output is not yet emitted (default: 1024)")
    return parser


def _with_default_runner(beam_args: list[str]) -> list[str]:
    """Beam's own default runner tries to download Prism first; ours is the local Python runner."""
    if any(a == "--runner" or a.startswith("--runner=") for a in beam_args):
        return beam_args
    return [f"--runner={DEFAULT_RUNNER}", *beam_args]


def _format(path: str) -> str:
    fmt = os.path.splitext(path)[1].lower()
    if fmt not in FORMATS:
        raise ValueError(f"{path}: cannot tell the input format from the extension {fmt or '(none)'!r}; "
                         f"use one of {', '.join(FORMATS)}")
    return fmt


def _is_local(path: str) -> bool:
    return "://" not in path


# --- reading rows ------------------------------------------------------------------------------------
def _text_key(line: str) -> str:
    return line.lstrip("\ufeff").strip()


def _csv_header(path: str) -> list[str]:
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.open(path) as raw:
        first = raw.readline().decode("utf-8-sig")
    return next(csv.reader([first]), [])


def _csv_record(line: str, header: list[str]) -> list[dict[str, Any]]:
    row = next(csv.reader([line]), [])
    if not row:
        return []
    return [{name: row[i] if i < len(row) else None for i, name in enumerate(header)}]


def _parquet_schema(path: str):
    import pyarrow.parquet as pq
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.open(path) as f:
        return pq.read_schema(f)


def read_rows(pipeline, path: str, column: str, text_column: str = TEXT_COLUMN):
    """``(rows, schema)``: the rows of ``path`` as a PCollection of dicts (every column; for one-key-a-line text
    one column ``text_column`` (``sha1``; ``sha256`` for SHA-256 keys), lines equal to it or to ``column``
    skipped as headers) and their Arrow schema (CSV columns are strings; Parquet columns keep their types)."""
    import apache_beam as beam
    import pyarrow as pa

    fmt = _format(path)
    if fmt == ".txt":
        headers = {text_column.casefold(), column.casefold()}
        rows = (pipeline | "ReadText" >> beam.io.ReadFromText(path)
                | "Strip" >> beam.Map(_text_key)
                | "SkipBlankAndHeader" >> beam.Filter(lambda key: bool(key) and key.casefold() not in headers)
                | "AsRow" >> beam.Map(lambda key: {text_column: key}))
        return rows, pa.schema([pa.field(text_column, pa.string())])
    if fmt == ".csv":
        header = _csv_header(path)
        schema = pa.schema([pa.field(name, pa.string()) for name in header] or [pa.field(column, pa.string())])
        if not header:
            return pipeline | "NoRows" >> beam.Create([]), schema
        if column not in header:
            raise ValueError(f"{path}: no column {column!r} in the CSV header; columns are: {header[:20]}")
        return (pipeline | "ReadCsv" >> beam.io.ReadFromText(path, skip_header_lines=1)
                | "Row" >> beam.FlatMap(_csv_record, header)), schema
    return pipeline | "ReadParquet" >> beam.io.ReadFromParquet(path), _parquet_schema(path)


def read_keys(pipeline, path: str, column: str, text_column: str = TEXT_COLUMN):
    """The keys of ``path`` as a PCollection (local or remote paths Beam's file systems know)."""
    import apache_beam as beam

    rows, _ = read_rows(pipeline, path, column, text_column)
    return rows | "Key" >> beam.Map(lambda row, name: row[name], _key_column(path, column, text_column))


def _key_column(path: str, column: str, text_column: str = TEXT_COLUMN) -> str:
    return text_column if _format(path) == ".txt" else column


# --- output rows -------------------------------------------------------------------------------------
def output_row(record: dict[str, Any], column: str = "sha1", family: Any = None) -> dict[str, Any]:
    """``bitstore fetch``'s row: the input row, its key in canonical form when valid (as given otherwise, as
    text), then blob, status and source. ``family``: the keys' ``KeyFamily`` (default SHA1)."""
    from ._fetching import canonical_key, family_for

    key = record[column]
    canonical, _ = canonical_key(key, family or family_for(None))
    if record["status"] != "invalid" and canonical is not None:
        key = canonical
    elif isinstance(key, bytes):
        key = key.decode("utf-8", "replace")
    elif key is not None and not isinstance(key, str):
        key = str(key)
    return {**record, column: key}


def build(pipeline, *, input: str, output: str, store, column: str | None = None, shards: str | None = None,
          **fetch_options: int):
    """Add the fetch job (read rows, fetch, write Parquet) to ``pipeline``; returns the output schema. ``column``
    (and the one column of text input) defaults to the store's keys: ``sha1``, or ``sha256`` for SHA-256 keys.
    The rows go to one file, ``output``, or with ``shards`` (a path prefix) to one file per bundle,
    ``<shards>-NNNNN-of-NNNNN``, which ``merge_shards`` joins: a single output file needs all rows grouped in one
    place first, which the local runner does in memory."""
    import apache_beam as beam

    from bitstore.integrations.fetchjob import output_schema_for

    from ._store import StoreSource
    from .enrichment import EnrichWithBlobs

    source = StoreSource(store)
    text_column = source.key_column() or TEXT_COLUMN
    column = column or text_column
    rows, schema = read_rows(pipeline, input, column, text_column)
    key = _key_column(input, column, text_column)
    schema = output_schema_for(schema, key, input)
    if shards:
        write = beam.io.WriteToParquet(shards, schema=schema, codec="snappy", record_batch_size=_WRITE_BATCH_ROWS,
                                       row_group_buffer_size=_ROW_GROUP_BYTES)
    else:
        write = beam.io.WriteToParquet(output, schema=schema, codec="snappy", num_shards=1, shard_name_template="",
                                       record_batch_size=_WRITE_BATCH_ROWS, row_group_buffer_size=_ROW_GROUP_BYTES)
    (rows
     | "Fetch" >> EnrichWithBlobs(store, key_field=key, blob_field="blob", status_field="status",
                                  source_field="source", **fetch_options)
     | "OutputRow" >> beam.Map(output_row, key, source.family())
     | "Write" >> write)
    return schema


def merge_shards(shards: str, output: str, schema) -> None:
    """The files ``<shards>-*`` (in shard order) joined into the Parquet file ``output``, ``_MERGE_BATCH_ROWS``
    rows at a time (written under a temporary name, renamed at the end); the shard files are removed."""
    import glob

    import pyarrow.parquet as pq

    from bitstore.integrations.tables import TableWriter

    files = sorted(glob.glob(glob.escape(shards) + "-*"))
    with TableWriter(output, schema) as writer:
        for path in files:
            with pq.ParquetFile(path, pre_buffer=False) as shard:  # one column chunk at a time, on this thread
                for batch in shard.iter_batches(batch_size=_MERGE_BATCH_ROWS, use_threads=False):
                    writer.write(batch.cast(schema))
    for path in files:
        os.unlink(path)


# --- metrics -----------------------------------------------------------------------------------------
def metric_lines(result) -> tuple[list[str], int | None]:
    """The ``bitstore`` counters and the ``fetch_ms`` distribution, and the number of failed keys."""
    from apache_beam.metrics.metric import MetricsFilter

    from ._fetching import NAMESPACE

    try:
        metrics = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))
    except Exception:  # a runner that does not report metrics
        return ["(this runner reports no metrics)"], None
    counters: dict[str, int] = {}
    for counter in metrics["counters"]:
        name = counter.key.metric.name
        counters[name] = counters.get(name, 0) + (counter.committed or counter.attempted or 0)
    lines = [f"{name}: {counters[name]:,}" for name in sorted(counters)]
    for dist in metrics["distributions"]:
        value = dist.committed or dist.attempted
        if value is not None and value.count:
            lines.append(f"{dist.key.metric.name}: {value.count:,} values, mean {value.mean:,.1f} ms, "
                         f"min {value.min:,} ms, max {value.max:,} ms")
    return lines, counters.get("failed", 0)


def main(argv: Sequence[str] | None = None) -> int:
    args, beam_args = _parser().parse_known_args(argv)
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from bitstore.ground.errors import SpecError
    from bitstore.integrations.fetchjob import process_allocator

    process_allocator()  # this process is the job: the C library's allocator, unless ARROW_DEFAULT_MEMORY_POOL
    options = PipelineOptions(_with_default_runner(beam_args))
    shard_dir = None
    try:
        spec = load_spec_or_default(args.spec)
        if _is_local(args.input):
            from bitstore.integrations.inputs import InputError, open_keys

            try:
                from bitstore.core.keys import key_column

                # checks format, readability and column up front
                open_keys(args.input, args.column, text_column=key_column(spec))
            except InputError as exc:
                raise ValueError(str(exc)) from None
        if _is_local(args.output):
            folder = os.path.dirname(os.path.abspath(args.output))
            if not os.path.isdir(folder):
                raise ValueError(f"cannot write {args.output}: no such folder {folder}")
        fetch_options = {"max_workers": args.max_workers or spec.max_workers,
                         "max_batch_size": args.max_batch_size, "max_batch_bytes": spec.max_bytes_in_flight}
        pipeline = beam.Pipeline(options=options)
        if _is_local(args.output):  # one file per bundle, joined here: the runner then holds no rows
            shard_dir = tempfile.mkdtemp(prefix=f".{os.path.basename(args.output)}.shards-",
                                         dir=os.path.dirname(os.path.abspath(args.output)))
        shards = os.path.join(shard_dir, "part") if shard_dir else None
        schema = build(pipeline, input=args.input, output=args.output, store=spec, column=args.column, shards=shards,
                       **{k: v for k, v in fetch_options.items() if v is not None})
    except (SpecError, ValueError) as exc:  # InputError is a ValueError
        if shard_dir:
            shutil.rmtree(shard_dir, ignore_errors=True)
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        result = pipeline.run()
        result.wait_until_finish()
        if shards:
            merge_shards(shards, args.output, schema)
    finally:
        if shard_dir:
            shutil.rmtree(shard_dir, ignore_errors=True)
    lines, failed = metric_lines(result)
    print(f"bitstore pipeline -> {args.output}", file=sys.stderr)
    for line in lines:
        print(f"  {line}", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


if __name__ == "__main__":
    # Run under the module's import name, so the pipeline's functions pickle by reference.
    from beam_transforms.pipeline import main as _main

    sys.exit(_main())
