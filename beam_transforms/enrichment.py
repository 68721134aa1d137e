"""Add blobs to records: ``EnrichWithBlobs`` (a PTransform) and ``BitstoreEnrichmentHandler`` (for ``Enrichment``).

Both read the key (a SHA1, or a SHA-256 for a store keyed by SHA-256) from a field of each dict or ``beam.Row``
(``key_field``; by default ``sha1``, or ``sha256`` for SHA-256 keys), add the blob (None unless found) and its
status (``found``, ``missing``, ``invalid`` or ``failed``), and never drop or fail an element because
of its key.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import apache_beam as beam
from apache_beam.transforms.enrichment import EnrichmentSourceHandler
from apache_beam.utils.windowed_value import WindowedValue

from bitstore import FetchResult, Store
from bitstore.core.hashed import KeyFamily

from ._fetching import (
    DEFAULT_MAX_BATCH_BYTES,
    DEFAULT_MAX_BATCH_SIZE,
    DEFAULT_MAX_WORKERS,
    BatchFetchDoFn,
    canonical_key,
    family_for,
    field_of,
)
from ._store import StoreLike, StoreSource

__all__ = ["EnrichWithBlobs", "BitstoreEnrichmentHandler"]


class _Fields:
    """Where the key is read from and where the blob, status and (optionally) source are written."""

    def __init__(self, key_field: str, blob_field: str, status_field: str, source_field: str | None):
        names = [key_field, blob_field, status_field] + ([source_field] if source_field else [])
        if not all(isinstance(n, str) and n for n in names):
            raise ValueError("field names must be non-empty strings")
        if len(set(names)) != len(names):
            raise ValueError(f"key, blob, status and source fields must differ, got {names}")
        self.key, self.blob, self.status, self.source = key_field, blob_field, status_field, source_field

    def key_of(self, element: Any, family: KeyFamily) -> tuple[str | None, str | None]:
        value, reason = field_of(element, self.key)
        return (None, reason) if reason else canonical_key(value, family)

    def added(self, status: str, data: bytes | None = None, source: str | None = None) -> dict[str, Any]:
        values = {self.blob: data if status == "found" else None, self.status: status}
        if self.source:
            values[self.source] = source
        return values

    def added_for(self, result: FetchResult) -> dict[str, Any]:
        return self.added(result.status, result.data, result.source)


def _with_fields(element: Any, values: Mapping[str, Any]) -> Any:
    """A copy of a dict or ``beam.Row`` (or named tuple, as a Row) with ``values`` set."""
    if isinstance(element, Mapping):
        return {**element, **values}
    if hasattr(element, "_asdict"):
        return beam.Row(**{**element._asdict(), **values})
    raise TypeError(f"EnrichWithBlobs takes dict or beam.Row elements, not {type(element).__name__}")


class _EnrichDoFn(BatchFetchDoFn):
    def __init__(self, source: StoreSource, fields: _Fields, **batching: int):
        super().__init__(source, **batching)
        self._fields = fields

    def key_of(self, element: Any) -> tuple[str | None, str | None]:
        return self._fields.key_of(element, self._family)

    def on_invalid(self, element: WindowedValue, reason: str) -> WindowedValue:
        return element.with_value(_with_fields(element.value, self._fields.added("invalid")))

    def on_result(self, element: WindowedValue, key: str, result: FetchResult) -> WindowedValue:
        return element.with_value(_with_fields(element.value, self._fields.added_for(result)))


class EnrichWithBlobs(beam.PTransform):
    """Add ``blob_field`` (bytes, None unless found) and ``status_field`` to each dict or ``beam.Row``.

    The key is read from ``key_field`` (default: ``sha256`` for a spec or store keyed by SHA-256, else ``sha1``); an
    element without it, or with a value that is not a key of the store's hash, gets status ``invalid``.
    ``source_field``, when given, receives the name of the tier that served the blob.
    ``store`` and the batching options are as for ``FetchBlobs``.
    """

    def __init__(
        self,
        store: StoreLike,
        *,
        key_field: str | None = None,
        blob_field: str = "blob",
        status_field: str = "blob_status",
        source_field: str | None = None,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
        max_workers: int = DEFAULT_MAX_WORKERS,
        max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
        label: str | None = None,
    ):
        super().__init__(label)
        source = StoreSource(store)
        key_field = source.key_column() if key_field is None else key_field
        fields = _Fields(key_field, blob_field, status_field, source_field)
        self._dofn = _EnrichDoFn(source, fields, max_batch_size=max_batch_size,
                                 max_workers=max_workers, max_batch_bytes=max_batch_bytes)

    def expand(self, elements: beam.PCollection) -> beam.PCollection:
        return elements | "Enrich" >> beam.ParDo(self._dofn)


class BitstoreEnrichmentHandler(EnrichmentSourceHandler):
    """An ``EnrichmentSourceHandler`` that looks blobs up by their key (SHA1, or SHA-256 for a store keyed by
    SHA-256; ``key_field`` defaults to ``sha1`` or ``sha256`` accordingly), for ``apache_beam.transforms.enrichment``.

    Requests are batched by ``Enrichment`` through ``batch_elements_kwargs`` (``min_batch_size``,
    ``max_batch_size``, ``max_batch_duration_secs``) and each batch is fetched concurrently. Every request
    is answered with a row holding ``blob_field`` and ``status_field`` (and ``source_field`` if given);
    nothing raises for a missing, invalid or failed key. ``Enrichment`` gives each call ``timeout``
    seconds (30 by default): raise it for large batches from slow tiers. ``Enrichment`` runs each call
    on a thread of its own, outside Beam's metrics context, so the ``bitstore`` metrics are reported by
    ``FetchBlobs`` and ``EnrichWithBlobs`` only; ``Enrichment`` counts its requests and responses itself.
    """

    def __init__(
        self,
        store: StoreLike,
        *,
        key_field: str | None = None,
        blob_field: str = "blob",
        status_field: str = "blob_status",
        source_field: str | None = None,
        min_batch_size: int = 1,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
        max_batch_duration_secs: float | None = None,
        max_workers: int = DEFAULT_MAX_WORKERS,
        max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
    ):
        if not 1 <= min_batch_size <= max_batch_size:
            raise ValueError(f"need 1 <= min_batch_size <= max_batch_size, got {min_batch_size}, {max_batch_size}")
        if not isinstance(max_workers, int) or max_workers < 1:
            raise ValueError(f"max_workers must be a positive int, not {max_workers!r}")
        if not isinstance(max_batch_bytes, int) or max_batch_bytes < 1:
            raise ValueError(f"max_batch_bytes must be a positive int, not {max_batch_bytes!r}")
        self._source = StoreSource(store)
        self._fields = _Fields(self._source.key_column() if key_field is None else key_field,
                               blob_field, status_field, source_field)
        self._family = self._source.family() or family_for(None)  # the store's, once __enter__ has it
        self._batching = {"min_batch_size": min_batch_size, "max_batch_size": max_batch_size}
        if max_batch_duration_secs is not None:
            self._batching["max_batch_duration_secs"] = max_batch_duration_secs
        self._max_workers = max_workers
        self._max_batch_bytes = max_batch_bytes
        self._store: Store | None = None

    def __enter__(self) -> BitstoreEnrichmentHandler:
        self._store = self._source.acquire()
        self._family = family_for(self._store)
        return self

    def __exit__(self, exc_type, exc_val, exc_tb) -> None:
        self._store = None

    def batch_elements_kwargs(self) -> Mapping[str, Any]:
        return dict(self._batching)

    def get_cache_key(self, request: Any) -> str | list[str]:
        if isinstance(request, list):
            return [self.get_cache_key(r) for r in request]
        key, _ = self._fields.key_of(request, self._family)
        return f"{self._fields.key}: {key}"

    def __call__(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        """``(request, response row)`` for one request, or a list of them for a batch."""
        if self._store is None:
            self.__enter__()
        requests = request if isinstance(request, list) else [request]
        responses: list[beam.Row | None] = [None] * len(requests)
        to_fetch: list[tuple[int, str]] = []
        for i, req in enumerate(requests):
            key, _ = self._fields.key_of(req, self._family)
            if key is None:
                responses[i] = beam.Row(**self._fields.added("invalid"))
            else:
                to_fetch.append((i, key))
        if to_fetch:
            results = self._store.get_many([key for _, key in to_fetch], progress=False,
                                           max_workers=min(self._max_workers, len(to_fetch)),
                                           max_bytes_in_flight=self._max_batch_bytes)
            for (i, _), result in zip(to_fetch, results, strict=True):
                responses[i] = beam.Row(**self._fields.added_for(result))
        pairs = list(zip(requests, responses, strict=True))
        return pairs if isinstance(request, list) else pairs[0]

    def __getstate__(self) -> dict[str, Any]:
        # The worker's store (live clients, resolved credentials) never leaves the worker.
        state = self.__dict__.copy()
        state["_store"] = None
        return state

    def __repr__(self) -> str:
        return f"BitstoreEnrichmentHandler({self._source!r}, key_field={self._fields.key!r})"
