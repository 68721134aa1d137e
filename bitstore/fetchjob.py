"""The fetch job: keys in, a Parquet file of (sha1, blob, status, source) out, streamed.

Keys are pulled lazily through ``store.get_many`` (the batch engine), and rows are written as Parquet
row groups as they come, so memory stays bounded by the engine's window plus one row group, whatever
the number of keys. The output schema lives here so the Beam pipeline writes the same files.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from . import _tempfiles
from .store import DEFAULT_MAX_BYTES_IN_FLIGHT, FetchResult, Store

__all__ = ["output_schema", "output_row", "fetch_to_parquet", "FetchSummary", "DEFAULT_BATCH_ROWS", "STATUSES"]

DEFAULT_BATCH_ROWS = 4096
ROW_GROUP_MAX_BYTES = 64 * 1024 * 1024
STATUSES = ("found", "missing", "invalid", "failed")
_MAX_ERROR_SAMPLES = 5


def output_schema():
    """``sha1`` string, ``blob`` large_binary (null unless found), ``status`` string, ``source`` string."""
    import pyarrow as pa

    return pa.schema([
        pa.field("sha1", pa.string()),
        pa.field("blob", pa.large_binary()),
        pa.field("status", pa.string(), nullable=False),
        pa.field("source", pa.string()),
    ])


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
            cause = result.error[:300]
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
            out.append(f"  {source}: {count:,} blobs, {_size(self.bytes_by_source[source])}")
        if self.cache_writes or self.cache_write_failures:
            out.append(f"  written back to the cache: {self.cache_writes:,} ({self.cache_write_failures:,} failed)")
        for cause, count in self.errors.most_common():
            out.append(f"  failed x{count:,}: {cause}")
        shown = sum(self.errors.values())
        if self.failed > shown:
            out.append(f"  ... and {self.failed - shown:,} more failures")
        return out


def fetch_to_parquet(
    store: Store,
    keys: Iterable[Any],
    output: str | os.PathLike,
    *,
    max_workers: int = 64,
    batch_size: int = DEFAULT_BATCH_ROWS,
    max_bytes_in_flight: int = DEFAULT_MAX_BYTES_IN_FLIGHT,
    progress: bool | None = None,
    total: int | None = None,
) -> FetchSummary:
    """Fetch ``keys`` and write one row per key to the Parquet file ``output``, in input order.

    Row groups hold up to ``batch_size`` rows (fewer once they reach 64 MiB of blobs). The file is
    written under a temporary name (``.<name>.<random>.tmp``) and renamed at the end, so a failed job leaves
    no partial output; temp files of this output older than an hour (a job killed with ``kill -9``) are
    removed first.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, not {batch_size!r}")
    output = os.path.abspath(os.fspath(output))
    schema = output_schema()
    summary = FetchSummary()
    start = time.perf_counter()
    folder, prefix = os.path.dirname(output), f".{os.path.basename(output)}."
    _tempfiles.sweep(folder, prefix, ".tmp", _tempfiles.STALE_SECONDS)  # left by a job killed while writing here
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=prefix, suffix=".tmp")
    os.close(fd)
    try:
        with pq.ParquetWriter(tmp, schema) as writer:
            columns: tuple[list, list, list, list] = ([], [], [], [])
            held = 0

            def flush() -> None:
                writer.write_batch(pa.record_batch([pa.array(c, t) for c, t in zip(columns, schema.types)],
                                                   schema=schema))
                for column in columns:
                    column.clear()

            results = store.get_many(keys, max_workers=max_workers, max_bytes_in_flight=max_bytes_in_flight,
                                     progress=progress, total=total)
            for result in results:
                summary.add(result)
                for column, value in zip(columns, output_row(store, result)):
                    column.append(value)
                held += len(result.data) if result.data is not None else 0
                if len(columns[0]) >= batch_size or held >= ROW_GROUP_MAX_BYTES:
                    flush()
                    held = 0
            if columns[0]:
                flush()
        os.replace(tmp, output)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    summary.seconds = time.perf_counter() - start
    return summary


def _size(n: int) -> str:
    value, unit = float(n), "B"
    for bigger in ("KB", "MB", "GB", "TB"):
        if value < 1000:
            break
        value, unit = value / 1000, bigger
    return f"{n:,} B" if unit == "B" else f"{value:,.1f} {unit}"
