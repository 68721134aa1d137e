"""``HTTPRaw``: blobs read by GET from ``http(s)://`` URLs (a CDN, a blob API, another bitstore's ``serve``).

Answers, the same on both transports: 200 is the blob (a body shorter than its Content-Length is a failed
attempt, never a truncated blob); 404 and 410 are missing; 401 and 403 are ``StoreNotAvailable`` (a configuration
failure, not retried); 429 and 503 are throttling (their ``Retry-After`` honoured, capped, and shown to the tier's
limiter); other 5xx, resets and timeouts are retried by the one ``RetryPolicy``, then ``FetchFailed``. Errors are
mapped once, in ``_errors``.

Header values are secrets: inline ``headers`` are masked in reprs (they travel with a pickled store, as inline
credentials do); ``headers_env`` names environment variables read in each process, never pickled. Neither appears
in a message or a log line. Plain ``http://`` only to a loopback host or with ``allow_http=True``. Read-only.

Transports: ``sdk`` is urllib3 (a pooled ``PoolManager`` per process, rebuilt after fork, dropped when pickled);
``fast`` is obstore's ``HTTPStore`` (Rust, and a route on the event-loop engine), for URLs whose path it can
address as given (no query string, plain characters); ``auto`` takes ``fast`` where it can and ``sdk`` elsewhere.
obstore does not show ``Retry-After``: after a throttling answer a blob's next attempts go through urllib3.
"""
from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from ..core.store import Store
from ..engine.routes import Fallback, Route
from ..ground.errors import NotFoundInStore, SpecError, StoreNotAvailable
from ..ground.fields import COMMON, MAX_BLOB_BYTES, POSITIVE, RETRY, Build, Field, TierType, env_name, keyname, one_of
from ..ground.log import cause_of, log_once
from ..ground.retry import Attempt, RetryPolicy, TransientError, take_first_attempt
from . import _fast, _redact
from ._body import read_body
from ._client import TRANSPORTS, ProcessLocal, require, resolve_transport
from ._cloud import DEFAULT_POOL, DEFAULT_TIMEOUT, TIMEOUTS
from ._errors import FastUnsupported, HTTPStatusError, check_size, config_error, http_error, http_fast_error, mask

__all__ = ["HTTPRaw"]

logger = logging.getLogger(__name__)

_URI = re.compile(r"https?://[^/?#\s]+[^\s#]*", re.IGNORECASE)
#: A path obstore sends exactly as written: plain characters, no empty or dot segments, no query string.
_FAST_PATH = re.compile(r"(?:/[A-Za-z0-9_~.-]+)+")
#: An error body this small is read so the connection goes back to the pool; a larger one closes it.
_DRAIN_LIMIT = 64 * 1024


class _Hidden:
    """A header value: itself where it is sent, ``***`` wherever it is shown."""

    __slots__ = ("value",)

    def __init__(self, value: str):
        self.value = value

    def __repr__(self) -> str:
        return "'***'"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Hidden) and other.value == self.value

    def __hash__(self) -> int:
        return hash(self.value)

    def __reduce__(self):
        return _Hidden, (self.value,)


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` is this machine (``localhost``, 127.0.0.0/8, ::1)."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def http_refused(url: str, allow_http: bool) -> str | None:
    """Why ``url`` may not be fetched as configured (plain http to another host without ``allow_http``), or None."""
    parts = urlsplit(url)
    if parts.scheme.lower() == "http" and not allow_http and not is_loopback(parts.hostname):
        return (f"plain http:// to {parts.hostname} sends headers and blobs unencrypted; use https://, or "
                "allow_http=True (spec: allow_http = true) if that is intended")
    return None


class HTTPRaw(Store):
    """Blobs at ``http(s)://`` URLs, read by GET (see the module doc for what each answer means).

    ``headers``: sent with every request (values masked in reprs, messages and logs). ``headers_env``:
    ``{header: ENV_VAR}``, read in each process when its client is built (never pickled). ``timeout``:
    ``(connect, read_idle)`` seconds (or one number for both); the overall deadline per blob is ``retry.deadline``.
    ``allow_http``: plain http:// to a host that is not this machine. ``transport``: ``auto``, ``fast`` (obstore)
    or ``sdk`` (urllib3).
    """

    URI_HINT = "https://host/path/to/blob"
    KIND = "http"

    def __init__(self, headers: Mapping[str, str] | None = None, *, headers_env: Mapping[str, str] | None = None,
                 timeout: float | tuple[float, float] = DEFAULT_TIMEOUT, allow_http: bool = False,
                 retry: RetryPolicy | dict | int | None = None, max_blob_bytes: int | None = None,
                 max_connections: int = DEFAULT_POOL, transport: str = "auto", name: str | None = None):
        super().__init__(name=name)
        if transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {', '.join(TRANSPORTS)}, not {transport!r}")
        self._inline = {str(k): _Hidden(str(v)) for k, v in _header_table(headers, "headers").items()}
        self.headers_env = {str(k): env_name(v, f"headers_env.{k}", _value_error)
                            for k, v in _header_table(headers_env, "headers_env").items()}
        self.timeout = (float(timeout), float(timeout)) if isinstance(timeout, (int, float)) else tuple(timeout)
        self.allow_http = bool(allow_http)
        self.retry = RetryPolicy.coerce(retry)
        self.max_blob_bytes = max_blob_bytes
        self.max_connections = max_connections
        self.transport = transport
        self._init_process_state()

    @property
    def headers(self) -> dict[str, Any]:
        """The headers sent, values masked (``{"Authorization": '***'}``)."""
        return {**self._inline, **{k: _Hidden("") for k in self.headers_env}}

    def _default_name(self) -> str:
        return "http"

    def is_valid(self, uri: Any) -> bool:
        return isinstance(uri, str) and _URI.fullmatch(uri) is not None

    def put(self, uri: Any, data: bytes) -> None:
        raise NotImplementedError(f"{self.name}: an http tier is read-only ({type(self).__name__} does not implement "
                                  "the 'put' method)")

    # --- GET ---------------------------------------------------------------------------------------
    def get(self, uri: Any) -> bytes:
        self._check_valid(uri)
        self._check_allowed(uri)
        fast = self._fast_for(uri)
        via = ["fast" if fast is not None else "sdk"]

        def attempt(a: Attempt) -> Any:
            if via[0] == "sdk":
                return self._sdk_get(uri, a)
            origin, path = _fast_address(uri)
            return fast.get(origin, path, self, uri, a)

        def classify(exc: BaseException) -> BaseException | None:
            mapped = (http_fast_error if via[0] == "fast" else http_error)(exc, self, uri, self._secrets())
            if isinstance(mapped, FastUnsupported):
                via[0] = "sdk"
                return TransientError(f"{mapped}; next attempt through urllib3", immediate=True)
            if via[0] == "fast" and isinstance(mapped, TransientError) and mapped.throttled:
                via[0] = "sdk"  # obstore does not show Retry-After; urllib3 does
            return mapped

        made = take_first_attempt(uri)  # the event loop made the first attempt, through obstore
        return self.retry.run(attempt, classify, self, uri, made if via[0] == "fast" else None)

    def _check_allowed(self, uri: str) -> None:
        refused = http_refused(uri, self.allow_http)
        if refused:
            raise config_error(self, refused)

    def _fast_for(self, uri: str) -> Any:
        """The obstore transport for ``uri``, or None (urllib3): ``sdk``, a URL obstore cannot address as written
        (``auto``; explicit ``fast`` refuses it), a forked process, obstore missing (``auto``)."""
        if resolve_transport(self.transport) == "sdk":
            return None
        if _fast_address(uri) is None:
            if self.transport == "fast":
                raise StoreNotAvailable(self, "the fast transport (obstore) cannot address this URL as written (a "
                                              "query string or characters it would re-encode); use "
                                              "transport='auto' or 'sdk'")
            return None
        return self._fast.get()

    def _sdk_get(self, uri: str, attempt: Attempt) -> bytes:
        response = self._request("GET", uri)
        try:
            if response.status != 200:
                raise _status_of(response)
            length = _content_length(response)
            check_size(self, uri, length, self.max_blob_bytes)
            encoded = response.headers.get("Content-Encoding", "identity").lower() not in ("", "identity")
            return read_body(response, None if encoded else length, attempt, self, uri, self.max_blob_bytes,
                             decode_content=encoded)
        finally:
            _release(response)

    def _request(self, method: str, uri: str) -> Any:
        urllib3 = require("urllib3", "http")
        client = self._client.get()
        return client.pool.request(method, uri, headers=client.headers, preload_content=False,
                                   timeout=urllib3.Timeout(connect=self.timeout[0], read=self.timeout[1]),
                                   retries=client.retries)

    # --- the event loop's route (obstore's async GET) -------------------------------------------------
    def async_route(self) -> Route | None:
        """The event-loop engine's route to this store's GET through obstore's async API, when the fast transport is
        usable here and this store's reading code is ``HTTPRaw``'s own; else None (threads)."""
        cls = type(self)
        if cls.get is not HTTPRaw.get or cls._fetch is not Store._fetch or cls._result is not Store._result:
            return None
        if resolve_transport_quiet(self.transport) != "fast" or not _fast.usable():
            return None
        try:
            fast = self._fast.get()
        except Exception:  # noqa: BLE001 - the store's own path says what is wrong, key by key
            return None
        return Route(self, functools.partial(self._attempt_async, fast), lambda: True)

    async def _attempt_async(self, fast: Any, uri: Any, views: bool) -> Any:
        """The loop's first attempt of ``get(uri)``: the bytes, a ``NotFoundInStore`` the server's 404/410 said,
        else ``Fallback`` (with the attempt made, when one was) for the store's own path to go on from."""
        if not self.is_valid(uri) or http_refused(uri, self.allow_http):
            raise Fallback
        address = _fast_address(uri)
        if address is None:
            raise Fallback
        started = self.retry.clock()
        try:
            data = await fast.get_async(address[0], address[1], self, uri, views)
        except (asyncio.CancelledError, KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - obstore's Rust panics are BaseExceptions
            if not isinstance(exc, Exception):
                raise Fallback from None
            mapped = http_fast_error(exc, self, uri, self._secrets())
            if type(mapped) is NotFoundInStore:
                return mapped
            raise Fallback((uri, exc, started)) from None
        return data

    # --- inspect ---------------------------------------------------------------------------------------
    def head(self, uri: Any) -> int:
        """The blob's size by HEAD (a server that does not allow HEAD, 405/501, is asked by GET instead)."""
        self._check_valid(uri)
        self._check_allowed(uri)

        def attempt(a: Attempt) -> int:
            response = self._request("HEAD", uri)
            try:
                if response.status in (405, 501):
                    return len(self._sdk_get(uri, a))
                if response.status != 200:
                    raise _status_of(response)
                length = _content_length(response)
                return len(self._sdk_get(uri, a)) if length is None else length
            finally:
                _release(response)

        return self.retry.run(attempt, lambda exc: http_error(exc, self, uri, self._secrets()), self, uri)

    # --- per-process state --------------------------------------------------------------------------
    def _init_process_state(self) -> None:
        self._client: ProcessLocal[_Client] = ProcessLocal(self._connect)
        self._fast: ProcessLocal[Any] = ProcessLocal(self._make_fast)

    def _resolved_headers(self) -> dict[str, str]:
        import os

        headers = {k: v.value for k, v in self._inline.items()}
        for header, var in self.headers_env.items():
            value = os.environ.get(var)
            if value is None:
                raise StoreNotAvailable(self, f"environment variable {var} (headers_env {header}) is not set")
            headers[header] = value
        return headers

    def _secrets(self) -> list[str]:
        """The header values of this process (to mask in messages); none when they cannot be read."""
        try:
            return [v for v in self._client.get().headers.values() if v]
        except Exception:  # noqa: BLE001 - no client, no values sent
            return [v.value for v in self._inline.values() if v.value]

    def _connect(self) -> _Client:
        urllib3 = require("urllib3", "http")
        _redact.install()
        headers = self._resolved_headers()
        retries = urllib3.Retry(total=None, connect=0, read=0, other=0, status=0, redirect=5,
                                raise_on_redirect=True, raise_on_status=False, respect_retry_after_header=False,
                                remove_headers_on_redirect=[*headers, "Authorization", "Cookie",
                                                            "Proxy-Authorization"])
        pool = urllib3.PoolManager(num_pools=32, maxsize=self.max_connections, block=False)
        return _Client(pool, headers, retries)

    def _make_fast(self) -> Any:
        if not _fast.usable():
            log_once(logger, logging.INFO, "fast-transport", "forked",
                     "obstore cannot run in a process forked after it ran in its parent: using urllib3 here")
            return None
        headers = self._client.get().headers
        try:
            return _fast.HTTPFast(headers, max_blob_bytes=self.max_blob_bytes, timeout=self.timeout,
                                  deadline=self.retry.deadline)
        except Exception as exc:
            reason = mask(cause_of(exc), list(headers.values()))
            if self.transport == "fast":
                raise StoreNotAvailable(self, f"the fast transport could not start: {reason}") from None
            log_once(logger, logging.WARNING, "fast-transport", reason,
                     f"the fast transport could not start ({reason}): using urllib3")
            return None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        del state["_client"], state["_fast"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._init_process_state()


class _Client:
    """This process's urllib3 pool, the header values it sends, and its redirect policy."""

    __slots__ = ("pool", "headers", "retries")

    def __init__(self, pool: Any, headers: dict[str, str], retries: Any):
        self.pool, self.headers, self.retries = pool, headers, retries

    def __repr__(self) -> str:
        return f"<_Client headers={sorted(self.headers)}>"


def resolve_transport_quiet(transport: str) -> str:
    """``resolve_transport`` without raising when obstore is missing (explicit ``fast`` then errs on ``get``)."""
    try:
        return resolve_transport(transport)
    except ImportError:
        return "sdk"


@functools.lru_cache(maxsize=4096)
def _fast_address(uri: str) -> tuple[str, str] | None:
    """``(origin, path)`` for obstore, or None when obstore would not send this URL's path as written."""
    parts = urlsplit(uri)
    if parts.query or parts.fragment or not _FAST_PATH.fullmatch(parts.path):
        return None
    if any(segment in (".", "..") for segment in parts.path.split("/")):
        return None
    return f"{parts.scheme.lower()}://{parts.netloc}", parts.path[1:]


def _status_of(response: Any) -> HTTPStatusError:
    from ._errors import retry_after_of

    return HTTPStatusError(response.status, None, response.reason or "",
                           retry_after_of(response.headers.get("Retry-After")))


def _content_length(response: Any) -> int | None:
    value = response.headers.get("Content-Length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _release(response: Any) -> None:
    """Give the connection back to the pool when what is left of the body is small, else close it."""
    length = _content_length(response)
    try:
        if response.status != 200 and length is not None and length <= _DRAIN_LIMIT:
            response.drain_conn()
        else:
            response.close()
    except Exception:  # noqa: BLE001 - a connection that fails here is dropped, nothing to report
        response.close()
    response.release_conn()


def _header_table(value: Any, what: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"{what} must be a dict of header names to values, not {type(value).__name__}")
    for name in value:
        if not isinstance(name, str) or not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):
            raise ValueError(f"{what}: {keyname(name)!r} is not an HTTP header name")
    return dict(value)


def _value_error(message: str, key: str) -> None:
    raise ValueError(f"{key}: {message}")


# --- the http tier of a store spec (``bitstore.spec`` validates and builds through this declaration) ---------
_HEADERS_ENV = ("must be a table mapping header names to environment variable names, e.g. "
                "{ Authorization = \"MY_TOKEN_VAR\" }")


def _headers_env(env: Mapping[str, Any], key: str, fail: Any) -> dict:
    if not env:
        fail(_HEADERS_ENV, key)
    for header, var in env.items():
        if not isinstance(header, str) or not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", header):
            fail("not an HTTP header name", f"{key}.{keyname(header)}")
        env_name(var, f"{key}.{header}", fail)
    return dict(env)


def _build_tier(tier: dict, build: Build) -> HTTPRaw:
    if build.uri_mode:
        raise SpecError("an http tier serves keys (sha1), not whole URIs", key=build.where, source=build.source)
    if tier.get("role") == "cache":
        raise SpecError("an http tier is read-only: it cannot be the cache tier", key=f"{build.where}.role",
                        source=build.source)
    refused = http_refused(tier["prefix"], tier.get("allow_http", False))
    if refused:
        raise SpecError(refused, key=f"{build.where}.url", source=build.source)
    for header, var in tier.get("headers_env", {}).items():
        build.env(var, f"{build.where}.headers_env.{header}")  # set now, or a clear SpecError
    prefix = tier["prefix"]
    template = next((t for t in ("{sha1}", "{sha256}") if t in prefix), None)
    sample = "0" * (64 if template == "{sha256}" else 40)
    sample_url = prefix.replace(template, sample) if template else prefix + sample
    if tier.get("transport") == "fast" and _fast_address(sample_url) is None:
        raise SpecError("the fast transport (obstore) cannot address this URL as written (a query string or "
                        "characters it would re-encode); use transport = \"auto\" or \"sdk\"",
                        key=f"{build.where}.transport", source=build.source)
    defaults = {f.name: f.default for f in TIMEOUTS}
    timeout = tuple(tier.get(k, defaults[k]) for k in ("connect_timeout", "read_timeout"))
    return HTTPRaw(headers_env=tier.get("headers_env"), timeout=timeout, allow_http=tier.get("allow_http", False),
                   retry=RetryPolicy(**tier["retry"]) if "retry" in tier else None,
                   max_blob_bytes=tier.get("max_blob_bytes"), transport=tier.get("transport", "auto"),
                   max_connections=tier.get("max_connections", DEFAULT_POOL), **build.raw_name(tier))


TIER = TierType("http", (
    Field("url", str, "`https://host/path/` (the key appended) or a template with `{sha1}` where the key goes",
          "https://blobs.example.com/v1/files?hash={sha1}"),
    Field("prefix", str, "the same as `url`", "https://blobs.example.com/blobs/"),
    *(f for f in COMMON if f.name != "read"),  # never the cache: read-only
    *RETRY,
    *TIMEOUTS,
    Field("transport", str, "GET data path: `auto`, `sdk` (urllib3) or `fast` (obstore)", "sdk", one_of(TRANSPORTS),
          default="auto"),
    MAX_BLOB_BYTES,
    Field("max_connections", int, "HTTP connection pool size", 16, POSITIVE, default=DEFAULT_POOL),
    Field("allow_http", bool, "plain http:// to a host other than this machine", True, default=False),
    Field("headers_env", Mapping, "request headers from environment variables, `{ Authorization = \"VAR\" }`",
          {"Authorization": "MY_TOKEN_VAR"}, _headers_env, reference="env", wrong_kind=_HEADERS_ENV),
), _build_tier, retry=True, exclusive=(("url", "prefix"),))
