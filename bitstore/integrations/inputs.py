"""Keys read lazily from a ``.txt`` (one a line), ``.csv`` (with a header) or ``.parquet`` file.

``open_keys`` checks what can be checked up front (the file opens, the format is known, the column
exists and holds strings) so a bad input fails before any output is made; the keys themselves are read
only while they are iterated, a bounded piece at a time, so memory does not grow with the input's size.
``KeyInput.batches`` reads whole rows (every column) for jobs that keep them; ``count`` counts the rows
of a text or CSV file first, for a progress bar with a total. In one-key-a-line input (a ``.txt`` file or
``-``), the one column is named ``text_column`` (``sha1``; ``sha256`` for SHA-256 keys), and a first line equal
to it or to the ``--column`` name (any case) is a header, skipped.
"""
from __future__ import annotations

import csv
import io
import os
import sys
from collections.abc import Iterator
from typing import Any, BinaryIO

from .columns import array_of

__all__ = ["InputError", "KeyInput", "open_keys", "FORMATS", "TEXT_COLUMN"]

FORMATS = (".txt", ".csv", ".parquet")
#: The name of the one column of one-key-a-line input (``.txt``, ``-``), as in ``bitstore fetch``'s output, unless
#: the keys are named otherwise (``text_column="sha256"`` for SHA-256 keys).
TEXT_COLUMN = "sha1"
MAX_LINE_BYTES = 64 * 1024
PARQUET_BATCH_ROWS = 8192


class InputError(ValueError):
    """The input cannot be read as keys: unknown format, missing column, binary junk, unreadable file."""


class KeyInput:
    """An iterable of the keys in one input; ``total`` is the number of keys when known up front."""

    def __init__(self, path: str, fmt: str, column: str, total: int | None, text_column: str = TEXT_COLUMN):
        self.path, self.format, self.column, self.total = path, fmt, column, total
        self.text_column = text_column

    def __iter__(self) -> Iterator[Any]:
        if self.total == 0:
            return iter(())
        if self.path == "-":
            return _text_keys(sys.stdin.buffer, "<stdin>", self._headers)
        return {".txt": self._txt, ".csv": self._csv, ".parquet": self._parquet}[self.format]()

    @property
    def key_column(self) -> str:
        """The name of the key column in ``batches``: ``--column`` for CSV and Parquet, ``text_column`` for text."""
        return self.text_column if self.format == ".txt" else self.column

    @property
    def _headers(self) -> tuple[str, ...]:
        """A first line equal to one of these (any case) is a header line in one-key-a-line input."""
        return (self.text_column, self.column)

    def count(self) -> int | None:
        """The number of keys, counted by reading the file once when it is not known (None for stdin)."""
        if self.total is None and self.path != "-":
            self.total = sum(1 for _ in (self._csv_rows(counting=True) if self.format == ".csv" else self))
        return self.total

    def batches(self, rows: int) -> Iterator[Any]:
        """The input's rows as pyarrow RecordBatches of at most ``rows`` rows, every column kept: a text input
        has one string column named after the key column; a CSV's columns are strings (a short row's missing
        cells null); a Parquet file's columns keep their types."""
        import pyarrow as pa

        if self.format == ".parquet" and self.path != "-":
            pq = _pyarrow_parquet()
            try:
                file = pq.ParquetFile(self.path)
                if file.metadata.num_rows == 0:  # no batches to read: one empty batch carries the columns
                    yield pa.RecordBatch.from_pylist([], schema=file.schema_arrow)
                    return
                yield from file.iter_batches(batch_size=rows)
            except (OSError, ValueError) as exc:
                raise InputError(f"{self.path}: cannot read the Parquet file: {_reason(exc)}") from None
            return
        if self.format == ".csv" and self.path != "-":
            names, rows_iter = None, self._csv_rows()
            chunk: list[list] = []
            for row in rows_iter:
                if names is None:
                    names = row
                    continue
                chunk.append(row)
                if len(chunk) >= rows:
                    yield _csv_batch(names, chunk)
                    chunk = []
            if chunk or names is not None:
                yield _csv_batch(names, chunk)
            return
        schema = pa.schema([pa.field(self.text_column, pa.string())])
        chunk = []
        for key in self:
            chunk.append(key)
            if len(chunk) >= rows:
                yield pa.record_batch([array_of(chunk, pa.string())], schema=schema)
                chunk = []
        yield pa.record_batch([array_of(chunk, pa.string())], schema=schema)

    def _txt(self) -> Iterator[str]:
        with _open(self.path) as f:
            yield from _text_keys(f, self.path, self._headers)

    def _csv_rows(self, counting: bool = False) -> Iterator[list | None]:
        """The header, then each non-empty row padded with None to the header's width (with ``counting``, one
        None per non-empty row and no header)."""
        if self.total == 0:
            return
        with _open(self.path) as raw:
            reader = csv.reader(_csv_lines(io.TextIOWrapper(raw, encoding="utf-8-sig", newline=""), self.path))
            try:
                header = next(reader, None)
                if header is None:
                    return
                _csv_column(header, self.column, self.path)
                width = len(header)
                if not counting:
                    yield header
                for row in reader:
                    if row:
                        yield None if counting else row[:width] + [None] * (width - len(row))
            except (csv.Error, UnicodeDecodeError) as exc:
                raise InputError(f"{self.path}: not a readable CSV file near line {reader.line_num}: "
                                 f"{_reason(exc)}") from None

    def _csv(self) -> Iterator[Any]:
        with _open(self.path) as raw:
            reader = csv.reader(_csv_lines(io.TextIOWrapper(raw, encoding="utf-8-sig", newline=""), self.path))
            try:
                header = next(reader, None)
                if header is None:
                    return
                index = _csv_column(header, self.column, self.path)
                for row in reader:
                    if row:
                        yield row[index] if index < len(row) else None
            except (csv.Error, UnicodeDecodeError) as exc:
                raise InputError(f"{self.path}: not a readable CSV file near line {reader.line_num}: "
                                 f"{_reason(exc)}") from None

    def _parquet(self) -> Iterator[Any]:
        pq = _pyarrow_parquet()
        try:
            file = pq.ParquetFile(self.path)
            for batch in file.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=[self.column]):
                yield from batch.column(0).to_pylist()
        except (OSError, ValueError) as exc:
            raise InputError(f"{self.path}: cannot read the Parquet file: {_reason(exc)}") from None


def open_keys(path: str | os.PathLike, column: str | None = None, *, text_column: str = TEXT_COLUMN) -> KeyInput:
    """The keys of ``path`` (``-`` reads one key a line from standard input); raises ``InputError``. ``column``:
    the key column of a CSV or Parquet file (default: ``text_column``, the name of the one column of text input,
    ``sha1``, or ``sha256`` for SHA-256 keys)."""
    path = os.fspath(path)
    column = text_column if column is None else column
    return _open_keys(path, column, text_column)


def _open_keys(path: str, column: str, text_column: str) -> KeyInput:
    if path == "-":
        return KeyInput(path, ".txt", column, None, text_column)
    fmt = os.path.splitext(path)[1].lower()
    if fmt not in FORMATS:
        raise InputError(f"{path}: cannot tell the input format from the extension {fmt or '(none)'!r}; "
                         f"use one of {', '.join(FORMATS)}")
    try:
        size = os.stat(path).st_size
        if os.path.isdir(path):
            raise IsADirectoryError(21, "Is a directory")
    except OSError as exc:
        raise InputError(f"{path}: cannot read the input: {exc.strerror or type(exc).__name__}") from None
    if size == 0:
        if fmt == ".parquet":  # even a Parquet file with no rows has a schema and a footer: this one is broken
            raise InputError(f"{path}: is empty (0 bytes), so not a Parquet file (a file with no rows still has "
                             "a footer); was it fully written?")
        return KeyInput(path, fmt, column, 0, text_column)
    if fmt == ".csv":
        with _open(path) as raw:
            try:
                header = next(csv.reader(_csv_lines(io.TextIOWrapper(raw, encoding="utf-8-sig", newline=""), path)),
                              None)
            except (csv.Error, UnicodeDecodeError) as exc:
                raise InputError(f"{path}: not a readable CSV header: {_reason(exc)}") from None
        if header is not None:
            _csv_column(header, column, path)
        return KeyInput(path, fmt, column, None, text_column)
    if fmt == ".parquet":
        pq = _pyarrow_parquet()
        try:
            file = pq.ParquetFile(path)
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: not a readable Parquet file: {_reason(exc)}") from None
        names = file.schema_arrow.names
        if column not in names:
            raise InputError(f"{path}: no column {column!r}; columns are: {_listing(names)}")
        kind = file.schema_arrow.field(column).type
        if not _is_string_type(kind):
            raise InputError(f"{path}: the key column {column!r} holds {kind}, not strings; keys are strings "
                             "(choose another column with --column, or cast this one to string)")
        return KeyInput(path, fmt, column, file.metadata.num_rows, text_column)
    return KeyInput(path, fmt, column, None, text_column)


def _text_keys(f: BinaryIO, label: str, headers: tuple[str, ...] = ()) -> Iterator[str]:
    """One key a line: surrounding whitespace stripped, blank lines skipped, NUL bytes and non-UTF-8 refused; a
    first key equal to one of ``headers`` (any case) is a header line, skipped."""
    number, first = 0, True
    while True:
        line = f.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        number += 1
        if len(line) > MAX_LINE_BYTES:
            raise InputError(f"{label}: line {number} is longer than {MAX_LINE_BYTES:,} bytes; not a list of keys")
        if b"\x00" in line:
            raise InputError(f"{label}: line {number} holds binary data (NUL bytes); not a list of keys")
        try:
            key = line.decode("utf-8")
        except UnicodeDecodeError:
            raise InputError(f"{label}: line {number} is not UTF-8 text; not a list of keys") from None
        if number == 1:
            key = key.lstrip("\ufeff")
        key = key.strip()
        if key:
            if first and key.casefold() in {h.casefold() for h in headers}:
                first = False
                continue
            first = False
            yield key


def _csv_lines(text: io.TextIOWrapper, label: str) -> Iterator[str]:
    """The lines of a CSV file, refusing binary junk (NUL bytes) and runaway lines."""
    number = 0
    while True:
        line = text.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        number += 1
        if len(line) > MAX_LINE_BYTES:
            raise InputError(f"{label}: line {number} is longer than {MAX_LINE_BYTES:,} characters; not a CSV of keys")
        if "\x00" in line:
            raise InputError(f"{label}: line {number} holds binary data (NUL bytes); not a CSV of keys")
        yield line


def _csv_column(header: list[str], column: str, path: str) -> int:
    try:
        return header.index(column)
    except ValueError:
        raise InputError(f"{path}: no column {column!r} in the CSV header; columns are: {_listing(header)}") from None


def _csv_batch(names: list[str], rows: list[list]) -> Any:
    import pyarrow as pa

    columns = [array_of([row[i] for row in rows], pa.string()) for i in range(len(names))]
    return pa.record_batch(columns, schema=pa.schema([pa.field(n, pa.string()) for n in names]))


def _is_string_type(kind: Any) -> bool:
    import pyarrow as pa

    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or getattr(pa.types, "is_string_view",
                                                                                  lambda _: False)(kind)


def _open(path: str) -> BinaryIO:
    try:
        return open(path, "rb")
    except OSError as exc:
        raise InputError(f"{path}: cannot read the input: {exc.strerror or type(exc).__name__}") from None


def _pyarrow_parquet():
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError("reading or writing Parquet needs pyarrow: pip install 'bitstore-tiered[arrow]'") from None
    return pq


def _listing(names: list[str]) -> str:
    shown = ", ".join(repr(n[:40]) for n in names[:20])
    return shown + (f", ... ({len(names)} in all)" if len(names) > 20 else "") if names else "(none)"


def _reason(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:300]
