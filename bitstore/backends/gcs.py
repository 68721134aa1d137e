"""``GSRaw``: ``gs://bucket/key`` on Google Cloud Storage or an emulator, through google-cloud-storage.

One client per process, built on first use and shared by threads; its HTTP session's pool is sized for
``get_many`` and does no retries of its own. A GET is one media download read by us (so the size limit is
checked from Content-Length before the body is read, and the bytes read are checked against it); the
whole GET is retried by ``RetryPolicy``. With obstore installed (``bitstore[fast]``) GETs, listings and PUTs of
bytes go through it, with the same credentials, endpoint, retries and error mapping (an emulator that does not take
obstore's XML-API upload is written through the SDK under ``auto``).
"""
from __future__ import annotations

import copy
import json
import logging
import os
import re
from typing import Any, NamedTuple
from urllib.parse import quote

from ..ground.errors import StoreNotAvailable
from ..ground.fields import COMMON, Build, Field, TierType, env_name
from ..ground.log import log_once
from ..ground.retry import Attempt, RetryPolicy
from . import _redact
from ._body import read_body, read_up_to
from ._client import endpoint_problem, require
from ._cloud import ANONYMOUS, CLOUD, DEFAULT_POOL, DEFAULT_TIMEOUT, CloudRaw, cloud_options
from ._errors import HTTPStatusError, check_size, clean, config_error, gcs_error, retry_after_of

__all__ = ["GSRaw", "ANONYMOUS"]

_NO_PROJECT = "<none>"
logger = logging.getLogger(__name__)


class _Conn(NamedTuple):
    """This process's client, its authorised HTTP session, API base URL, and credentials."""

    client: Any
    session: Any
    base_url: str
    credentials: Any


class GSRaw(CloudRaw):
    """Objects in GCS buckets.

    ``credentials``: None (google-auth's default chain; anonymous when ``endpoint`` or
    ``STORAGE_EMULATOR_HOST`` points at an emulator), a google-auth ``Credentials`` object (its project is
    used, as in the original), a path to a service-account JSON file, or ``"anonymous"``.
    ``endpoint``: an API endpoint such as ``http://127.0.0.1:4443`` (an emulator).
    ``retry``, ``max_blob_bytes``, ``transport``: as for ``S3Raw``.
    """

    URI_HINT = "gs://bucket/key"
    KIND = "gs"
    _URI = re.compile(r"gs://([^/]+)/(.+)", re.DOTALL)
    _sdk_error = staticmethod(gcs_error)

    def __init__(self, credentials: Any = None, *, project: str | None = None, endpoint: str | None = None,
                 retry: RetryPolicy | dict | int | None = None, max_blob_bytes: int | None = None,
                 max_pool_connections: int = DEFAULT_POOL, timeout: tuple[float, float] = DEFAULT_TIMEOUT,
                 name: str | None = None, transport: str = "auto"):
        super().__init__(retry=retry, max_blob_bytes=max_blob_bytes, max_pool_connections=max_pool_connections,
                         timeout=timeout, name=name, transport=transport)
        if isinstance(credentials, os.PathLike):
            credentials = os.fspath(credentials)
        if not (credentials is None or isinstance(credentials, str) or _is_credentials(credentials)):
            # Builds, as in the original, and answers StoreNotAvailable on use (the client refuses them).
            log_once(logger, logging.WARNING, "gcs-credentials", type(credentials).__name__,
                     "GSRaw credentials must be None, 'anonymous', a service-account JSON path or a google-auth "
                     f"Credentials object, not {type(credentials).__name__}: this store will not be available")
        # Kept as the user gave it: the client refreshes a per-process copy, so the tokens a process obtains
        # never reach this object (nor its pickles); a token the user passed is their credential and travels.
        self.credentials = credentials
        self.project = project or getattr(credentials, "project_id", None)
        self.endpoint = endpoint.rstrip("/") if endpoint else None

    # --- io: one attempt each (CloudRaw retries them and maps their errors) -------------------------
    def _get_once(self, bucket: str, key: str, uri: str, attempt: Attempt) -> bytes:
        conn = self._conn.get()
        with conn.session.get(self._object_url(conn, bucket, key, media=True), stream=True,
                              timeout=self.timeout) as response:
            if response.status_code != 200:
                raise _status_error(response, attempt)
            header = response.headers.get("Content-Length")
            length = int(header) if header is not None and header.isdigit() else None
            check_size(self, uri, length, self.max_blob_bytes)
            encoded = "Content-Encoding" in response.headers  # decoded as read: compare decoded sizes only
            return read_body(response.raw, None if encoded else length, attempt, self, uri, self.max_blob_bytes,
                             decode_content=True)

    @staticmethod
    def _object_url(conn: _Conn, bucket: str, key: str, media: bool = False) -> str:
        path = f"/storage/v1/b/{quote(bucket, safe='')}/o/{quote(key, safe='')}"
        return f"{conn.base_url}/download{path}?alt=media" if media else f"{conn.base_url}{path}?fields=name"

    def _sdk_has(self, bucket: str, key: str) -> bool:
        return self._exists(self._object_url(self._conn.get(), bucket, key))

    def _bucket_exists(self, bucket: str) -> bool:
        conn = self._conn.get()
        return self._exists(f"{conn.base_url}/storage/v1/b/{quote(bucket, safe='')}?fields=name")

    def _exists(self, url: str) -> bool:
        """A metadata GET through the JSON API, which every emulator serves: 200 yes, 404 no, else raises. Told
        by the status alone (the body is not read), within one read-idle timeout in all."""
        with self._conn.get().session.get(url, timeout=self.timeout, stream=True) as response:
            if response.status_code == 404:
                return False
            if response.status_code != 200:
                raise _status_error(response, self._check_attempt())
            return True

    @property
    def endpoint_label(self) -> str | None:
        return self.emulator

    def _put_once(self, bucket: str, key: str, body: bytes) -> None:
        blob = self._conn.get().client.bucket(bucket).blob(key)
        blob.upload_from_string(body, content_type="application/octet-stream", retry=None, timeout=self.timeout)

    def _put_stream_once(self, bucket: str, key: str, stream: Any) -> None:
        blob = self._conn.get().client.bucket(bucket).blob(key)
        blob.upload_from_file(stream, content_type="application/octet-stream", retry=None, timeout=self.timeout)

    def _delete_once(self, bucket: str, key: str) -> None:
        from google.api_core.exceptions import NotFound

        try:
            self._conn.get().client.bucket(bucket).blob(key).delete(retry=None, timeout=self.timeout)
        except NotFound:  # the object, or its bucket: only the first is fine
            if not self._bucket_exists(bucket):
                raise StoreNotAvailable(self, f"bucket {bucket!r} does not exist") from None

    def _list_page_once(self, bucket: str, folder: str, after: str | None, token: str | None,
                        size: int) -> tuple[list[tuple[str, int | None]], str | None]:
        blobs = self._conn.get().client.list_blobs(
            bucket, prefix=folder or None, delimiter="/", start_offset=after, page_size=size, page_token=token,
            fields="items(name,size),nextPageToken,prefixes", retry=None, timeout=self.timeout)
        page = next(blobs.pages, None)
        items = [] if page is None else [(b.name, b.size) for b in page]
        return items, blobs.next_page_token or None

    # --- clients -----------------------------------------------------------------------------------
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
        return _process_copy(creds), self.project

    def _connect(self) -> _Conn:
        storage = require("google.cloud.storage", "gcp")
        _redact.install()
        from requests.adapters import HTTPAdapter

        endpoint = self.emulator
        problem = endpoint_problem(endpoint) if endpoint else None
        if problem:
            raise config_error(self, problem)
        credentials, project = self._resolve_credentials()
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

    def _build_fast(self, conn: _Conn) -> Any:
        from ._fast import GCSFast

        return GCSFast(conn.credentials, anonymous=_is_anonymous(conn.credentials), endpoint=self.emulator,
                       max_blob_bytes=self.max_blob_bytes, timeout=self.timeout, deadline=self.retry.deadline)

    # --- inspect and stream: one attempt each, SDK path (CloudRaw.head/open retry them and map their errors) --
    def _head_once(self, bucket: str, key: str, uri: str, attempt: Attempt) -> int:
        conn = self._conn.get()
        url = self._object_url(conn, bucket, key).replace("?fields=name", "?fields=size")
        with conn.session.get(url, timeout=self.timeout, stream=True) as response:
            if response.status_code != 200:
                raise _status_error(response, attempt)
            size = json.loads(read_up_to(response.raw, 1 << 16, attempt) or b"{}").get("size")
        if not str(size).isdigit():
            raise HTTPStatusError(200, None, "object metadata without a size")
        return int(size)

    def _range_once(self, bucket: str, key: str, start: int, stop: int, attempt: Attempt) -> bytes:
        conn = self._conn.get()
        headers = {"Range": f"bytes={start}-{stop - 1}", "Accept-Encoding": "identity"}
        with conn.session.get(self._object_url(conn, bucket, key, media=True), headers=headers, stream=True,
                              timeout=self.timeout) as response:
            whole = response.status_code == 200 and start == 0  # a server may ignore the range: take the start
            if response.status_code != 206 and not whole:
                raise _status_error(response, attempt)
            uri = f"gs://{bucket}/{key}"
            if whole:
                return read_body(response.raw, None, attempt, self, uri, None)[:stop]
            return read_body(response.raw, stop - start, attempt, self, uri, None)


def _is_credentials(value: Any) -> bool:
    """A google-auth Credentials object (duck-typed, so google-auth need not be imported to check)."""
    return callable(getattr(value, "refresh", None)) and callable(getattr(value, "apply", None))


def _is_anonymous(credentials: Any) -> bool:
    return type(credentials).__name__ == "AnonymousCredentials"


def _process_copy(credentials: Any) -> Any:
    """This process's copy of user-passed credentials, for the client to refresh in place."""
    try:
        return copy.copy(credentials)
    except Exception:  # an uncopyable credentials class: tokens it obtains would then be pickled with the store
        return credentials


def _status_error(response: Any, attempt: Attempt) -> HTTPStatusError:
    """The service's error from a GCS JSON error body, when it has one (its first 64 KiB, read within the
    deadline: an error body that trickles does not hold the thread)."""
    code, message = None, ""
    try:
        error = json.loads(read_up_to(response.raw, 1 << 16, attempt)).get("error", {})
        message = str(error.get("message", ""))
        code = next((e.get("reason") for e in error.get("errors", []) if isinstance(e, dict)), None)
    except (ValueError, AttributeError):
        pass
    return HTTPStatusError(response.status_code, code, message, retry_after_of(response.headers.get("Retry-After")))


# --- the gcs tier of a store spec (``bitstore.spec`` validates and builds through this declaration) -------
def _build_tier(tier: dict, build: Build) -> GSRaw:
    if tier.get("anonymous"):
        credentials: Any = ANONYMOUS
    elif "credentials_env" in tier:
        credentials = build.env(tier["credentials_env"], f"{build.where}.credentials_env")
    else:
        credentials = tier.get("credentials_file")
    return GSRaw(credentials, project=tier.get("project"), endpoint=tier.get("endpoint"), **cloud_options(tier),
                 **build.raw_name(tier))


TIER = TierType("gcs", (
    Field("prefix", str, "`gs://bucket/folder/` (hash keys)", "gs://bucket/blobs/"),
    *COMMON,
    *CLOUD,
    Field("endpoint", str, "an emulator's URL", "http://127.0.0.1:4443"),
    Field("project", str, "the Google Cloud project", "my-project"),
    Field("credentials_env", str, "a variable holding the service-account JSON file's path", "SA_JSON_PATH",
          env_name, reference="env", wrong_kind="must be the NAME of an environment variable (letters, digits, _), "
          "not a value"),
    Field("credentials_file", str, "a service-account JSON file (relative: to the spec file's folder)", "sa.json",
          reference="file"),
), _build_tier, retry=True, exclusive=(("credentials_file", "credentials_env"),))
