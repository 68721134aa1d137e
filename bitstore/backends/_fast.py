"""The ``fast`` transport (``bitstore[fast]``): object GETs, listings and PUTs of bytes through obstore (Rust), driven
from our threads (a streamed upload, ``put_stream``, stays on the SDK).

Credentials still come from the SDKs (boto3's credential chain, google-auth) through obstore's credential
providers; obstore's own retries are off, so ``RetryPolicy`` and ``_errors`` behave exactly as on the SDK
path. One obstore store per bucket, per process (the owner builds a transport per process).

Time: ``connect_timeout`` and a read-idle timeout (``read_timeout``: no byte for that long) per request, and the
blob's overall deadline as obstore's whole-request ``timeout``, so a slow but steady download is not cut off at
obstore's default 30 s. A retry (attempt > 0) streams the body in chunks and checks the deadline between them.

A blob read whole (a first attempt, or any attempt without a deadline) is asked as one ranged GET of bytes 0 up
to the size limit: obstore answers it in one call (and one hand-back to the event loop) where a plain GET takes
two (the object's head, then its body), about a quarter less client CPU per small blob. An object has no byte
0 when empty (416), an endpoint may ignore ranges (a whole-object 200, which obstore refuses) or send a range
it cannot use: that key is then asked by a plain GET at once (``range_refusal``). A transport that has not yet
seen a ranged GET answered stops ranging at the first such refusal, or at a 4xx refusing the request. A 404
is the blob's, as for a plain GET; any other error is one a plain GET would meet. ``RANGED = False`` (a user's
HTTP server) never ranges.

obstore's runtime (tokio) does not survive ``fork``: a process forked after obstore ran in its parent
hangs on its first request. ``usable()`` tells the owner to stay on the SDK path in such a process.
"""
from __future__ import annotations

import importlib
import os
import threading
from abc import ABC, abstractmethod
from datetime import timedelta
from typing import Any

from ..ground.retry import Attempt
from ..ground.views import VIEW_MIN_BYTES, views_allowed
from ._client import require
from ._errors import FastUnsupported, check_size, config_error, range_refusal, read_exactly

__all__ = ["S3Fast", "GCSFast", "HTTPFast", "AzureFast", "ListPager", "usable"]

_started_in: int | None = None  # pid of the process in which obstore's runtime was first used

#: obstore's whole-request timeout when the retry policy sets no deadline (it cannot be switched off).
_NO_DEADLINE = timedelta(days=1)
_STREAM_CHUNK = 1 << 20
#: The end of a whole-blob ranged GET when no size limit is set (beyond any object a service stores).
_RANGE_END = 1 << 53

_NO_RETRIES = {"max_retries": 0, "retry_timeout": timedelta(seconds=0),
               "backoff": {"init_backoff": timedelta(milliseconds=1), "max_backoff": timedelta(milliseconds=1),
                           "base": 2}}


#: ``(asyncio.get_running_loop, engine.loop.tokio_call, engine.loop.settled)`` once a read was made on a loop
#: (imported then, not at the top: a command that never reads on a loop does not import asyncio).
_loop_api: tuple[Any, Any, Any] | None = None


def _load_loop_api() -> tuple[Any, Any, Any]:
    global _loop_api
    import asyncio

    from ..engine.loop import settled, tokio_call

    _loop_api = (asyncio.get_running_loop, tokio_call, settled)
    return _loop_api


def usable() -> bool:
    """Whether obstore can run in this process: not in one forked after obstore ran in its parent."""
    return _started_in in (None, os.getpid())


class _Transport(ABC):
    """Per-bucket obstore stores built on demand; ``get`` is one attempt, checked against the announced size.

    A subclass names its obstore store class (``_STORE``) and turns the SDK's credentials into an obstore
    credential provider (``_provider``); requests are unsigned when there are no credentials.
    """

    _STORE: str
    #: Whether a blob read whole is asked as one ranged GET (see the module doc).
    RANGED = True
    #: Whether ``put`` may be used (else the owner writes through the SDK).
    writes = True

    def __init__(self, credentials: Any, config: dict[str, Any], *, max_blob_bytes: int | None,
                 timeout: tuple[float, float], deadline: float | None, endpoint: str | None):
        global _started_in
        self._obstore = require("obstore", "fast")
        _started_in = os.getpid()
        self.max_blob_bytes = max_blob_bytes
        self._ranged: bool | None = None if self.RANGED else False  # None: no ranged GET answered yet
        self._range_end = _RANGE_END if max_blob_bytes is None else max_blob_bytes + 1
        self._client_options = {
            "connect_timeout": timedelta(seconds=timeout[0]),
            "read_timeout": timedelta(seconds=timeout[1]),
            "timeout": _NO_DEADLINE if deadline is None else timedelta(seconds=deadline),
            "allow_http": bool(endpoint and endpoint.startswith("http://")),
        }
        if credentials is None:
            self._config = {**config, "skip_signature": True}
            self._credential_provider = None
        else:
            self._config = config
            self._credential_provider = self._provider(credentials)
        self._stores: dict[str, Any] = {}
        self._lock = threading.Lock()

    @abstractmethod
    def _provider(self, credentials: Any) -> Any:
        """An obstore credential provider drawing on the SDK's ``credentials``."""

    def _build(self, bucket: str) -> Any:
        store_class = getattr(importlib.import_module("obstore.store"), self._STORE)
        return store_class(bucket, config=self._config, client_options=self._client_options,
                           retry_config=_NO_RETRIES, credential_provider=self._credential_provider)

    def _store(self, bucket: str) -> Any:
        store = self._stores.get(bucket)
        if store is None:
            with self._lock:
                store = self._stores.get(bucket)
                if store is None:
                    store = self._stores[bucket] = self._build(bucket)
        return store

    def _usable_store(self, bucket: str, owner: Any) -> Any:
        """``_store(bucket)``; a configuration obstore refuses is ``config_error`` (no attempt will fix it)."""
        try:
            return self._store(bucket)
        except Exception as exc:
            raise config_error(owner, f"the fast transport cannot use this configuration ({exc})") from None

    def get(self, bucket: str, key: str, owner: Any, uri: str, attempt: Attempt) -> bytes:
        store = self._usable_store(bucket, owner)
        whole = not (attempt.number and attempt.deadline_at is not None)  # a retry near its deadline streams
        try:
            if whole and self._ranged is not False:
                try:
                    body = self._ranged_body(self._obstore.get_range(store, key, start=0, end=self._range_end))
                except Exception as exc:
                    if not self._plain_after(exc):
                        raise
                else:
                    if body is not None:
                        return _payload(body, len(body), views_allowed())
            result = self._obstore.get(store, key)
        except BaseException as exc:
            if type(exc).__name__ == "PanicException":  # obstore's Rust code gave up on this request: not ours to crash
                raise FastUnsupported(f"obstore panicked: {str(exc)[:200]}") from None
            raise
        length = result.meta["size"]
        check_size(owner, uri, length, self.max_blob_bytes)
        if not whole:  # a retry: the deadline is nearer than obstore's timeout
            return read_exactly(_streamed(result, attempt), length)
        return _payload(result.bytes(), length, views_allowed())

    async def get_async(self, bucket: str, key: str, owner: Any, uri: str, views: bool) -> bytes | memoryview:
        """``get``'s first attempt through obstore's async API, on the running event loop (the async batch
        engine's). Raises what ``get`` raises, left for the caller to map with ``obstore_error``; ``views``
        stands for ``views_allowed()``, which the loop's context does not carry."""
        store = self._stores.get(bucket) or self._usable_store(bucket, owner)  # the dict first: per blob, on the loop
        running_loop, tokio_call, settled = _loop_api or _load_loop_api()
        loop = running_loop()
        try:
            if self._ranged is not False:
                try:
                    # obstore's futures are settled from tokio's threads: made tracked, so exit can wait for them
                    pending = tokio_call(loop, self._get_range_async, store, key)
                    try:
                        body = self._ranged_body(await pending)
                    finally:
                        settled(pending)
                except Exception as exc:
                    if not self._plain_after(exc):
                        raise
                else:
                    if body is not None:
                        return _payload(body, len(body), views)
            pending = tokio_call(loop, self._obstore.get_async, store, key)
            try:
                result = await pending
            finally:
                settled(pending)
            length = result.meta["size"]
            check_size(owner, uri, length, self.max_blob_bytes)
            pending = tokio_call(loop, result.bytes_async)
            try:
                body = await pending
            finally:
                settled(pending)
        except BaseException as exc:
            if type(exc).__name__ == "PanicException":
                raise FastUnsupported(f"obstore panicked: {str(exc)[:200]}") from None
            raise
        return _payload(body, length, views)

    def _get_range_async(self, store: Any, key: str) -> Any:
        return self._obstore.get_range_async(store, key, start=0, end=self._range_end)

    def _ranged_body(self, body: Any) -> Any:
        """The blob from a whole-blob ranged GET; None when it may be larger than the limit (the plain GET then
        reads its announced size and refuses it as too large)."""
        if self._ranged is None:
            self._ranged = True
        return None if len(body) >= self._range_end else body

    def _plain_after(self, exc: Exception) -> bool:
        """Whether the key is asked by a plain GET after its ranged GET failed with ``exc`` (else ``exc`` stands, as
        a plain GET's would: a 404 is the blob's, a 503 the service's): when the range was refused. While no ranged
        GET was answered yet, a refusal of the range or the request (not an empty object's) stops the ranging."""
        refusal = range_refusal(exc)
        if refusal is None or isinstance(exc, FileNotFoundError):
            return False
        if self._ranged is None and refusal != "empty":
            self._ranged = False  # this endpoint does not answer ranges as asked: plain GETs from now on
        return refusal != "request" or self._ranged is False

    def put(self, bucket: str, key: str, body: bytes, owner: Any) -> None:
        """One PUT of the whole ``body`` at ``key`` (obstore's ``put``, one request: no multipart, so a failed
        attempt leaves nothing behind, and the write is atomic: the object is the old one or ``body``). Raises
        what obstore raises, for the owner to map with ``obstore_error(..., writing=True)``."""
        store = self._writer(bucket, self._usable_store(bucket, owner))
        try:
            self._obstore.put(store, key, body, use_multipart=False)
        except BaseException as exc:
            if type(exc).__name__ == "PanicException":
                raise FastUnsupported(f"obstore panicked: {str(exc)[:200]}") from None
            raise

    def _writer(self, bucket: str, store: Any) -> Any:
        """The obstore store that writes to ``bucket``: the one that reads it, unless a transport needs another."""
        return store

    def pager(self, bucket: str, folder: str, after: str | None, page_size: int, owner: Any) -> ListPager:
        """A listing of ``folder`` after ``after`` through obstore's ``list`` (see ``ListPager``)."""
        store = self._usable_store(bucket, owner)
        return ListPager(self._obstore, store, folder, after, page_size)


class ListPager:
    """obstore's ``list`` stream, a chunk of ``page_size`` names per ``next_page`` (None once done). obstore lists
    every name below a folder (no delimiter): deeper names come too, for the caller to leave out. A stream that
    failed is opened again after the last name it gave (``offset``), so a retried page goes on where it was."""

    via = "fast"

    def __init__(self, obstore: Any, store: Any, folder: str, after: str | None, page_size: int):
        self._obstore, self._store, self._page_size = obstore, store, page_size
        self._prefix = folder.rsplit("/", 1)[0] if "/" in folder else None  # obstore's prefixes are whole folders
        self._last = after
        self._stream: Any = None
        self._done = False

    def next_page(self, attempt: Attempt) -> list[tuple[str, int | None]] | None:
        if self._done:
            return None
        try:
            if self._stream is None:
                self._stream = self._obstore.list(self._store, self._prefix, offset=self._last,
                                                  chunk_size=self._page_size)
            chunk = next(self._stream, None)
        except BaseException as exc:
            self._stream = None
            if type(exc).__name__ == "PanicException":
                raise FastUnsupported(f"obstore panicked: {str(exc)[:200]}") from None
            raise
        if chunk is None:
            self._done = True
            return None
        items = [(meta["path"], meta.get("size")) for meta in chunk]
        if items:
            self._last = items[-1][0]
        return items


def _payload(body: Any, length: int | None, views: bool) -> bytes | memoryview:
    """obstore's buffer as ``bytes``, or lent as a read-only view where allowed and large (``ground.views``)."""
    lend = views and length is not None and length >= VIEW_MIN_BYTES
    return read_exactly(memoryview(body) if lend else bytes(body), length)  # type: ignore[arg-type]


def _streamed(result: Any, attempt: Attempt) -> bytes:
    chunks = []
    for chunk in result.stream(min_chunk_size=_STREAM_CHUNK):
        chunks.append(chunk)
        attempt.check()
    return b"".join(bytes(c) for c in chunks) if len(chunks) != 1 else bytes(chunks[0])


class S3Fast(_Transport):
    """obstore ``S3Store``s signed with a boto3 session's credentials, or with ``(key id, secret, token)`` read
    from the environment (``_awsenv``); unsigned when ``session`` is None."""

    _STORE = "S3Store"

    def __init__(self, session: Any, *, region: str | None, endpoint_url: str | None, max_blob_bytes: int | None,
                 timeout: tuple[float, float], deadline: float | None):
        # Every value obstore would otherwise read from the environment on its own is set here from what boto3
        # resolved, so both transports address the same endpoint (AWS_ENDPOINT_URL_S3 would win over ``endpoint``).
        config: dict[str, Any] = {"region": region or "us-east-1"}
        if endpoint_url:
            config.update(endpoint=endpoint_url, aws_endpoint_url_s3=endpoint_url, virtual_hosted_style_request=False)
        super().__init__(session, config, max_blob_bytes=max_blob_bytes, timeout=timeout, deadline=deadline,
                         endpoint=endpoint_url)

    def _provider(self, credentials: Any) -> Any:
        if isinstance(credentials, tuple):  # keys as boto3 reads them from the environment, without boto3
            key, secret, token = credentials
            return lambda: {"access_key_id": key, "secret_access_key": secret, "token": token, "expires_at": None}
        from obstore.auth.boto3 import Boto3CredentialProvider

        return Boto3CredentialProvider(credentials)


class GCSFast(_Transport):
    """obstore ``GCSStore``s authorised by google-auth credentials (unsigned when anonymous).

    obstore signs every GCS write, even with ``skip_signature`` (it would ask the metadata server for a token): an
    anonymous store writes to an emulator (``endpoint``, which authenticates nothing) with a placeholder token,
    and to Google's own endpoint through the SDK, unsigned (``writes`` False)."""

    _STORE = "GCSStore"

    def __init__(self, credentials: Any, *, anonymous: bool, endpoint: str | None, max_blob_bytes: int | None,
                 timeout: tuple[float, float], deadline: float | None):
        config: dict[str, Any] = {"base_url": endpoint} if endpoint else {}
        super().__init__(None if anonymous else credentials, config, max_blob_bytes=max_blob_bytes, timeout=timeout,
                         deadline=deadline, endpoint=endpoint)
        self._unsigned_writes = anonymous
        self.writes = not anonymous or bool(endpoint)
        self._writers: dict[str, Any] = {}

    def _writer(self, bucket: str, store: Any) -> Any:
        if not self._unsigned_writes:
            return store
        writer = self._writers.get(bucket)
        if writer is None:
            from obstore.store import GCSStore

            config = {k: v for k, v in self._config.items() if k != "skip_signature"}
            with self._lock:
                writer = self._writers.get(bucket)
                if writer is None:
                    writer = self._writers[bucket] = GCSStore(
                        bucket, config=config, client_options=self._client_options, retry_config=_NO_RETRIES,
                        credential_provider=_emulator_token)
        return writer

    def _provider(self, credentials: Any) -> Any:
        from obstore.auth.google import GoogleCredentialProvider

        return GoogleCredentialProvider(credentials)


def _emulator_token() -> dict[str, Any]:
    """A bearer token for a GCS emulator, which checks none (never sent to Google: see ``GCSFast``)."""
    return {"token": "emulator", "expires_at": None}


class HTTPFast(_Transport):
    """obstore ``HTTPStore``s, one per origin (``scheme://host:port``), sending ``headers`` with every request.

    The "bucket" of ``get`` is the origin and the key the URL's path without its leading ``/``; the owner sends
    only URLs obstore addresses as written (no query string, plain characters)."""

    _STORE = "HTTPStore"
    RANGED = False  # any HTTP server: one that ignores ranges would cost every key a second GET until refused

    def __init__(self, headers: dict[str, str], *, max_blob_bytes: int | None, timeout: tuple[float, float],
                 deadline: float | None):
        super().__init__(None, {}, max_blob_bytes=max_blob_bytes, timeout=timeout, deadline=deadline, endpoint=None)
        self._headers = dict(headers)

    def _provider(self, credentials: Any) -> Any:  # pragma: no cover - headers, not a credential provider
        return None

    def _build(self, origin: str) -> Any:
        from obstore.store import HTTPStore

        options = {**self._client_options, "allow_http": origin.startswith("http://")}
        if self._headers:
            options["default_headers"] = self._headers
        return HTTPStore(origin, client_options=options, retry_config=_NO_RETRIES)

    def __repr__(self) -> str:
        return f"<HTTPFast headers={sorted(self._headers)}>"


class AzureFast(_Transport):
    """obstore ``AzureStore``s for one storage account, signed with the credential the store resolved (the same one
    the SDK uses): a shared key or a SAS token handed over by a credential provider (so that no ``AZURE_STORAGE_*``
    variable obstore would read on its own can override it), a token credential through azure-identity, or unsigned
    when anonymous. The account URL is always given as the endpoint (path style for Azurite)."""

    _STORE = "AzureStore"

    def __init__(self, auth: Any, *, max_blob_bytes: int | None, timeout: tuple[float, float],
                 deadline: float | None):
        config: dict[str, Any] = {"endpoint": auth.account_url, "use_emulator": False}
        if auth.account_name:
            config["account_name"] = auth.account_name
        super().__init__(None if auth.kind == "anonymous" else auth, config, max_blob_bytes=max_blob_bytes,
                         timeout=timeout, deadline=deadline, endpoint=auth.account_url)

    def _provider(self, auth: Any) -> Any:
        if auth.kind == "key":
            key = auth.secret
            return lambda: {"access_key": key, "expires_at": None}
        if auth.kind == "sas":
            sas = auth.secret.lstrip("?")
            return lambda: {"sas_token": sas, "expires_at": None}
        from obstore.auth.azure import AzureCredentialProvider

        return AzureCredentialProvider(auth.secret)
