"""``GSRaw``: ``gs://bucket/key`` on Google Cloud Storage or an emulator, through google-cloud-storage.

One client per process, built on first use and shared by threads; its HTTP session's pool is sized for
``get_many`` and does no retries of its own. A GET is one media download read by us (so the size limit is
checked from Content-Length before the body is read, and the bytes read are checked against it); the
whole GET is retried by ``RetryPolicy``. With obstore installed (``bitstore[fast]``) the GET data path goes
through it, with the same credentials, retries and error mapping.
"""
from __future__ import annotations

import copy
import json
import logging
import os
import re
from typing import Any, NamedTuple
from urllib.parse import quote

from .._logging import log_once
from ..errors import StoreNotAvailable
from ..retry import RetryPolicy
from ..store import Store
from ._client import TRANSPORTS, ProcessLocal, require, resolve_transport
from ._errors import HTTPStatusError, check_size, clean, gcs_error, obstore_error, read_exactly

__all__ = ["GSRaw", "ANONYMOUS"]

logger = logging.getLogger(__name__)

ANONYMOUS = "anonymous"
_URI = re.compile(r"gs://([^/]+)/(.+)", re.DOTALL)
DEFAULT_POOL = 128
_NO_PROJECT = "<none>"


class _Conn(NamedTuple):
    """This process's client, its authorised HTTP session, API base URL, and credentials."""

    client: Any
    session: Any
    base_url: str
    credentials: Any


class GSRaw(Store):
    """Objects in GCS buckets.

    ``credentials``: None (google-auth's default chain; anonymous when ``endpoint`` or
    ``STORAGE_EMULATOR_HOST`` points at an emulator), a google-auth ``Credentials`` object (its project is
    used, as in the original), a path to a service-account JSON file, or ``"anonymous"``.
    ``endpoint``: an API endpoint such as ``http://127.0.0.1:4443`` (an emulator).
    ``retry``, ``max_blob_bytes``, ``transport``: as for ``S3Raw``.
    """

    URI_HINT = "gs://bucket/key"
    KIND = "gs"

    def __init__(self, credentials: Any = None, *, project: str | None = None, endpoint: str | None = None,
                 retry: RetryPolicy | dict | int | None = None, max_blob_bytes: int | None = None,
                 max_pool_connections: int = DEFAULT_POOL, timeout: tuple[float, float] = (10.0, 60.0),
                 name: str | None = None, transport: str = "auto"):
        super().__init__(name=name)
        if transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {', '.join(TRANSPORTS)}, not {transport!r}")
        if isinstance(credentials, os.PathLike):
            credentials = os.fspath(credentials)
        if not (credentials is None or isinstance(credentials, str) or _is_credentials(credentials)):
            raise TypeError("credentials must be None, 'anonymous', a service-account JSON path or a google-auth "
                            f"Credentials object; got {type(credentials).__name__}")
        self.credentials = credentials
        # A token the user passed is their credential and travels; one this process obtains does not.
        self._drop_token = _is_credentials(credentials) and getattr(credentials, "token", None) is None
        self.project = project or getattr(credentials, "project_id", None)
        self.endpoint = endpoint.rstrip("/") if endpoint else None
        self.retry = RetryPolicy.coerce(retry)
        self.max_blob_bytes = max_blob_bytes
        self.max_pool_connections = max_pool_connections
        self.timeout = tuple(timeout)
        self.transport = transport
        self._init_process_state()

    @classmethod
    def anonymous(cls, **kwargs: Any) -> GSRaw:
        """A store for public buckets (or an emulator): no credentials looked up."""
        return cls(ANONYMOUS, **kwargs)

    def _default_name(self) -> str:
        return "gs"

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
                              lambda exc: gcs_error(exc, self, uri), self, uri)

    def _get_once(self, bucket: str, key: str, uri: str) -> bytes:
        conn = self._conn.get()
        url = f"{conn.base_url}/download/storage/v1/b/{quote(bucket, safe='')}/o/{quote(key, safe='')}?alt=media"
        with conn.session.get(url, stream=True, timeout=self.timeout) as response:
            if response.status_code != 200:
                raise _status_error(response)
            header = response.headers.get("Content-Length")
            length = int(header) if header is not None and header.isdigit() else None
            check_size(self, uri, length, self.max_blob_bytes)
            data = response.content
            if "Content-Encoding" in response.headers:  # decoded by requests: compare decoded sizes only
                length = None
        return read_exactly(data, length)

    def put(self, uri: Any, data: bytes) -> None:
        bucket, key = self._split(uri)
        body = bytes(data)

        def upload() -> None:
            blob = self._conn.get().client.bucket(bucket).blob(key)
            blob.upload_from_string(body, content_type="application/octet-stream", retry=None, timeout=self.timeout)

        self.retry.run(upload, lambda exc: gcs_error(exc, self, uri, writing=True), self, uri)

    # --- clients -----------------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        """This process's ``google.cloud.storage.Client`` (built on first use)."""
        return self._conn.get().client

    def _init_process_state(self) -> None:
        self._conn: ProcessLocal[_Conn] = ProcessLocal(self._connect)
        self._fast: ProcessLocal[Any] = ProcessLocal(self._make_fast)

    @property
    def emulator(self) -> str | None:
        """The endpoint when one is set (ours, else ``STORAGE_EMULATOR_HOST``); None for Google's own."""
        return self.endpoint or (os.environ.get("STORAGE_EMULATOR_HOST") or "").rstrip("/") or None

    def _resolve_credentials(self) -> tuple[Any, str | None]:
        """(google-auth credentials, project) for this process."""
        from google.auth.credentials import AnonymousCredentials

        creds = self.credentials
        if creds == ANONYMOUS or (creds is None and self.emulator):
            return AnonymousCredentials(), self.project or _NO_PROJECT
        if isinstance(creds, str):
            from google.oauth2 import service_account

            try:
                loaded = service_account.Credentials.from_service_account_file(creds)
            except (OSError, ValueError) as exc:
                raise StoreNotAvailable(self, f"cannot load the service-account file ({type(exc).__name__})") from None
            return loaded, self.project or loaded.project_id
        if creds is None:
            import google.auth
            from google.auth.exceptions import DefaultCredentialsError

            try:
                found, project = google.auth.default()
            except DefaultCredentialsError:
                raise StoreNotAvailable(self, "no default Google credentials found") from None
            return found, self.project or project
        return creds, self.project

    def _connect(self) -> _Conn:
        storage = require("google.cloud.storage", "gcp")
        from requests.adapters import HTTPAdapter

        credentials, project = self._resolve_credentials()
        endpoint = self.emulator
        options = {"api_endpoint": endpoint} if endpoint else None
        try:
            client = storage.Client(project=project or _NO_PROJECT, credentials=credentials, client_options=options)
        except Exception as exc:
            raise StoreNotAvailable(self, f"cannot create the client ({type(exc).__name__}: {clean(exc)})") from None
        session = client._http  # google-auth's AuthorizedSession: the client's own, authorised transport
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=self.max_pool_connections, max_retries=0)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        return _Conn(client, session, client.api_endpoint.rstrip("/"), credentials)

    def _make_fast(self) -> Any:
        if resolve_transport(self.transport) == "sdk":
            return None
        from . import _fast

        if not _fast.usable():
            log_once(logger, logging.INFO, "fast-transport", "forked",
                     "obstore cannot run in a process forked after it ran in its parent: using the SDK here")
            return None

        conn = self._conn.get()
        return _fast.GCSFast(conn.credentials, anonymous=_is_anonymous(conn.credentials), endpoint=self.emulator,
                       max_blob_bytes=self.max_blob_bytes, timeout=self.timeout)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        del state["_conn"], state["_fast"]
        if self._drop_token:
            state["credentials"] = _without_token(self.credentials)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._init_process_state()


def _is_credentials(value: Any) -> bool:
    """A google-auth Credentials object (duck-typed, so google-auth need not be imported to check)."""
    return callable(getattr(value, "refresh", None)) and callable(getattr(value, "apply", None))


def _is_anonymous(credentials: Any) -> bool:
    return type(credentials).__name__ == "AnonymousCredentials"


def _without_token(credentials: Any) -> Any:
    """A copy of user-passed credentials without the access token this process obtained."""
    clone = copy.copy(credentials)
    try:
        clone.token = None
        clone.expiry = None
    except AttributeError:  # a read-only token: such credentials refresh on use anyway
        pass
    return clone


def _status_error(response: Any) -> HTTPStatusError:
    """The service's error from a GCS JSON error body, when it has one."""
    code, message = None, ""
    try:
        error = json.loads(response.content[:65536]).get("error", {})
        message = str(error.get("message", ""))
        code = next((e.get("reason") for e in error.get("errors", []) if isinstance(e, dict)), None)
    except (ValueError, AttributeError):
        pass
    return HTTPStatusError(response.status_code, code, message)
