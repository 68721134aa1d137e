"""``CloudRaw``: what ``S3Raw`` and ``GSRaw`` share, so each backend keeps only its SDK's part.

Shared: ``bucket/key`` URIs, the retried GET through the fast transport (obstore) or the SDK, the retried
PUT, errors mapped once per attempt, and per-process state (``_conn`` from ``_connect``, ``_fast`` from
``_make_fast``) that is rebuilt after ``fork`` and dropped when pickled. A subclass sets ``KIND``,
``URI_HINT``, ``_URI`` and ``_sdk_error``, and implements ``_connect``, ``_build_fast``, ``_get_once`` and
``_put_once``.
"""
from __future__ import annotations

import logging
import re
from abc import abstractmethod
from collections.abc import Callable
from typing import Any, TypeVar

from .._logging import cause_of, log_once
from ..errors import BitstoreError, StoreNotAvailable
from ..retry import RetryPolicy
from ..store import Store
from ._client import TRANSPORTS, ProcessLocal, resolve_transport
from ._errors import obstore_error

__all__ = ["CloudRaw", "ANONYMOUS", "DEFAULT_POOL"]

logger = logging.getLogger(__name__)

ANONYMOUS = "anonymous"
#: get_many's default concurrency is 64 threads; room for more without "connection pool is full" warnings.
DEFAULT_POOL = 128

C = TypeVar("C", bound="CloudRaw")


class CloudRaw(Store):
    """Objects in a cloud bucket, addressed as ``<KIND>://bucket/key``."""

    KIND: str
    #: ``<KIND>://bucket/key``, with the bucket and the key as its two groups.
    _URI: re.Pattern[str]
    #: Maps an SDK exception to ours: ``(exc, store, uri, writing=False) -> BitstoreError``.
    _sdk_error: Callable[..., BitstoreError]

    def __init__(self, *, retry: RetryPolicy | dict | int | None, max_blob_bytes: int | None,
                 max_pool_connections: int, timeout: tuple[float, float], name: str | None, transport: str):
        super().__init__(name=name)
        if transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {', '.join(TRANSPORTS)}, not {transport!r}")
        self.retry = RetryPolicy.coerce(retry)
        self.max_blob_bytes = max_blob_bytes
        self.max_pool_connections = max_pool_connections
        self.timeout = tuple(timeout)
        self.transport = transport
        self._init_process_state()

    @classmethod
    def anonymous(cls: type[C], **kwargs: Any) -> C:
        """A store for public buckets (or an emulator): unsigned requests, no credentials looked up."""
        return cls(ANONYMOUS, **kwargs)

    def _default_name(self) -> str:
        return self.KIND

    # --- uris ------------------------------------------------------------------------------------
    def is_valid(self, uri: Any) -> bool:
        return isinstance(uri, str) and self._URI.fullmatch(uri) is not None

    def _split(self, uri: Any) -> tuple[str, str]:
        self._check_valid(uri)
        bucket, key = self._URI.fullmatch(uri).groups()
        return bucket, key

    # --- io --------------------------------------------------------------------------------------
    def get(self, uri: Any) -> bytes:
        bucket, key = self._split(uri)
        fast = self._fast.get()
        if fast is not None:
            return self.retry.run(lambda: fast.get(bucket, key, self, uri),
                                  lambda exc: obstore_error(exc, self, uri), self, uri)
        return self.retry.run(lambda: self._get_once(bucket, key, uri),
                              lambda exc: self._sdk_error(exc, self, uri), self, uri)

    def put(self, uri: Any, data: bytes) -> None:
        bucket, key = self._split(uri)
        body = bytes(data)
        self.retry.run(lambda: self._put_once(bucket, key, body),
                       lambda exc: self._sdk_error(exc, self, uri, writing=True), self, uri)

    @abstractmethod
    def _get_once(self, bucket: str, key: str, uri: str) -> bytes:
        """One SDK GET attempt, checked against ``max_blob_bytes`` and the announced size."""

    @abstractmethod
    def _put_once(self, bucket: str, key: str, body: bytes) -> None:
        """One SDK PUT attempt."""

    # --- per-process state ---------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        """This process's SDK client (boto3's S3 client, a ``google.cloud.storage.Client``), built on first use."""
        return self._conn.get().client

    def _init_process_state(self) -> None:
        self._conn: ProcessLocal[Any] = ProcessLocal(self._connect)
        self._fast: ProcessLocal[Any] = ProcessLocal(self._make_fast)

    @abstractmethod
    def _connect(self) -> Any:
        """This process's connection: a named tuple with at least ``client``."""

    def _make_fast(self) -> Any:
        if resolve_transport(self.transport) == "sdk":
            return None
        from . import _fast

        if not _fast.usable():
            log_once(logger, logging.INFO, "fast-transport", "forked",
                     "obstore cannot run in a process forked after it ran in its parent: using the SDK here")
            return None
        conn = self._conn.get()
        try:
            return self._build_fast(conn)
        except Exception as exc:
            if self.transport == "fast":
                raise StoreNotAvailable(self, f"the fast transport could not start: {cause_of(exc)}") from None
            log_once(logger, logging.WARNING, "fast-transport", cause_of(exc),
                     f"the fast transport could not start ({cause_of(exc)}): using the SDK")
            return None

    @abstractmethod
    def _build_fast(self, conn: Any) -> Any:
        """The fast transport (a ``_fast`` transport) using ``conn``'s credentials."""

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        del state["_conn"], state["_fast"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._init_process_state()
