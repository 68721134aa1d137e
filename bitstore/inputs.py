"""Keys read lazily from a ``.txt`` (one a line), ``.csv`` (with a header) or ``.parquet`` file.

``open_keys`` checks what can be checked up front (the file opens, the format is known, the column
exists) so a bad input fails before any output is made; the keys themselves are read only while
they are iterated, a bounded piece at a time, so memory does not grow with the input's size.
"""
from __future__ import annotations

import csv
import io
import os
import sys
from collections.abc import Iterator
from typing import Any, BinaryIO

__all__ = ["InputError", "KeyInput", "open_keys", "FORMATS"]

FORMATS = (".txt", ".csv", ".parquet")
MAX_LINE_BYTES = 64 * 1024
PARQUET_BATCH_ROWS = 8192


class InputError(ValueError):
    """The input cannot be read as keys: unknown format, missing column, binary junk, unreadable file."""


class KeyInput:
    """An iterable of the keys in one input; ``total`` is the number of keys when known up front."""

    def __init__(self, path: str, fmt: str, column: str, total: int | None):
        self.path, self.format, self.column, self.total = path, fmt, column, total

    def __iter__(self) -> Iterator[Any]:
        if self.total == 0:
            return iter(())
        if self.path == "-":
            return _text_keys(sys.stdin.buffer, "<stdin>")
        return {".txt": self._txt, ".csv": self._csv, ".parquet": self._parquet}[self.format]()

    def _txt(self) -> Iterator[str]:
        with _open(self.path) as f:
            yield from _text_keys(f, self.path)

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


def open_keys(path: str | os.PathLike, column: str = "sha1") -> KeyInput:
    """The keys of ``path`` (``-`` reads one key a line from standard input); raises ``InputError``."""
    path = os.fspath(path)
    if path == "-":
        return KeyInput(path, ".txt", column, None)
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
        return KeyInput(path, fmt, column, 0)
    if fmt == ".csv":
        with _open(path) as raw:
            try:
                header = next(csv.reader(_csv_lines(io.TextIOWrapper(raw, encoding="utf-8-sig", newline=""), path)),
                              None)
            except (csv.Error, UnicodeDecodeError) as exc:
                raise InputError(f"{path}: not a readable CSV header: {_reason(exc)}") from None
        if header is not None:
            _csv_column(header, column, path)
        return KeyInput(path, fmt, column, None)
    if fmt == ".parquet":
        pq = _pyarrow_parquet()
        try:
            file = pq.ParquetFile(path)
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: not a readable Parquet file: {_reason(exc)}") from None
        names = file.schema_arrow.names
        if column not in names:
            raise InputError(f"{path}: no column {column!r}; columns are: {_listing(names)}")
        return KeyInput(path, fmt, column, file.metadata.num_rows)
    return KeyInput(path, fmt, column, None)


def _text_keys(f: BinaryIO, label: str) -> Iterator[str]:
    """One key a line: surrounding whitespace stripped, blank lines skipped, NUL bytes and non-UTF-8 refused."""
    number = 0
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
