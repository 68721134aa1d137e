"""``FetchBlobs``: a PCollection of keys (SHA1, or SHA-256 for a SHA-256 store) becomes found / missing / failed /
invalid PCollections."""
from __future__ import annotations

from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.utils.windowed_value import WindowedValue

from bitstore import FetchResult

from ._fetching import (
    DEFAULT_MAX_BATCH_BYTES,
    DEFAULT_MAX_BATCH_SIZE,
    DEFAULT_MAX_WORKERS,
    BatchFetchDoFn,
    canonical_key,
)
from ._store import StoreLike, StoreSource

__all__ = ["FetchBlobs", "FetchBlobsResult"]


class FetchBlobsResult(NamedTuple):
    """The four outputs of ``FetchBlobs``; every input element is in exactly one of them."""

    found: pvalue.PCollection  # (key, bytes)
    missing: pvalue.PCollection  # key
    failed: pvalue.PCollection  # (key, error message)
    invalid: pvalue.PCollection  # (element as given, reason)


class _FetchBlobsDoFn(BatchFetchDoFn):
    def key_of(self, element: Any) -> tuple[str | None, str | None]:
        return canonical_key(element, self._family)

    def on_invalid(self, element: WindowedValue, reason: str) -> Any:
        return pvalue.TaggedOutput("invalid", element.with_value((element.value, reason)))

    def on_result(self, element: WindowedValue, key: str, result: FetchResult) -> Any:
        if result.status == "found":
            return element.with_value((key, result.data))
        if result.status == "missing":
            return pvalue.TaggedOutput("missing", element.with_value(key))
        if result.status == "failed":
            return pvalue.TaggedOutput("failed", element.with_value((key, result.error or "failed")))
        # A key the store itself does not accept (a store keyed some other way).
        return pvalue.TaggedOutput("invalid", element.with_value((element.value, result.error or "invalid")))


class FetchBlobs(beam.PTransform):
    """Fetch the blob of each key in a PCollection from a bitstore store: SHA1 strings, or SHA-256 ones when the
    store is keyed by SHA-256 (a spec with ``keys = "sha256"``, a ``Sha256Composite``); anything else is invalid.

    ``store`` is a spec (a dict, or a TOML path read now), a ``Store`` or a zero-argument callable
    returning one; it is built once per worker process and shared by that process's threads. Each key's
    fetch starts as its element arrives and its output is emitted as soon as it is done, ``max_workers`` at
    once, the fetches of a bundle going on across its elements. A DoFn holds at most ``max_batch_size``
    elements whose output is not yet emitted, and at most ``max_batch_bytes`` fetched and not yet emitted
    (beyond ``max_workers`` keys); metrics are reported every ``max_batch_size`` outputs and at the end of
    each bundle. Applying it returns a ``FetchBlobsResult``.
    """

    def __init__(
        self,
        store: StoreLike,
        *,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
        max_workers: int = DEFAULT_MAX_WORKERS,
        max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
        label: str | None = None,
    ):
        super().__init__(label)
        self._dofn = _FetchBlobsDoFn(StoreSource(store), max_batch_size=max_batch_size, max_workers=max_workers,
                                     max_batch_bytes=max_batch_bytes)

    def expand(self, keys: pvalue.PCollection) -> FetchBlobsResult:
        outputs = keys | "Fetch" >> beam.ParDo(self._dofn).with_outputs("missing", "failed", "invalid", main="found")
        return FetchBlobsResult(outputs.found, outputs.missing, outputs.failed, outputs.invalid)
