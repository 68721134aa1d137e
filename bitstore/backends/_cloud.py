"""``CloudRaw``: what ``S3Raw``, ``GSRaw`` and ``AZRaw`` share, so each backend keeps only its SDK's part.

Shared: ``bucket/key`` URIs, the retried GET and PUT (of bytes) through the fast transport (obstore) or the SDK
(``put_stream``, ``delete``, ``head`` and ``open`` through the SDK), errors mapped once per attempt, and
per-process state (``_conn`` from ``_connect``, ``_fast`` from ``_make_fast``, ``_facts``) that is rebuilt after
``fork`` and dropped when pickled. A subclass sets ``KIND``,
``URI_HINT``, ``_URI`` and ``_sdk_error``, and implements ``_connect``, ``_build_fast``, ``_get_once``,
``_put_once``, ``_sdk_has`` and ``_bucket_exists``.

Listing (``Store.list_names(prefix, *, start_after=None)``, the hook every listable raw store implements): the names
directly under a ``<KIND>://bucket/folder/`` prefix, relative to it, ascending, as ``Listed(name, size)``, page by
page. Here a subclass implements ``_list_page_once`` (one SDK request: a page of ``(name, size)`` and the next
page's token) and, for the fast transport, its ``_fast`` transport's ``pager``; ``list_names`` retries each page,
maps errors as a GET's (a listing never says "missing": a 404 is a missing bucket or a failure), and refuses a
listing that goes backwards. ``delete`` (``_delete_once``) and ``put_stream`` (``_put_stream_once``) likewise.

"Missing" is said only on an answer about the object. A 404 that does not say so (``Unconfirmed404``: emulators,
proxies, a route the endpoint does not serve) is settled here: through the fast transport, the SDK is asked
whether the object is there (if it is, the fast transport cannot address this endpoint: ``auto`` goes on through
the SDK, logged once; ``fast`` answers ``StoreNotAvailable``); then the bucket is checked (missing if it exists,
``StoreNotAvailable`` if not, ``FetchFailed`` if that cannot be told).
"""
from __future__ import annotations

import functools
import io
import logging
import re
import sys
import threading
from abc import abstractmethod
from collections.abc import Callable, Iterator, Mapping
from typing import IO, Any, TypeVar

from ..core.listed import Listed
from ..core.store import Store
from ..engine.routes import Fallback, Route
from ..ground.errors import BitstoreError, FetchFailed, InvalidURI, NotFoundInStore, StoreNotAvailable
from ..ground.fields import MAX_BLOB_BYTES, NUMBER, POSITIVE, RETRY, SECONDS, Field, one_of
from ..ground.log import cause_of, log_once
from ..ground.retry import Attempt, RetryPolicy, TransientError, take_first_attempt
from . import _fast
from ._client import TRANSPORTS, ProcessLocal, resolve_transport
from ._errors import FastUnsupported, Unconfirmed404, obstore_error, read_exactly, write_refusal

__all__ = ["CloudRaw", "ANONYMOUS", "DEFAULT_POOL", "CLOUD", "cloud_options"]

logger = logging.getLogger(__name__)

ANONYMOUS = "anonymous"
#: get_many's default concurrency is 64 threads; room for more without "connection pool is full" warnings.
DEFAULT_POOL = 128
#: ``(connect, read_idle)`` seconds: the raw stores' ``timeout`` and the spec's ``connect_timeout``/``read_timeout``.
DEFAULT_TIMEOUT = (10.0, 30.0)

C = TypeVar("C", bound="CloudRaw")


class _Facts:
    """What this process has learnt about the endpoint: buckets seen to exist, and whether the fast transport
    reaches objects there (True once it served one; False once the SDK found an object it called missing)."""

    def __init__(self) -> None:
        self.buckets: set[str] = set()
        self.fast_reaches_objects: bool | None = None
        #: Whether the fast transport writes here: True once a PUT through it succeeded, False once one was refused.
        self.fast_writes: bool | None = None
        self.lock = threading.Lock()


class _SdkPager:
    """A listing through the SDK, a page per ``next_page`` (None once done); a failed page is asked again."""

    via = "sdk"

    def __init__(self, page_once: Callable[[str | None], tuple[list[tuple[str, int | None]], str | None]],
                 owner: Any, prefix: str):
        self._page_once, self._owner, self._prefix = page_once, owner, prefix
        self._token: str | None = None
        self._done = False

    def next_page(self, attempt: Attempt) -> list[tuple[str, int | None]] | None:
        if self._done:
            return None
        items, token = self._page_once(self._token)
        if token is None:
            self._done = True
        elif token == self._token:
            raise FetchFailed(self._owner, self._prefix, "the listing returned the same page token twice")
        self._token = token
        return items


class CloudRaw(Store):
    """Objects in a cloud bucket, addressed as ``<KIND>://bucket/key``."""

    #: Names asked for per listing request (the services return at most 1,000).
    list_page_size = 1000

    KIND: str
    #: What the service calls a bucket (in messages): "bucket", or "container" on Azure.
    BUCKET_WORD = "bucket"
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
        facts = self._facts
        fast = self._fast.get()
        via = ["sdk" if fast is None or facts.fast_reaches_objects is False else "fast"]  # this blob's transport

        def attempt(a: Attempt) -> bytes:
            if via[0] == "sdk":
                return self._get_once(bucket, key, uri, a)
            data = fast.get(bucket, key, self, uri, a)
            facts.fast_reaches_objects = True
            return data

        def classify(exc: BaseException) -> BaseException | None:
            mapped = (obstore_error if via[0] == "fast" else self._sdk_error)(exc, self, uri)
            if isinstance(mapped, Unconfirmed404):
                return self._settle_404(bucket, key, uri, via, mapped)
            if isinstance(mapped, FastUnsupported):
                if mapped.endpoint_wide:
                    return self._fast_cannot_address(via, str(mapped))
                via[0] = "sdk"
                return TransientError(f"{mapped}; next attempt through the SDK", immediate=True)
            if via[0] == "fast" and isinstance(mapped, TransientError) and mapped.throttled:
                via[0] = "sdk"  # obstore does not show Retry-After; the SDK does
            return mapped

        made = take_first_attempt(uri)  # the async engine's loop made the first attempt, through the fast transport
        return self.retry.run(attempt, classify, self, uri, made if via[0] == "fast" else None)

    def async_route(self) -> Route | None:
        """The event-loop engine's route to this store's GET through obstore's async API, when the fast transport
        is usable in this process and this store's reading code is ``CloudRaw``'s own; else None (threads)."""
        cls = type(self)
        if cls.get is not CloudRaw.get or cls._fetch is not Store._fetch or cls._result is not Store._result:
            return None
        if not _fast.usable() or self._facts.fast_reaches_objects is False:
            return None
        try:
            fast = self._fast.get()  # None on the SDK transport; may build the client
        except Exception:  # noqa: BLE001 - the store's own path will say what is wrong, key by key
            return None
        if fast is None:
            return None
        return Route(self, functools.partial(self._attempt_async, fast),
                     lambda: self._facts.fast_reaches_objects is not False)

    async def _attempt_async(self, fast: Any, uri: Any, views: bool) -> Any:
        """The loop's first attempt of ``get(uri)``: the bytes, a ``NotFoundInStore`` the service's own error code
        said (through the one error map), else ``Fallback`` with the attempt made (``retry.first_attempt``)."""
        match = self._URI.fullmatch(uri) if isinstance(uri, str) else None
        if match is None:  # the store's own path says why (InvalidURI)
            raise Fallback
        bucket, name = match.groups()
        started = self.retry.clock()
        try:
            data = await fast.get_async(bucket, name, self, uri, views)
        except Exception as exc:
            mapped = obstore_error(exc, self, uri)
            if type(mapped) is NotFoundInStore:
                return mapped
            raise Fallback((uri, exc, started)) from None
        except BaseException as exc:  # noqa: BLE001 - obstore's Rust panics are BaseExceptions
            if isinstance(exc, (KeyboardInterrupt, SystemExit, sys.modules["asyncio"].CancelledError)):
                raise  # (asyncio is imported: this runs on its loop)
            raise Fallback from None
        self._facts.fast_reaches_objects = True  # as get records after a success through the fast transport
        return data

    def _settle_404(self, bucket: str, key: str, uri: str, via: list[str], exc: Unconfirmed404) -> BaseException:
        """Missing, unavailable or failed, for a 404 that did not say which (see the module docstring)."""
        facts = self._facts
        try:
            if via[0] == "fast" and facts.fast_reaches_objects is not True and self._sdk_has(bucket, key):
                return self._fast_cannot_address(via, f"it answered 404 for an object the SDK reads: {exc}")
            if bucket in facts.buckets or self._bucket_exists(bucket):
                with facts.lock:
                    facts.buckets.add(bucket)
                return NotFoundInStore(self, uri)
        except BitstoreError as error:
            return error
        except Exception as error:  # noqa: BLE001 - the check failed: retried if it may pass next time
            mapped = self._sdk_error(error, self, uri)
            if isinstance(mapped, TransientError):
                return TransientError(f"{exc}; the check that settles it failed: {mapped}")
            return FetchFailed(self, uri, f"HTTP 404 that does not say the object is missing ({exc}), and the "
                                          f"check that would settle it failed: {cause_of(error)}")
        where = self.endpoint_label
        return StoreNotAvailable(self, f"{self.BUCKET_WORD} {bucket!r} does not exist{f' at {where}' if where else ''}")

    def _fast_cannot_address(self, via: list[str], evidence: str) -> BaseException:
        """The fast transport was shown not to reach objects at this endpoint: ``auto`` goes on through the SDK
        for this store in this process (logged once); explicit ``fast`` is unavailable."""
        self._facts.fast_reaches_objects = False
        where = self.endpoint_label or "this endpoint"
        why = f"the fast transport cannot address objects at {where} ({evidence})"
        if self.transport == "fast":
            return StoreNotAvailable(self, f"{why}; use transport='auto' or 'sdk'")
        log_once(logger, logging.WARNING, "fast-transport", f"unaddressable:{where}",
                 f"{self.name}: {why}; using the SDK for this store in this process")
        via[0] = "sdk"
        return TransientError(f"{why}; next attempt through the SDK", immediate=True)

    def put(self, uri: Any, data: bytes) -> None:
        """Store ``data`` at ``uri`` (one request, atomic): through the fast transport when it is on and reaches
        objects at this endpoint, else through the SDK; retried and mapped as a GET's, with a write's 404 a missing
        bucket (a 404 that does not say so is settled first: see ``_settle_put_404``)."""
        bucket, key = self._split(uri)
        body = bytes(data)
        facts = self._facts
        fast = self._fast.get() if facts.fast_reaches_objects is not False and facts.fast_writes is not False \
            else None
        via = ["sdk" if fast is None or not fast.writes else "fast"]  # this blob's transport

        def attempt(_attempt: Attempt) -> None:
            if via[0] == "sdk":
                self._put_once(bucket, key, body)
            else:
                fast.put(bucket, key, body, self)
                facts.fast_writes = True

        def classify(exc: BaseException) -> BaseException | None:
            if via[0] == "sdk":
                return self._sdk_error(exc, self, uri, writing=True)
            mapped = obstore_error(exc, self, uri, writing=True)
            if isinstance(mapped, StoreNotAvailable) and isinstance(obstore_error(exc, self, uri),
                                                                    (Unconfirmed404, NotFoundInStore)):
                return self._settle_put_404(bucket, via, mapped)
            refusal = write_refusal(exc) if facts.fast_writes is not True else None  # none succeeded yet
            if refusal is not None:
                return self._fast_cannot_write(via, f"it refused a PUT as obstore makes it: {refusal}")
            if isinstance(mapped, FastUnsupported):
                via[0] = "sdk"
                return TransientError(f"{mapped}; next attempt through the SDK", immediate=True)
            if isinstance(mapped, TransientError) and mapped.throttled:
                via[0] = "sdk"  # obstore does not show Retry-After; the SDK does
            return mapped

        self.retry.run(attempt, classify, self, uri)

    def _settle_put_404(self, bucket: str, via: list[str], missing_bucket: StoreNotAvailable) -> BaseException:
        """A fast PUT answered 404 without naming the bucket: the bucket is missing (``missing_bucket``), or, when
        it exists, the fast transport cannot write at this endpoint (an emulator serving its XML API on another
        host name): ``_fast_cannot_write``."""
        try:
            exists = bucket in self._facts.buckets or self._bucket_exists(bucket)
        except BitstoreError as error:
            return error
        except Exception as error:  # noqa: BLE001 - the check failed: retried if it may pass next time
            checked = self._sdk_error(error, self, f"{self.KIND}://{bucket}/")
            if isinstance(checked, TransientError):
                return TransientError(f"{missing_bucket}; the bucket check failed: {checked}")
            return checked
        if not exists:
            return missing_bucket
        with self._facts.lock:
            self._facts.buckets.add(bucket)
        return self._fast_cannot_write(via, f"it answered 404 to a PUT in a {self.BUCKET_WORD} that exists")

    def _fast_cannot_write(self, via: list[str], evidence: str) -> BaseException:
        """The endpoint does not take the fast transport's writes (a GCS emulator serves no XML-API upload): this
        store writes through the SDK in this process (logged once), on ``fast`` too. A write has no "missing" to
        get wrong: the SDK's answer is the one to give, as every write was the SDK's before writes were fast."""
        self._facts.fast_writes = False
        where = self.endpoint_label or "this endpoint"
        why = f"the fast transport cannot write at {where} ({evidence})"
        log_once(logger, logging.WARNING, "fast-transport", f"unwritable:{where}",
                 f"{self.name}: {why}; writing through the SDK for this store in this process")
        via[0] = "sdk"
        return TransientError(f"{why}; next attempt through the SDK", immediate=True)

    def put_stream(self, uri: Any, stream: IO[bytes]) -> None:
        """Upload what the seekable ``stream`` reads from its current position, in parts (never held whole);
        each attempt starts again from that position."""
        bucket, key = self._split(uri)
        start = stream.tell()

        def attempt(_attempt: Attempt) -> None:
            stream.seek(start)
            self._put_stream_once(bucket, key, stream)

        self.retry.run(attempt, lambda exc: self._sdk_error(exc, self, uri, writing=True), self, uri)

    def delete(self, uri: Any) -> None:
        """Remove the object through the SDK; one that is not there is fine, a bucket that is not there is
        ``StoreNotAvailable``."""
        bucket, key = self._split(uri)
        self.retry.run(lambda _attempt: self._delete_once(bucket, key),
                       lambda exc: self._sdk_error(exc, self, uri, writing=True), self, uri)

    # --- listing: the raw hook ``Store.list_names`` ------------------------------------------------------
    # A backend lists through ``_list_page_once`` (one SDK request for one page, given the page token the
    # last one returned) and, on the fast transport, through its ``_fast`` transport's ``ListPager``. Each page
    # is one retried call of ``RetryPolicy``, errors mapped as a GET's; a 404 of a listing is never "missing":
    # the bucket is checked (``StoreNotAvailable`` when it is not there, else ``FetchFailed``). A page that does
    # not move past the one before it is ``FetchFailed`` (a listing is never silently short, nor endless).
    def list_names(self, prefix: str, *, start_after: str | None = None) -> Iterator[Listed]:
        """The objects directly under ``prefix`` (``<KIND>://bucket/folder/``), names relative to it, ascending,
        with their sizes, ``list_page_size`` names per request."""
        bucket, folder = self._split_prefix(prefix)
        cut = len(folder)
        last = None if start_after is None else folder + start_after
        pager = [self._pager(bucket, folder, last)]

        def classify(exc: BaseException) -> BaseException | None:
            verdict = self._list_verdict(exc, bucket, prefix, pager[0].via)
            if not isinstance(verdict, FastUnsupported):
                return verdict
            where = self.endpoint_label or "this endpoint"
            if self.transport == "fast":
                return StoreNotAvailable(self, f"the fast transport cannot list at {where} ({verdict}); use "
                                               "transport='auto' or 'sdk'")
            log_once(logger, logging.WARNING, "fast-list", where,
                     f"{self.name}: the fast transport cannot list at {where} ({verdict}): listing through the SDK")
            pager[0] = self._sdk_pager(bucket, folder, last)
            return TransientError(str(verdict), immediate=True)

        floor = last  # names up to it are left out (a service may ignore the offset asked for)
        returned = None
        while True:
            page = self.retry.run(lambda attempt: pager[0].next_page(attempt), classify, self, prefix)
            if page is None:
                return
            for name, size in page:
                if returned is not None and name <= returned:
                    raise FetchFailed(self, prefix, f"the listing went back from {returned!r} to {name!r}")
                returned = name
                if floor is not None and name <= floor:
                    continue
                last = name
                rest = name[cut:]
                if rest and "/" not in rest and name.startswith(folder):
                    yield Listed(rest, None if size is None else int(size))

    def lists_remotely(self) -> bool:
        return True

    def _split_prefix(self, prefix: Any) -> tuple[str, str]:
        """``(bucket, folder)`` of a listed prefix: ``<KIND>://bucket/`` or ``<KIND>://bucket/some/folder/``."""
        if not isinstance(prefix, str):
            raise InvalidURI(self, prefix, hint=self.URI_HINT)
        bucket, key = self._split(prefix + "_")  # a prefix is a uri with nothing after it
        return bucket, key[:-1]

    def _pager(self, bucket: str, folder: str, after: str | None) -> Any:
        fast = self._fast.get() if self._facts.fast_reaches_objects is not False else None
        if fast is None:
            return self._sdk_pager(bucket, folder, after)
        return fast.pager(bucket, folder, after, self.list_page_size, self)

    def _sdk_pager(self, bucket: str, folder: str, after: str | None) -> _SdkPager:
        return _SdkPager(lambda token: self._list_page_once(bucket, folder, after, token, self.list_page_size),
                         self, f"{self.KIND}://{bucket}/{folder}")

    def _list_verdict(self, exc: BaseException, bucket: str, prefix: str, via: str) -> BaseException:
        """A listing's error mapped: a 404 is never "missing" (see above). ``FastUnsupported`` when the fast
        transport cannot list here: a 404 in a bucket that exists, as an emulator answers obstore's XML listing."""
        mapped = (obstore_error if via == "fast" else self._sdk_error)(exc, self, prefix)
        # An emulator may answer obstore's listing of a missing bucket with a 500: the bucket is checked once.
        transient = via == "fast" and isinstance(mapped, TransientError) and bucket not in self._facts.buckets
        if not (transient or isinstance(mapped, (NotFoundInStore, Unconfirmed404))):
            return mapped
        try:
            exists = bucket in self._facts.buckets or self._bucket_exists(bucket)
        except BitstoreError as error:
            return error
        except Exception as error:  # noqa: BLE001 - the check failed: retried if it may pass next time
            checked = self._sdk_error(error, self, prefix)
            if isinstance(checked, TransientError):
                return TransientError(f"{mapped}; the bucket check failed: {checked}")
            return FetchFailed(self, prefix, f"the listing answered 404 and the bucket check failed: {cause_of(error)}")
        if exists:
            with self._facts.lock:
                self._facts.buckets.add(bucket)
            if transient:
                return mapped
        else:
            where = self.endpoint_label
            return StoreNotAvailable(self, f"bucket {bucket!r} does not exist{f' at {where}' if where else ''}")
        if via == "fast":
            return FastUnsupported(f"it answered 404 to a listing of a bucket that exists: {mapped}")
        return FetchFailed(self, prefix, f"the listing answered 404 in a bucket that exists ({mapped})")

    def _list_page_once(self, bucket: str, folder: str, after: str | None, token: str | None,
                        size: int) -> tuple[list[tuple[str, int | None]], str | None]:
        """One SDK listing request: ``([(name, size), ...], the next page's token or None)``, names after
        ``after`` under ``folder`` (the service may also return deeper names and names up to ``after``)."""
        raise NotImplementedError(f"{type(self).__name__} cannot list")

    def _put_stream_once(self, bucket: str, key: str, stream: IO[bytes]) -> None:
        """One streamed upload attempt."""
        raise NotImplementedError(f"{type(self).__name__} does not implement 'put_stream'")

    def _delete_once(self, bucket: str, key: str) -> None:
        """One SDK DELETE attempt (an object already gone is not an error)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement 'delete'")

    @property
    def endpoint_label(self) -> str | None:
        """The endpoint this store talks to, when it is not the cloud's default (for messages)."""
        return None

    def _check_attempt(self) -> Attempt:
        """The time a check that settles an answer may take: one read-idle timeout in all."""
        clock = self.retry.clock
        return Attempt(0, clock() + self.timeout[1], clock)

    @abstractmethod
    def _get_once(self, bucket: str, key: str, uri: str, attempt: Attempt) -> bytes:
        """One SDK GET attempt, checked against ``max_blob_bytes`` and the announced size, within the deadline."""

    @abstractmethod
    def _sdk_has(self, bucket: str, key: str) -> bool:
        """Whether the SDK sees the object (a metadata request); raises a mapped error when it cannot tell."""

    @abstractmethod
    def _bucket_exists(self, bucket: str) -> bool:
        """Whether the bucket exists; raises when that cannot be told (e.g. no permission to ask)."""

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
        self._facts = _Facts()

    @abstractmethod
    def _connect(self) -> Any:
        """This process's connection: a named tuple with at least ``client``."""

    def _make_fast(self) -> Any:
        if resolve_transport(self.transport) == "sdk":
            return None

        if not _fast.usable():
            log_once(logger, logging.INFO, "fast-transport", "forked",
                     "obstore cannot run in a process forked after it ran in its parent: using the SDK here")
            return None
        conn = self._fast_conn()
        try:
            return self._build_fast(conn)
        except Exception as exc:
            if self.transport == "fast":
                raise StoreNotAvailable(self, f"the fast transport could not start: {cause_of(exc)}") from None
            log_once(logger, logging.WARNING, "fast-transport", cause_of(exc),
                     f"the fast transport could not start ({cause_of(exc)}): using the SDK")
            return None

    def _fast_conn(self) -> Any:
        """What the fast transport is built from: this process's SDK connection (a backend may read its
        credentials without the SDK where that gives the same answer)."""
        return self._conn.get()

    @abstractmethod
    def _build_fast(self, conn: Any) -> Any:
        """The fast transport (a ``_fast`` transport) using ``conn``'s credentials."""

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        del state["_conn"], state["_fast"], state["_facts"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._init_process_state()

    # --- inspect and stream: HEAD and ranged GETs through the SDK, retried and mapped like GET ----------
    def head(self, uri: Any) -> int:
        """The object's size by HEAD (no body read). "Missing" only on an answer about the object: a 404 HEAD has
        no body to say which, so it is settled like a GET's (the bucket is checked, once per process)."""
        bucket, key = self._split(uri)
        return self.retry.run(lambda attempt: self._head_once(bucket, key, uri, attempt),
                              lambda exc: self._sdk_verdict(exc, bucket, key, uri), self, uri)

    def open(self, uri: Any) -> io.BufferedReader:
        """The object as a seekable binary file read by ranged GETs, each retried on its own (``max_blob_bytes``
        does not apply: nothing is held whole). Raises ``NotFoundInStore`` at once when the object does not exist."""
        from ._streams import CHUNK, RangeReader

        bucket, key = self._split(uri)
        size = self.head(uri)

        def read_range(start: int, stop: int) -> bytes:
            return self.retry.run(
                lambda attempt: read_exactly(self._range_once(bucket, key, start, stop, attempt), stop - start),
                lambda exc: self._sdk_verdict(exc, bucket, key, uri), self, uri)

        return io.BufferedReader(RangeReader(read_range, size, uri), buffer_size=CHUNK)

    def _sdk_verdict(self, exc: BaseException, bucket: str, key: str, uri: Any) -> BaseException:
        mapped = self._sdk_error(exc, self, uri)
        if isinstance(mapped, Unconfirmed404):
            return self._settle_404(bucket, key, uri, ["sdk"], mapped)
        return mapped

    def _head_once(self, bucket: str, key: str, uri: str, attempt: Attempt) -> int:
        """One HEAD attempt: the object's size."""
        raise NotImplementedError(f"{type(self).__name__} does not implement HEAD")

    def _range_once(self, bucket: str, key: str, start: int, stop: int, attempt: Attempt) -> bytes:
        """One ranged GET attempt: bytes ``[start, stop)`` of the object."""
        raise NotImplementedError(f"{type(self).__name__} does not implement ranged reads")


# --- the fields every cloud tier of a store spec declares (s3.py, gcs.py add their own) ---------------
TIMEOUTS = (
    Field("connect_timeout", NUMBER, "seconds to connect", 5.0, SECONDS, default=DEFAULT_TIMEOUT[0]),
    Field("read_timeout", NUMBER, "seconds a read may stay idle", 20.0, SECONDS, default=DEFAULT_TIMEOUT[1]),
)
CLOUD = (
    *RETRY,
    *TIMEOUTS,
    Field("transport", str, "GET, list and PUT data path: `auto`, `sdk` or `fast` (obstore)", "sdk",
          one_of(TRANSPORTS), default="auto"),
    MAX_BLOB_BYTES,
    Field("max_connections", int, "HTTP connection pool size", 16, POSITIVE, default=DEFAULT_POOL),
    Field("anonymous", bool, "unsigned requests (a public bucket); no credentials with it", True),
)


def cloud_options(tier: Mapping[str, Any]) -> dict[str, Any]:
    """The ``CloudRaw`` keyword arguments the ``CLOUD`` fields give: retry, limits, pool, timeouts, transport."""
    defaults = {f.name: f.default for f in CLOUD}
    out: dict[str, Any] = {
        "retry": RetryPolicy(**tier["retry"]) if "retry" in tier else None,
        "max_blob_bytes": tier.get("max_blob_bytes"),
        "transport": tier.get("transport", defaults["transport"]),
    }
    if "max_connections" in tier:
        out["max_pool_connections"] = tier["max_connections"]
    if "connect_timeout" in tier or "read_timeout" in tier:
        out["timeout"] = tuple(tier.get(k, defaults[k]) for k in ("connect_timeout", "read_timeout"))
    return out
