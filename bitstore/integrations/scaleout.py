"""What the Spark and Ray adapters share: the store recipe each worker process builds once, the options and
their checks on the driver, and the enrichment of one task's stream of Arrow batches on a worker.

A ``StoreRecipe`` travels to the workers inside the engine's closure. It holds a validated spec (plain data:
environment references are resolved on the worker, so no secret is shipped) or the user's picklable ``Store``,
and a token (a hash of its pickle) under which each worker process keeps the store it built, so every task
and thread of a process shares one store, its clients and connection pools.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

from ..core.store import DEFAULT_MAX_BYTES_IN_FLIGHT, Store

if TYPE_CHECKING:
    import pyarrow as pa

    from ..spec.load import Spec

__all__ = ["StoreLike", "StoreRecipe", "EnrichOptions", "enrich_stream", "default_key_column", "DEFAULT_BATCH_ROWS"]

StoreLike = Union["Spec", Mapping[str, Any], str, "os.PathLike[str]", Store]

#: Rows per Arrow batch a worker enriches at a time: the blobs of one batch are held in memory together.
DEFAULT_BATCH_ROWS = 1024

_STORES: dict[tuple[int, str], Store] = {}  # (pid, recipe token) -> the store this process built
_LOCK = threading.Lock()


def default_key_column(key_column: str | None, store: StoreLike) -> str:
    """``key_column``, else the store's or spec's: ``sha256`` for SHA-256 keys, else ``sha1``. A spec that does not
    load gives ``sha1`` here (the recipe reports its error)."""
    from ..core.keys import DEFAULT_KEY_COLUMN
    from ..core.keys import key_column as family_column
    from ..spec.load import Spec, load_spec

    if key_column is not None:
        return key_column
    if isinstance(store, Store):
        return family_column(store)
    if isinstance(store, (Spec, Mapping, str, os.PathLike)):
        try:
            return family_column(load_spec(store))
        except Exception:
            return DEFAULT_KEY_COLUMN
    return DEFAULT_KEY_COLUMN


class StoreRecipe:
    """A spec or a picklable ``Store``, checked on the driver, and built once per worker process."""

    def __init__(self, store: StoreLike, dumps: Callable[[Any], bytes] = pickle.dumps):
        from ..spec.load import Spec, load_spec

        if isinstance(store, Store):
            self.kind, self.recipe = "store", store
        elif isinstance(store, (Spec, Mapping, str, os.PathLike)):
            self.kind, self.recipe = "spec", load_spec(store)  # a bad spec fails here, on the driver
        else:
            raise TypeError(f"store must be a spec (dict or TOML path) or a bitstore Store, not {type(store).__name__}")
        try:
            pickled = dumps(self.recipe)
        except Exception as exc:
            raise TypeError(f"the store cannot be sent to the workers: it does not pickle ({type(exc).__name__}: "
                            f"{str(exc)[:200]}); pass a spec instead") from None
        self.token = hashlib.sha256(pickled).hexdigest()

    def store(self) -> Store:
        """This process's store: built (or unpickled) on the first call in the process, then reused."""
        key = (os.getpid(), self.token)
        store = _STORES.get(key)
        if store is None:
            with _LOCK:
                store = _STORES.get(key)
                if store is None:
                    store = self.recipe.build() if self.kind == "spec" else self.recipe
                    _STORES[key] = store
        return store

    def __repr__(self) -> str:
        if self.kind == "store":
            from ..ground.errors import store_label

            return f"StoreRecipe(store={store_label(self.recipe)!r})"
        return "StoreRecipe(spec)"


@dataclass(frozen=True)
class EnrichOptions:
    """The enrichment options, as given to ``enrich_dataframe`` / ``enrich_dataset``."""

    key_column: str = "sha1"
    blob_column: str = "blob"
    status_column: str | None = None
    source_column: str | None = None
    error_column: str | None = None
    max_workers: int = 64
    max_bytes_in_flight: int = DEFAULT_MAX_BYTES_IN_FLIGHT
    batch_size: int = DEFAULT_BATCH_ROWS

    def __post_init__(self) -> None:
        for name in ("max_workers", "max_bytes_in_flight", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, not {value!r}")

    @property
    def new_columns(self) -> list[tuple[str, str]]:
        """``(column, option)`` for each column added, blob first."""
        out = [(self.blob_column, "blob_column")]
        optional = ((self.status_column, "status_column"), (self.source_column, "source_column"),
                    (self.error_column, "error_column"))
        out += [(c, o) for c, o in optional if c is not None]
        return out

    def check_names(self, columns: list[str], case_sensitive: bool = True) -> None:
        """Raise the Arrow adapter's ``MissingColumn``/``ColumnExists``/``ColumnError`` for bad names."""
        from .arrow import ColumnError, ColumnExists, MissingColumn

        def norm(name: str) -> str:
            return name if case_sensitive else name.lower()

        if not isinstance(self.key_column, str) or norm(self.key_column) not in {norm(c) for c in columns}:
            raise MissingColumn(self.key_column, columns)
        taken = {norm(c) for c in columns}
        for name, option in self.new_columns:
            if not isinstance(name, str) or not name:
                raise ColumnError(f"{option} must be a non-empty string, not {name!r}")
            if norm(name) in taken:
                raise ColumnExists(name, option, columns)
            taken.add(norm(name))

    def enrich_kwargs(self) -> dict[str, Any]:
        return {"key_column": self.key_column, "blob_column": self.blob_column, "status_column": self.status_column,
                "source_column": self.source_column, "error_column": self.error_column, "max_workers": self.max_workers,
                "max_bytes_in_flight": self.max_bytes_in_flight, "progress": False}


def rebatched(batches: Iterable[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    """``batches`` cut into batches of at most ``rows`` rows (slices: nothing is copied); empty ones dropped."""
    for batch in batches:
        for offset in range(0, batch.num_rows, rows):
            yield batch.slice(offset, rows)


def enrich_stream(batches: Iterable[pa.RecordBatch], recipe: StoreRecipe,
                  options: EnrichOptions) -> Iterator[pa.RecordBatch]:
    """One task's batches, enriched on this worker by ``bitstore.arrow.enrich_batches`` with this process's
    store: one ``get_many`` streams through all of them, ``options.batch_size`` rows at a time."""
    from .arrow import enrich_batches

    source = rebatched(batches, options.batch_size)
    first = next(source, None)
    if first is None:
        return
    yield from enrich_batches(_chain(first, source), recipe.store(), schema=first.schema,
                              **options.enrich_kwargs())


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest
