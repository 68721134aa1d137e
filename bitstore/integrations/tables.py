"""Output tables of the command line, format chosen by the file's extension: ``.parquet`` or ``.csv``.

A CSV file cannot hold bytes, so binary columns (``blob``) are written base64-encoded (standard alphabet,
with padding; empty for a null blob). Any other extension is refused before any work is done. Files are
written under a temporary name in the same folder (``.<name>.<random>.tmp``) and renamed at the end: a failed
job leaves no partial file; temp files of the same output older than an hour (a job killed with ``kill -9``)
are removed first.
"""
from __future__ import annotations

import base64
import contextlib
import os
import tempfile
from typing import Any

from ..ground import tempfiles as _tempfiles

__all__ = ["OUTPUT_FORMATS", "OutputError", "check_output", "TableWriter"]

OUTPUT_FORMATS = (".parquet", ".csv")


class OutputError(ValueError):
    """The output path cannot be written: unknown extension, missing folder, a folder itself."""


def check_output(path: str | os.PathLike) -> str:
    """The output format (``.parquet`` or ``.csv``) of ``path``; ``OutputError`` when it cannot be written."""
    path = os.fspath(path)
    fmt = os.path.splitext(path)[1].lower()
    if os.path.isdir(path):
        raise OutputError(f"cannot write {path}: it is a folder")
    if fmt not in OUTPUT_FORMATS:
        raise OutputError(f"cannot tell the output format from {path!r}: name it .parquet (blobs as bytes) or .csv "
                          "(blobs base64-encoded)")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise OutputError(f"cannot write {path}: no such folder {folder}")
    return fmt


class TableWriter:
    """Writes RecordBatches of one schema to ``path`` in the format of its extension, atomically on ``close``.

    Use as a context manager: on an exception the temporary file is removed and ``path`` left untouched."""

    def __init__(self, path: str | os.PathLike, schema: Any):
        self.path = os.path.abspath(os.fspath(path))
        self.format = check_output(self.path)
        self.schema = schema
        folder, prefix = os.path.dirname(self.path), f".{os.path.basename(self.path)}."
        _tempfiles.sweep(folder, prefix, ".tmp", _tempfiles.STALE_SECONDS)  # left by a job killed while writing
        fd, self._tmp = tempfile.mkstemp(dir=folder, prefix=prefix, suffix=".tmp")
        os.close(fd)
        try:
            if self.format == ".parquet":
                import pyarrow.parquet as pq

                self._writer = pq.ParquetWriter(self._tmp, schema)
            else:
                import pyarrow.csv as pacsv

                self._writer = pacsv.CSVWriter(self._tmp, _csv_schema(schema))
        except BaseException:
            os.unlink(self._tmp)
            raise

    def write(self, batch: Any) -> None:
        self._writer.write_batch(batch if self.format == ".parquet" else _csv_batch(batch))

    def __enter__(self) -> TableWriter:
        return self

    def __exit__(self, kind, exc, tb) -> None:
        self._writer.close()
        if kind is None:
            os.replace(self._tmp, self.path)
        else:
            with contextlib.suppress(OSError):
                os.unlink(self._tmp)


def _is_binary(kind: Any) -> bool:
    import pyarrow as pa

    return pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind)


def _csv_schema(schema: Any) -> Any:
    import pyarrow as pa

    return pa.schema([pa.field(f.name, pa.large_string(), f.nullable) if _is_binary(f.type) else f for f in schema])


def _csv_batch(batch: Any) -> Any:
    import pyarrow as pa

    columns = [
        pa.array([None if v is None else base64.b64encode(v).decode("ascii") for v in column.to_pylist()],
                 pa.large_string()) if _is_binary(column.type) else column
        for column in batch.columns
    ]
    return pa.record_batch(columns, schema=_csv_schema(batch.schema))
