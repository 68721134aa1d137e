"""Arrow adapter: tables and streams of record batches gain a blob column (and optional status/source columns).

Every input batch's keys are read lazily, across batches, into one ``store.get_many`` call; its in-order
results are cut back into one set of new columns per batch (enrich_table: per 16 MiB of small blobs, and one
chunk, not copied, per blob of 1 MiB or more). Memory therefore stays bounded by the batch engine's
``max_bytes_in_flight`` plus the output batch being built and the one the consumer holds.
"""
from __future__ import annotations

from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import accumulate, islice
from typing import TYPE_CHECKING, Any, TypeVar

try:
    import pyarrow as pa
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without pyarrow
    raise ImportError("bitstore.arrow needs pyarrow: pip install 'bitstore-tiered[arrow]'") from exc

from ..core.store import DEFAULT_MAX_BYTES_IN_FLIGHT, FetchResult, Store
from ..ground.errors import BitstoreError
from .columns import array_of, validity

if TYPE_CHECKING:
    import pyarrow.dataset

__all__ = [
    "enrich_table",
    "enrich_batches",
    "ColumnError",
    "MissingColumn",
    "ColumnTypeError",
    "ColumnExists",
    "DATASET_BATCH_ROWS",
]

#: Rows per batch when bitstore cuts a dataset or table into batches itself: a batch's blobs are held
#: in memory at once, so this is kept small next to pyarrow's default of 131,072 rows.
DATASET_BATCH_ROWS = 1024
_TABLE_SLICE_ROWS = 65_536
#: enrich_table ends a chunk of its new columns once it holds this many bytes of blobs, so fetched blobs are
#: copied into the table (and freed) while later ones are still being fetched ...
_CHUNK_BYTES = 16 << 20
#: ... and a blob this large is a chunk of its own, which wraps the fetched bytes instead of copying them.
_OWN_CHUNK_BYTES = 1 << 20

Unit = TypeVar("Unit")


class ColumnError(BitstoreError):
    """A column named in the options cannot be used with this input."""

    __str__ = BaseException.__str__  # KeyError's own __str__ would quote the message


class MissingColumn(ColumnError, KeyError):
    """The key column is not in the input."""

    def __init__(self, column: str, available: list[str]):
        shown = ", ".join(repr(c) for c in available) or "none"
        super().__init__(f"key column {column!r} not found; available columns: {shown}")


class ColumnTypeError(ColumnError, TypeError):
    """The key column does not hold strings."""

    def __init__(self, column: str, type_name: str, available: list[str]):
        shown = ", ".join(repr(c) for c in available)
        super().__init__(
            f"key column {column!r} has type {type_name}; expected string, large_string or a dictionary of strings "
            f"(columns: {shown})"
        )


class ColumnExists(ColumnError, ValueError):
    """An output column name collides with an input column or another output column."""

    def __init__(self, column: str, option: str, available: list[str]):
        shown = ", ".join(repr(c) for c in available)
        super().__init__(
            f"{option}={column!r} collides with an existing column; pick another name (columns: {shown})"
        )


@dataclass(frozen=True)
class _Plan:
    """Which column holds the keys and which columns are added; validated against a schema."""

    key_column: str
    blob_column: str
    status_column: str | None
    source_column: str | None
    error_column: str | None = None

    def new_fields(self, schema: pa.Schema) -> list[pa.Field]:
        names = list(schema.names)
        found = schema.get_all_field_indices(self.key_column)
        if not found:
            raise MissingColumn(self.key_column, names)
        if len(found) > 1:
            raise ColumnError(f"key column {self.key_column!r} appears {len(found)} times in the input")
        key_type = schema.field(found[0]).type
        if not _is_key_type(key_type):
            raise ColumnTypeError(self.key_column, str(key_type), names)
        fields = [pa.field(self.blob_column, pa.large_binary())]
        options = ["blob_column"]
        for option, name in (("status_column", self.status_column), ("source_column", self.source_column),
                             ("error_column", self.error_column)):
            if name is not None:
                fields.append(pa.field(name, pa.string()))
                options.append(option)
        taken = set(names)
        for option, field in zip(options, fields):
            if not isinstance(field.name, str) or not field.name:
                raise ColumnError(f"{option} must be a non-empty string, not {field.name!r}")
            if field.name in taken:
                raise ColumnExists(field.name, option, names)
            taken.add(field.name)
        return fields

    def columns(self, results: list[FetchResult]) -> list[pa.Array]:
        """The new columns for one unit's results (built from Python lists, not row by row)."""
        out = [_large_binary([r.data for r in results])]
        if self.status_column is not None:
            out.append(array_of([r.status for r in results], pa.string()))
        if self.source_column is not None:
            out.append(array_of([r.source for r in results], pa.string()))
        if self.error_column is not None:
            out.append(array_of([r.error for r in results], pa.string()))
        return out


def _large_binary(values: list[bytes | memoryview | None]) -> pa.Array:
    """A ``large_binary`` array built with one copy of the blobs (``pa.array`` grows its buffer by doubling,
    copying large blobs several times), or none for a single blob (its buffer is wrapped as it is)."""
    offsets = array("q", accumulate((len(v) if v is not None else 0 for v in values), initial=0))
    present = [v for v in values if v is not None]
    data = present[0] if len(present) == 1 else b"".join(present)
    null_count = len(values) - len(present)
    bitmap = validity(values) if null_count else None
    return pa.Array.from_buffers(pa.large_binary(), len(values),
                                 [bitmap, pa.py_buffer(offsets), pa.py_buffer(data)], null_count=null_count)


def _is_string(t: pa.DataType) -> bool:
    is_view = getattr(pa.types, "is_string_view", None)
    return pa.types.is_string(t) or pa.types.is_large_string(t) or (is_view is not None and is_view(t))


def _is_key_type(t: pa.DataType) -> bool:
    return pa.types.is_null(t) or _is_string(t) or (pa.types.is_dictionary(t) and _is_string(t.value_type))


def _keys(arr: pa.Array) -> list[Any]:
    """The keys of a key column chunk as Python strings (None for nulls)."""
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()  # much faster than to_pylist on the dictionary array
    if pa.types.is_null(arr.type):
        return [None] * len(arr)
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = arr.cast(pa.large_string())
    return arr.to_pylist()


def _fetch_units(
    units: Iterable[Unit],
    keys_of: Callable[[Unit], list[Any]],
    store: Store,
    fetch_options: dict[str, Any],
) -> Iterator[tuple[Unit, Iterator[FetchResult]]]:
    """``(unit, its results)`` per unit, in order, from one ``get_many`` over the keys of every unit.

    A unit's results come as an iterator that must be read to its end before the next unit is taken. The key
    iterator records each unit as ``get_many`` reaches it, so the units waiting for their results are exactly
    those the engine has read ahead (its window), never the whole input. ``get_many`` is called here, so its
    options are checked before the first batch is read.
    """
    waiting: deque[tuple[Unit, int]] = deque()

    def all_keys() -> Iterator[Any]:
        for unit in units:
            keys = keys_of(unit)
            waiting.append((unit, len(keys)))
            yield from keys

    if type(store).get_many is Store.get_many:  # ours: large blobs may come as views, wrapped with no copy
        fetch_options = {**fetch_options, "views": True}
    results = iter(store.get_many(all_keys(), **fetch_options))

    def per_unit() -> Iterator[tuple[Unit, Iterator[FetchResult]]]:
        early: list[FetchResult] = []  # a result pulled only to make the engine read more units
        try:
            while True:
                if not waiting:
                    early.extend(islice(results, 1))
                    if not waiting:
                        return
                unit, n = waiting.popleft()
                taken, early = early[:n], early[n:]
                yield unit, _exactly(n, taken, results)
        finally:
            close = getattr(results, "close", None)  # stops the engine's threads when the reader is dropped
            if close is not None:
                close()

    return per_unit()


def _exactly(n: int, taken: list[FetchResult], results: Iterator[FetchResult]) -> Iterator[FetchResult]:
    """The ``n`` results of one unit: those already ``taken``, then the rest from ``results``."""
    got = len(taken)
    yield from taken
    for result in islice(results, n - got):
        got += 1
        yield result
    if got != n:
        raise RuntimeError(f"the batch engine returned {got} results for {n} keys")


def _pieces(results: Iterator[FetchResult], max_bytes: int, own_min: int) -> Iterator[list[FetchResult]]:
    """``results`` cut into lists that end once they hold ``max_bytes`` of blobs (or at the end); a blob of
    ``own_min`` bytes or more is a list of its own."""
    piece: list[FetchResult] = []
    size = 0
    for result in results:
        n = len(result.data) if result.data is not None else 0
        if n >= own_min:
            if piece:
                yield piece
                piece, size = [], 0
            yield [result]
            continue
        piece.append(result)
        size += n
        if size >= max_bytes:
            yield piece
            piece, size = [], 0
    if piece:
        yield piece


def _fetch_options(max_workers: int, max_bytes_in_flight: int, progress: bool | None,
                   total: int | None) -> dict[str, Any]:
    return {"max_workers": max_workers, "max_bytes_in_flight": max_bytes_in_flight, "progress": progress,
            "total": total}


def _key_column(key_column: str | None, store: Any) -> str:
    """``key_column``, else the store's: ``sha256`` for a SHA-256 store, else ``sha1``."""
    from ..core.keys import key_column as default_key_column

    return default_key_column(store) if key_column is None else key_column


def _check_store(store: Any) -> None:
    if not callable(getattr(store, "get_many", None)):
        raise TypeError(f"store must be a bitstore Store, not {type(store).__name__}")


def enrich_table(
    table: pa.Table,
    store: Store,
    *,
    key_column: str | None = None,
    blob_column: str = "blob",
    status_column: str | None = None,
    source_column: str | None = None,
    error_column: str | None = None,
    max_workers: int = 64,
    max_bytes_in_flight: int = DEFAULT_MAX_BYTES_IN_FLIGHT,
    progress: bool | None = None,
) -> pa.Table:
    """``table`` with a ``large_binary`` blob column appended (null unless the key was found), and the
    optional status (``found | missing | invalid | failed``), source (tier name) and error (why there is no
    blob: missing, invalid or failed) string columns.

    The input columns are kept as they are (same chunks); a null key is ``invalid``. ``key_column`` defaults to
    the store's key family: ``sha256`` for a SHA-256 store, else ``sha1``.
    """
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    if not isinstance(table, pa.Table):
        raise TypeError(f"enrich_table takes a pyarrow.Table, not {type(table).__name__}; "
                        "use enrich_batches for readers, datasets and iterables of batches")
    _check_store(store)
    key_column = _key_column(key_column, store)
    plan = _Plan(key_column, blob_column, status_column, source_column, error_column)
    fields = plan.new_fields(table.schema)
    key_chunks = (
        chunk.slice(offset, _TABLE_SLICE_ROWS)
        for chunk in table.column(key_column).chunks
        for offset in range(0, len(chunk), _TABLE_SLICE_ROWS)
    )
    options = _fetch_options(max_workers, max_bytes_in_flight, progress, table.num_rows)
    chunks: list[list[pa.Array]] = [[] for _ in fields]
    for _, results in _fetch_units(key_chunks, _keys, store, options):
        for piece in _pieces(results, _CHUNK_BYTES, _OWN_CHUNK_BYTES):
            for column, chunk in zip(chunks, plan.columns(piece)):
                column.append(chunk)
            del piece  # its blobs are in the table now; free them before the next piece is gathered
    for field, column in zip(fields, chunks):
        table = table.append_column(field, pa.chunked_array(column, type=field.type))
    return table


def enrich_batches(
    batches: pa.RecordBatchReader | pyarrow.dataset.Dataset | Iterable[pa.RecordBatch],
    store: Store,
    *,
    key_column: str | None = None,
    blob_column: str = "blob",
    status_column: str | None = None,
    source_column: str | None = None,
    error_column: str | None = None,
    max_workers: int = 64,
    max_bytes_in_flight: int = DEFAULT_MAX_BYTES_IN_FLIGHT,
    progress: bool | None = None,
    batch_size: int = DATASET_BATCH_ROWS,
    schema: pa.Schema | None = None,
) -> pa.RecordBatchReader:
    """A reader of the enriched batches: one output batch per input batch, in order, fetched ahead while
    the consumer reads, with the blobs in flight bounded by ``max_bytes_in_flight``.

    ``batches`` is a ``RecordBatchReader``, a ``pyarrow.dataset.Dataset`` or ``Scanner``, a ``Table`` (these
    two are cut into batches of ``batch_size`` rows), or any iterable of ``RecordBatch`` (pass ``schema``
    when it may be empty). Options as for ``enrich_table``. Beyond the budget, memory holds the output batch
    being built and the one the consumer has: keep input batches to a size whose blobs fit comfortably.
    """
    _check_store(store)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, not {batch_size!r}")
    in_schema, source, total = _batch_source(batches, batch_size, schema)
    key_column = _key_column(key_column, store)
    plan = _Plan(key_column, blob_column, status_column, source_column, error_column)
    fields = plan.new_fields(in_schema)
    out_schema = in_schema
    for field in fields:
        out_schema = out_schema.append(field)
    key_index = in_schema.get_field_index(key_column)
    options = _fetch_options(max_workers, max_bytes_in_flight, progress, total)

    def checked() -> Iterator[pa.RecordBatch]:
        for i, batch in enumerate(source):
            if not isinstance(batch, pa.RecordBatch):
                raise TypeError(f"item {i} of batches is a {type(batch).__name__}, not a pyarrow.RecordBatch")
            if not batch.schema.equals(in_schema):
                raise TypeError(f"batch {i} has schema {batch.schema} but the first batch had {in_schema}")
            yield batch

    units = _fetch_units(checked(), lambda b: _keys(b.column(key_index)), store, options)
    enriched = (pa.RecordBatch.from_arrays([*batch.columns, *plan.columns(list(results))], schema=out_schema)
                for batch, results in units)
    return pa.RecordBatchReader.from_batches(out_schema, enriched)


def _batch_source(batches: Any, batch_size: int,
                  schema: pa.Schema | None) -> tuple[pa.Schema, Iterable[Any], int | None]:
    """``(schema, iterable of batches, row count if cheaply known)`` for every accepted input kind."""
    if isinstance(batches, pa.RecordBatchReader):
        return batches.schema, batches, None
    if isinstance(batches, pa.Table):
        return batches.schema, batches.to_batches(max_chunksize=batch_size), batches.num_rows
    if isinstance(batches, pa.RecordBatch):
        return batches.schema, [batches], batches.num_rows
    if isinstance(batches, (str, bytes)) or not isinstance(batches, Iterable):
        dataset = _dataset_module(batches)
        if dataset is not None and isinstance(batches, dataset.Dataset):
            return batches.schema, batches.to_batches(batch_size=batch_size), None
        if dataset is not None and isinstance(batches, dataset.Scanner):
            return batches.projected_schema, batches.to_batches(), None
        raise TypeError(
            f"batches must be a RecordBatchReader, a pyarrow.dataset.Dataset, a Table or an iterable of "
            f"RecordBatch, not {type(batches).__name__}"
        )
    iterator = iter(batches)
    if schema is not None:
        return schema, iterator, None
    first = next(iterator, None)
    if first is None:
        raise ValueError("batches is empty and no schema was given: pass schema= for a possibly empty iterable")
    if not isinstance(first, pa.RecordBatch):
        raise TypeError(f"item 0 of batches is a {type(first).__name__}, not a pyarrow.RecordBatch")
    return first.schema, _prepend(first, iterator), None


def _prepend(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest


def _dataset_module(obj: Any):
    """``pyarrow.dataset`` when ``obj`` comes from it (imported only then: it is a heavy import)."""
    if not type(obj).__module__.startswith("pyarrow"):
        return None
    import pyarrow.dataset

    return pyarrow.dataset
