"""``S3Raw``: ``s3://bucket/key`` on AWS S3 or any S3-compatible endpoint (MinIO, R2, moto), through boto3.

One client per process, built on first use and shared by threads; its connection pool is sized for
``get_many``. botocore's own retries are off (one attempt per call): ``RetryPolicy`` retries the whole GET,
body included, and errors are mapped once, in ``_errors``. With obstore installed (``bitstore[fast]``) the
GET data path goes through it, with the same credentials, retries and error mapping.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from .._logging import log_once
from ..errors import StoreNotAvailable
from ..retry import RetryPolicy
from ..store import Store
from ._client import TRANSPORTS, ProcessLocal, require, resolve_transport
from ._errors import check_size, obstore_error, read_exactly, s3_error

__all__ = ["S3Raw", "ANONYMOUS"]

logger = logging.getLogger(__name__)

ANONYMOUS = "anonymous"
_URI = re.compile(r"s3://([^/]+)/(.+)", re.DOTALL)
#: get_many's default concurrency is 64 threads; room for more without "connection pool is full" warnings.
DEFAULT_POOL = 128


class _Conn(NamedTuple):
    """This process's client and the boto3 session it came from (None when anonymous)."""

    client: Any
    session: Any


class S3Raw(Store):
    """Objects in S3 buckets.

    ``credentials``: None (boto3's default chain: environment, profiles, instance roles...), a dict of
    ``boto3.Session`` keyword arguments, a list of those tried in order (the first that resolves and passes
    ``_test_access`` is used), or ``"anonymous"`` (unsigned requests, for public buckets).
    ``retry``: a ``RetryPolicy`` (or its fields as a dict, or a total attempt count).
    ``max_blob_bytes``: refuse larger objects (``BlobTooLarge``) before reading them.
    ``transport``: ``"auto"`` (obstore when installed), ``"fast"`` (obstore) or ``"sdk"`` (boto3 only).
    """

    URI_HINT = "s3://bucket/key"
    KIND = "s3"

    def __init__(self, credentials: None | str | Mapping[str, Any] | Sequence[Mapping[str, Any] | str | None] = None,
                 *, endpoint_url: str | None = None, retry: RetryPolicy | dict | int | None = None,
                 max_blob_bytes: int | None = None, max_pool_connections: int = DEFAULT_POOL,
                 timeout: tuple[float, float] = (10.0, 60.0), name: str | None = None, transport: str = "auto"):
        super().__init__(name=name)
        if transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {', '.join(TRANSPORTS)}, not {transport!r}")
        self.credentials = _credential_options(credentials)
        self.endpoint_url = endpoint_url
        self.retry = RetryPolicy.coerce(retry)
        self.max_blob_bytes = max_blob_bytes
        self.max_pool_connections = max_pool_connections
        self.timeout = tuple(timeout)
        self.transport = transport
        self._init_process_state()

    @classmethod
    def anonymous(cls, **kwargs: Any) -> S3Raw:
        """A store for public buckets: unsigned requests, no credentials looked up."""
        return cls(ANONYMOUS, **kwargs)

    def _default_name(self) -> str:
        return "s3"

    # --- uris ------------------------------------------------------------------------------------
    def is_valid(self, uri: Any) -> bool:
        return isinstance(uri, str) and _URI.fullmatch(uri) is not None

    def _split(self, uri: Any) -> tuple[str, str]:
        self._check_valid(uri)
        bucket, key = _URI.fullmatch(uri).groups()
        return bucket, key

    # --- io --------------------------------------------------------------------------------------
    def get(self, uri: Any) -> bytes:
        bucket, key = self._split(uri)
        fast = self._fast.get()
        if fast is not None:
            return self.retry.run(lambda: fast.get(bucket, key, self, uri),
                                  lambda exc: obstore_error(exc, self, uri), self, uri)
        return self.retry.run(lambda: self._get_once(bucket, key, uri),
                              lambda exc: s3_error(exc, self, uri), self, uri)

    def _get_once(self, bucket: str, key: str, uri: str) -> bytes:
        response = self._conn.get().client.get_object(Bucket=bucket, Key=key)
        body = response["Body"]
        length = response.get("ContentLength")
        try:
            check_size(self, uri, length, self.max_blob_bytes)
            data = body.read()
        finally:
            body.close()
        return read_exactly(data, length)

    def put(self, uri: Any, data: bytes) -> None:
        bucket, key = self._split(uri)
        body = bytes(data)
        self.retry.run(lambda: self._conn.get().client.put_object(Bucket=bucket, Key=key, Body=body),
                       lambda exc: s3_error(exc, self, uri, writing=True), self, uri)

    # --- clients -----------------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        """This process's boto3 S3 client (built on first use)."""
        return self._conn.get().client

    def _init_process_state(self) -> None:
        self._conn: ProcessLocal[_Conn] = ProcessLocal(self._connect)
        self._fast: ProcessLocal[Any] = ProcessLocal(self._make_fast)

    def _config(self, **extra: Any) -> Any:
        from botocore.config import Config

        return Config(retries={"total_max_attempts": 1, "mode": "standard"},
                      max_pool_connections=self.max_pool_connections,
                      connect_timeout=self.timeout[0], read_timeout=self.timeout[1], **extra)

    def _connect(self) -> _Conn:
        boto3 = require("boto3", "aws")
        tried = []
        for option in self.credentials:
            if option == ANONYMOUS:
                from botocore import UNSIGNED

                client = boto3.Session().client(
                    "s3", endpoint_url=self.endpoint_url, config=self._config(signature_version=UNSIGNED))
                return _Conn(client, None)
            try:
                session = boto3.Session(**(option or {}))
                if session.get_credentials() is None:
                    tried.append("no credentials found")
                    continue
                client = session.client("s3", endpoint_url=self.endpoint_url, config=self._config())
            except Exception as exc:  # a bad profile, a malformed config file...
                tried.append(type(exc).__name__)
                continue
            if self._test_access(client):
                return _Conn(client, session)
            tried.append("access test failed")
        reasons = ", ".join(f"option {i + 1}: {why}" for i, why in enumerate(tried))
        raise StoreNotAvailable(self, f"no usable credentials ({reasons})")

    def _test_access(self, client: Any) -> bool:
        """Whether ``client``'s credentials are accepted. Override for a better check; the default lists
        buckets and fails only when the credentials are missing or rejected (a network error is left for the
        data path to report and retry)."""
        try:
            client.list_buckets()
        except Exception as exc:
            mapped = s3_error(exc, self, "s3://")
            return not isinstance(mapped, StoreNotAvailable)
        return True

    def _make_fast(self) -> Any:
        if resolve_transport(self.transport) == "sdk":
            return None
        from . import _fast

        if not _fast.usable():
            log_once(logger, logging.INFO, "fast-transport", "forked",
                     "obstore cannot run in a process forked after it ran in its parent: using the SDK here")
            return None

        conn = self._conn.get()
        return _fast.S3Fast(conn.session, region=conn.client.meta.region_name, endpoint_url=self.endpoint_url,
                      max_blob_bytes=self.max_blob_bytes, timeout=self.timeout)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        del state["_conn"], state["_fast"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._init_process_state()


def _credential_options(credentials: Any) -> list:
    """The credentials forms as a list of options: None, session-kwargs dicts, or ``"anonymous"``."""
    options = list(credentials) if isinstance(credentials, (list, tuple)) else [credentials]
    if not options:
        raise ValueError("credentials: an empty list leaves nothing to try")
    for option in options:
        if option is not None and option != ANONYMOUS and not isinstance(option, Mapping):
            raise TypeError("credentials must be None, 'anonymous', a dict of boto3.Session arguments, or a list "
                            f"of those; got {type(option).__name__}")
    return [dict(o) if isinstance(o, Mapping) else o for o in options]

