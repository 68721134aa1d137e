"""The fetch job: rows with keys in, the same rows plus (blob, status, source) out, streamed.

Keys are pulled lazily through ``store.get_many`` (the batch engine), and rows are written (Parquet row
groups, or CSV) as they come, so memory stays bounded by the engine's window plus one batch, whatever
the number of keys. ``write_rows`` is the same streaming for the other table jobs (``bitstore stat``).
``output_schema`` is the output of one-key-a-line input, shared with the Beam pipeline.
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..core.store import DEFAULT_MAX_BYTES_IN_FLIGHT, FetchResult, Store
from .columns import array_of
from .inputs import TEXT_COLUMN, InputError, KeyInput

if TYPE_CHECKING:
    from ..spec.load import Spec

__all__ = ["output_schema", "output_schema_for", "output_row", "fetch_to_file", "fetch_on_engine", "write_rows",
           "process_allocator",
           "FetchSummary", "DEFAULT_BATCH_ROWS", "STATUSES", "ENGINES", "failure_cause", "plural", "human_size"]

DEFAULT_BATCH_ROWS = 4096
ROW_GROUP_MAX_BYTES = 64 * 1024 * 1024
STATUSES = ("found", "missing", "invalid", "failed")
#: Where ``bitstore fetch --engine`` runs the job: this process's threads, or Beam, Spark or Ray workers.
ENGINES = ("local", "beam", "spark", "ray")
#: Keys per Spark partition / Ray block when the job runs on an engine (at most; fewer for large blobs): the unit
#: a worker fetches in one go.
ENGINE_PARTITION_ROWS = 4096
#: The engine gets the input a window at a time (one partition per worker that can run at once), and this many
#: windows are being fetched while the driver writes the one before: workers never wait for the driver.
ENGINE_WINDOWS_AHEAD = 2
#: Partitions are cut so that a window's results come to about this many bytes, going by the rows so far.
ENGINE_WINDOW_BYTES = 32 * 1024 * 1024
_MAX_ERROR_SAMPLES = 5


def output_schema(key_column: str = "sha1"):
    """``key_column`` string (``sha1``; ``sha256`` for SHA-256 keys), ``blob`` large_binary (null unless found),
    ``status`` string, ``source`` string."""
    import pyarrow as pa

    return pa.schema([
        pa.field(key_column, pa.string()),
        pa.field("blob", pa.large_binary()),
        pa.field("status", pa.string(), nullable=False),
        pa.field("source", pa.string()),
    ])


def output_schema_for(input_schema: Any, key_column: str, source: str = "the input", added: list | None = None):
    """The output for an input of ``input_schema``: its columns (the key column as a string column), then the
    ``added`` fields (default: fetch's ``blob``, ``status``, ``source``). An input that already has one of the
    added columns is refused (``InputError``)."""
    added = list(output_schema())[1:] if added is None else added
    clash = [f.name for f in added if f.name in input_schema.names]
    if clash:
        raise InputError(f"{source}: the input already has a column named {clash[0]!r}, which the output adds; "
                         "rename it")
    schema = _with_key_column(input_schema, key_column)
    for extra in added:
        schema = schema.append(extra)
    return schema


def _with_key_column(schema: Any, key_column: str) -> Any:
    """``schema`` with its key column as ``string`` (``large_string`` kept)."""
    import pyarrow as pa

    index = schema.get_field_index(key_column)
    kind = schema.field(index).type
    kind = kind if pa.types.is_string(kind) or pa.types.is_large_string(kind) else pa.string()
    return schema.set(index, pa.field(key_column, kind))


def output_row(store: Store, result: FetchResult) -> tuple[str | None, bytes | None, str, str | None]:
    """One output row: the key in canonical form when valid (as given otherwise), the blob if found."""
    key = result.key
    if result.status != "invalid":
        with contextlib.suppress(Exception):
            key = store.canonical_key(key)
    if key is not None and not isinstance(key, str):
        key = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
    return key, result.data if result.status == "found" else None, result.status, result.source


@dataclass
class FetchSummary:
    """What a fetch job did: counts per status and per serving tier, bytes, cache write-backs."""

    rows: int = 0
    seconds: float = 0.0
    by_status: Counter = field(default_factory=Counter)
    by_source: Counter = field(default_factory=Counter)
    bytes_by_source: Counter = field(default_factory=Counter)
    cache_writes: int = 0
    cache_write_failures: int = 0
    errors: Counter = field(default_factory=Counter)
    tier_stats: list[str] = field(default_factory=list)  # the composite's per-tier statistics, as text

    def add_columns(self, keys: Any, blobs: Any, statuses: Any, sources: Any, errors: Any) -> None:
        """``add`` for a batch of results as Arrow columns (an engine's output): counted by Arrow, and only the
        failed rows one by one. No Python scalar and no ``group_by`` here: either imports pandas."""
        import pyarrow.compute as pc

        self.rows += len(statuses)
        for item in pc.value_counts(statuses).to_pylist():
            self.by_status[item["values"]] += item["counts"]
        found = pc.is_in(statuses, value_set=array_of(["found"], statuses.type))
        found_sources, sizes = sources.filter(found), pc.binary_length(blobs).filter(found)
        for item in pc.value_counts(found_sources).to_pylist():
            source = item["values"]
            if source is None:
                continue
            self.by_source[source] += item["counts"]
            here = pc.is_in(found_sources, value_set=array_of([source], sources.type))
            self.bytes_by_source[source] += pc.sum(sizes.filter(here)).as_py() or 0
        failed = pc.is_in(statuses, value_set=array_of(["failed"], statuses.type))
        for key, error in zip(keys.filter(failed).to_pylist(), errors.filter(failed).to_pylist()):
            if error:
                cause = failure_cause(error, key)
                if cause in self.errors or len(self.errors) < _MAX_ERROR_SAMPLES:
                    self.errors[cause] += 1

    def add(self, result: FetchResult) -> None:
        self.rows += 1
        self.by_status[result.status] += 1
        if result.status == "found":
            self.by_source[result.source] += 1
            self.bytes_by_source[result.source] += len(result.data)
        if result.cached is True:
            self.cache_writes += 1
        elif result.cached is False:
            self.cache_write_failures += 1
        if result.status == "failed" and result.error:
            cause = failure_cause(result.error, result.key)
            if cause in self.errors or len(self.errors) < _MAX_ERROR_SAMPLES:
                self.errors[cause] += 1

    @property
    def failed(self) -> int:
        return self.by_status["failed"]

    def lines(self) -> list[str]:
        """A human summary, one tier per line."""
        rate = f" ({self.rows / self.seconds:,.0f} keys/s)" if self.seconds > 0 and self.rows else ""
        out = [f"{self.rows:,} keys in {self.seconds:.1f}s{rate}: "
               + ", ".join(f"{s} {self.by_status[s]:,}" for s in STATUSES)]
        for source, count in self.by_source.most_common():
            out.append(f"  {source}: {plural(count, 'blob')}, {human_size(self.bytes_by_source[source])}")
        if self.cache_writes or self.cache_write_failures:
            out.append(f"  written back to the cache: {self.cache_writes:,} ({self.cache_write_failures:,} failed)")
        for cause, count in self.errors.most_common():
            out.append(f"  failed: {plural(count, 'key')}: {cause}")
        shown = sum(self.errors.values())
        if self.failed > shown:
            out.append(f"  ... and {plural(self.failed - shown, 'more failure')} (other causes)")
        if self.tier_stats:
            out.append("calls per tier:")
            out.extend(f"  {line}" for line in self.tier_stats)
        return out


def plural(n: int, noun: str) -> str:
    """``1 blob``, ``2 blobs``, ``1,000 blobs``."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


#: A key of any family (40 hex digits: SHA1; 64: SHA-256) inside a message.
_KEY_RUN = re.compile(r"(?i)(?<![0-9a-f])(?:[0-9a-f]{64}|[0-9a-f]{40})(?![0-9a-f])")
_ELAPSED = re.compile(r" in [0-9.]+ ?(?:ns|µs|us|ms|s)\b")
_DEBUG_DUMP = re.compile(r"\s*(?:Debug source:|\.\.\.\(\+\d+ chars\)).*", re.S)
_OS_ERROR = re.compile(r"\[Errno -?\d+\] ([^'\")\]]+)")
_MAX_CAUSE = 300


def failure_cause(error: str, key: Any = None, *, mask_keys: bool = True) -> str:
    """One line for an error: multi-line debug dumps (an SDK's ``Debug source: ...``) and timings dropped,
    whitespace collapsed, cut to 300 characters but keeping the operating system's reason (``Connection
    refused``) when the message has one. With ``mask_keys`` the key (and any SHA1 or SHA-256) becomes ``<key>``, so the
    same failure of many keys reads the same (the summary groups by it)."""
    text = _DEBUG_DUMP.sub("", str(error))
    if mask_keys:
        if isinstance(key, str) and key.strip():
            text = text.replace(key.strip(), "<key>")
        text = _KEY_RUN.sub("<key>", text)
    text = " ".join(_ELAPSED.sub("", text).split())
    reason = _OS_ERROR.search(text)
    if len(text) > _MAX_CAUSE:
        text = text[:_MAX_CAUSE - 60].rstrip() + "..."
        if reason is not None and reason.group(1) not in text:
            text += f" ({reason.group(1).strip()})"
    return text


def process_allocator() -> None:
    """Make the C library's allocator pyarrow's default in this process and the processes it starts, unless
    ``ARROW_DEFAULT_MEMORY_POOL`` already chooses one. For processes that are one fetch job (``bitstore fetch``,
    the Beam pipeline): pyarrow's own default (mimalloc) keeps arenas per thread, which measured about 25 MiB
    more peak RSS in a driver moving many small batches."""
    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        return
    os.environ["ARROW_DEFAULT_MEMORY_POOL"] = "system"  # read when pyarrow is imported: here, and in the children
    if "pyarrow" in sys.modules:
        import pyarrow as pa

        pa.set_memory_pool(pa.system_memory_pool())


def fetch_to_file(
    store: Store | Callable[[], Store],
    source: KeyInput,
    output: str | os.PathLike,
    *,
    max_workers: int = 64,
    batch_size: int = DEFAULT_BATCH_ROWS,
    max_bytes_in_flight: int = DEFAULT_MAX_BYTES_IN_FLIGHT,
    progress: bool | None = None,
    total: int | None = None,
) -> FetchSummary:
    """Fetch the keys of ``source`` and write one row per input row to ``output`` (``.parquet`` or ``.csv``),
    in input order: every input column (the key column canonical for valid keys, as given otherwise), then
    ``blob``, ``status``, ``source``. Written under a temporary name and renamed at the end. ``store`` may be a
    function that builds it: it is then called once the input's first rows were read, so an input that is not
    a list of keys at all fails before any store is built (and any cache folder made)."""
    summary = FetchSummary()
    added = list(output_schema())[1:]  # blob, status, source

    built: list[Store] = []  # the store, once run has made it (for its per-tier statistics)

    def run(keys: Iterable[Any]) -> Iterator[tuple]:
        built.append(store if isinstance(store, Store) else store())
        for result in built[0].get_many(keys, max_workers=max_workers, max_bytes_in_flight=max_bytes_in_flight,
                                        progress=progress, total=total):
            summary.add(result)
            yield output_row(built[0], result)

    start = time.perf_counter()
    write_rows(source, output, added, run, batch_size=batch_size,
               size=lambda row: len(row[1]) if row[1] is not None else 0)
    summary.seconds = time.perf_counter() - start
    if built and callable(getattr(built[0], "stats", None)):
        summary.tier_stats = built[0].stats().lines()
    return summary


def fetch_on_engine(
    engine: str,
    spec: Spec,
    source: KeyInput,
    output: str | os.PathLike,
    *,
    max_workers: int = 64,
    batch_size: int = DEFAULT_BATCH_ROWS,
    max_bytes_in_flight: int = DEFAULT_MAX_BYTES_IN_FLIGHT,
    **job_options: Any,
) -> FetchSummary:
    """``fetch_to_file`` run on Spark or Ray: the input is streamed to the engine in partitions of at most
    ``batch_size`` (and 4,096) keys, a window at a time, its workers fetch them (``bitstore.spark.enrich_dataframe``
    / ``bitstore.ray.enrich_dataset`` with ``spec``), and the rows come back in input order to be written here as
    they come, into the same file with the same rows. The driver holds a few windows of input and results, never
    the whole input: memory does not grow with the number of keys.

    Uses the running Spark session or Ray cluster, else starts a local one for the job (and stops it after);
    an input with no keys starts none. ``job_options`` go to the engine's ``fetch_job`` (``spark_conf``: the
    local Spark session's configuration over ``bitstore.spark.FETCH_JOB_CONF``).
    """
    if engine == "spark":
        from .spark import fetch_job
    elif engine == "ray":
        from .ray import fetch_job
    else:
        raise ValueError(f"engine must be 'spark' or 'ray' here, not {engine!r}")
    return fetch_with_job(fetch_job, spec, source, output, max_workers=max_workers, batch_size=batch_size,
                          max_bytes_in_flight=max_bytes_in_flight, **job_options)


def fetch_with_job(
    open_job: Callable[..., Any],
    spec: Spec,
    source: KeyInput,
    output: str | os.PathLike,
    *,
    max_workers: int = 64,
    batch_size: int = DEFAULT_BATCH_ROWS,
    max_bytes_in_flight: int = DEFAULT_MAX_BYTES_IN_FLIGHT,
    **job_options: Any,
) -> FetchSummary:
    """``fetch_on_engine`` with the engine given as ``open_job(spec, key_column=, max_workers=,
    max_bytes_in_flight=, **job_options)``, a context manager yielding a job: ``job.parallelism`` (partitions it
    runs at once) and ``job.run(partitions)`` (one-column tables of keys in, named ``key_column``; one table of
    that column, ``blob``, ``status``, ``source``, ``error`` out, in order). It is opened only when the input has
    a key."""
    import pyarrow as pa

    from ..core.composite import Composite
    from ..core.keys import family_named, key_column
    from .tables import TableWriter

    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, not {batch_size!r}")
    summary = FetchSummary()
    family = family_named(spec.keys)
    canonical = (Composite() if family is None else family.composite()).canonical_key  # no tier, no secret
    key_name = key_column(spec)  # the key column the engine reads: sha1, or sha256 for SHA-256 keys
    start = time.perf_counter()
    batches = source.batches(batch_size)
    first = next(batches, None)
    # an empty file: no header, one key column
    column = source.key_column if first is not None else getattr(source, "text_column", TEXT_COLUMN)
    in_schema = first.schema if first is not None else pa.schema([pa.field(column, pa.string())])
    key_index = in_schema.get_field_index(column)
    schema = output_schema_for(in_schema, column, source.path)
    key_type = schema.field(key_index).type
    parts = _Partitions(_chain(first, batches), key_index, key_name, min(batch_size, ENGINE_PARTITION_ROWS))

    def write(writer: TableWriter, pieces: list, results: Any) -> None:
        offset = 0
        for piece in pieces:
            done = results.slice(offset, piece.num_rows)
            offset += piece.num_rows
            keys, blobs, statuses, sources, errors = (done.column(n) for n in (key_name, "blob", "status", "source",
                                                                               "error"))
            summary.add_columns(keys, blobs, statuses, sources, errors)
            out_keys = [k if s == "invalid" or k is None else _canonical(canonical, k)
                        for k, s in zip(keys.to_pylist(), statuses.to_pylist())]
            columns = list(piece.columns)
            columns[key_index] = array_of(out_keys, key_type)
            columns += [blobs.cast(pa.large_binary()), statuses.cast(pa.string()), sources.cast(pa.string())]
            writer.write(pa.record_batch([_one_chunk(c) for c in columns], schema=schema))
        parts.observe(results.num_rows, _blob_bytes(results.column("blob")))

    with TableWriter(output, schema) as writer:
        window = parts.window(1)
        if window:  # no keys: no session or cluster is started
            with open_job(spec, key_column=key_name, max_workers=max_workers,
                          max_bytes_in_flight=max_bytes_in_flight, **job_options) as job:
                _run_windows(job, parts, window, writer, write)
    summary.seconds = time.perf_counter() - start
    return summary


def _run_windows(job: Any, parts: _Partitions, window: list, writer: Any, write: Callable) -> None:
    """Feed ``job`` window after window, ``ENGINE_WINDOWS_AHEAD`` of them in flight, and write each (in order)
    as soon as it is done, while the next ones are fetched."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=ENGINE_WINDOWS_AHEAD, thread_name_prefix="bitstore-engine") as pool:
        running: deque = deque()
        try:
            while window or running:
                while window and len(running) < ENGINE_WINDOWS_AHEAD:
                    running.append((window, pool.submit(job.run, [parts.keys_of(piece) for piece in window])))
                    window = parts.window(job.parallelism)
                pieces, future = running.popleft()
                write(writer, pieces, future.result())
        finally:
            for _, future in running:
                future.cancel()


class _Partitions:
    """The input's batches cut into partitions of at most ``rows`` rows (slices, not copies), handed out a window
    at a time; ``observe`` shrinks the partitions when the blobs are large, so a window's results stay near
    ``ENGINE_WINDOW_BYTES``."""

    def __init__(self, batches: Iterator[Any], key_index: int, key_name: str, rows: int):
        self.batches, self.key_index, self.key_name, self.max_rows, self.rows = batches, key_index, key_name, rows, rows
        self.batch, self.offset, self.parallelism = None, 0, 1

    def window(self, partitions: int) -> list:
        """Up to ``partitions`` partitions of the input not yet handed out (empty at the end)."""
        self.parallelism = partitions
        out = []
        while len(out) < partitions:
            while self.batch is None or self.offset >= self.batch.num_rows:
                self.batch, self.offset = next(self.batches, None), 0
                if self.batch is None:
                    return out
            out.append(self.batch.slice(self.offset, self.rows))
            self.offset += out[-1].num_rows
        return out

    def observe(self, rows: int, nbytes: int) -> None:
        """A window came back with ``rows`` rows and ``nbytes`` bytes of blobs: size the next partitions."""
        if rows:
            per_row = nbytes / rows + 100  # the key, status and source, roughly
            self.rows = max(16, min(self.max_rows, int(ENGINE_WINDOW_BYTES / self.parallelism / per_row)))

    def keys_of(self, piece: Any) -> Any:
        """A partition's keys, as the one string column the engine reads (``sha1``; ``sha256``)."""
        import pyarrow as pa

        keys = piece.column(self.key_index)
        if pa.types.is_dictionary(keys.type):
            keys = keys.dictionary_decode()
        return pa.table({self.key_name: keys.cast(pa.string())})


def _canonical(canonical: Callable[[Any], Any], key: Any) -> Any:
    with contextlib.suppress(Exception):
        key = canonical(key)
    return key


def _one_chunk(column: Any) -> Any:
    return column.combine_chunks() if hasattr(column, "combine_chunks") else column


def _blob_bytes(blobs: Any) -> int:
    import pyarrow.compute as pc

    return pc.sum(pc.binary_length(blobs)).as_py() or 0


def write_rows(source: KeyInput, output: str | os.PathLike, added: list, run: Callable[[Iterable[Any]],
               Iterable[tuple]], *, batch_size: int = DEFAULT_BATCH_ROWS,
               size: Callable[[tuple], int] = lambda row: 0) -> None:
    """Stream ``source``'s rows through ``run`` (keys in, one tuple per key out, in order: the new key value,
    then one value per ``added`` field) into a table at ``output``: the input's columns, the key column
    replaced by the new key values, then the ``added`` columns. Memory: the rows whose keys ``run`` has read
    and not yet answered, plus one output batch (cut at ``batch_size`` rows or 64 MiB by ``size``)."""
    import pyarrow as pa

    from .tables import TableWriter

    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, not {batch_size!r}")
    batches = source.batches(batch_size)
    first = next(batches, None)
    # an empty file: no header, one key column
    column = source.key_column if first is not None else getattr(source, "text_column", TEXT_COLUMN)
    schema = first.schema if first is not None else pa.schema([pa.field(column, pa.string())])
    key_index = schema.get_field_index(column)
    schema = output_schema_for(schema, column, source.path, added)
    key_type = schema.field(key_index).type
    pending: deque = deque()  # input batches whose keys were handed to ``run``, not yet written

    def keys() -> Iterator[Any]:
        for batch in _chain(first, batches):
            pending.append(batch)
            yield from batch.column(key_index).to_pylist()

    with TableWriter(output, schema) as writer:
        out: list[tuple] = []
        offset = held = 0

        def flush() -> None:
            nonlocal offset, held
            front = pending[0]
            piece = front.slice(offset, len(out))
            columns = list(piece.columns)
            columns[key_index] = array_of([row[0] for row in out], key_type)
            columns += [array_of([row[i + 1] for row in out], field.type) for i, field in enumerate(added)]
            writer.write(pa.record_batch(columns, schema=schema))
            offset += len(out)
            out.clear()
            held = 0
            if offset == front.num_rows:
                pending.popleft()
                offset = 0

        for row in run(keys()):
            while pending and pending[0].num_rows == offset:  # empty input batches
                pending.popleft()
            out.append(row)
            held += size(row)
            if offset + len(out) == pending[0].num_rows or held >= ROW_GROUP_MAX_BYTES:
                flush()


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    if first is not None:
        yield first
        yield from rest


def human_size(n: int) -> str:
    """``391 B``, ``76.8 KB``, ``268.4 MB`` (powers of 1000)."""
    value, unit = float(n), "B"
    for bigger in ("KB", "MB", "GB", "TB"):
        if value < 1000:
            break
        value, unit = value / 1000, bigger
    return f"{n:,} B" if unit == "B" else f"{value:,.1f} {unit}"
