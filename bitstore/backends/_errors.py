"""The one place that maps S3, GCS, Azure and obstore errors to bitstore's: missing, unavailable, failed or transient.

Each ``*_error(exc, store, uri, writing=False)`` returns the exception ``RetryPolicy.run`` should act on:
a ``BitstoreError`` (raised at once) or a ``TransientError`` (retried, then ``FetchFailed``). Messages are
built from status codes and error codes, and any URL in them loses its query string (signed URLs carry
credentials), so no secret reaches a message or a log line.
"""
from __future__ import annotations

import re
import time
from typing import Any

from ..ground.errors import BitstoreError, BlobTooLarge, FetchFailed, NotFoundInStore, StoreNotAvailable, short
from ..ground.retry import TransientError

__all__ = ["ShortRead", "HTTPStatusError", "Unconfirmed404", "check_size", "read_exactly", "status_error",
           "s3_error", "gcs_error", "azure_error", "obstore_error", "retry_after_of", "config_error",
           "FastUnsupported", "http_error", "http_fast_error", "mask", "range_refusal", "write_refusal"]

# Error codes that answer "this object does not exist" (S3 XML ``NoSuchKey``; GCS JSON reason ``notFound``
# unless its message is about the bucket; Azure ``BlobNotFound``) and "this bucket (container) does not exist".
# A 404 with neither is not an answer about the object: it may be a route the endpoint does not serve
# (``Unconfirmed404``, settled by the store).
_OBJECT_MISSING_CODES = {"NoSuchKey", "notFound", "NoSuchObject", "BlobNotFound"}
_BUCKET_MISSING_CODES = {"NoSuchBucket", "ContainerNotFound", "ContainerBeingDeleted"}
_BUCKET_MESSAGE = re.compile(r"bucket[^.]*(does not exist|not found)", re.I)
# Credentials missing, expired or rejected: no retry will fix them.
_AUTH_CODES = {
    "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken",
    "TokenRefreshRequired", "AllAccessDisabled", "AccountProblem", "InvalidSecurity", "UnauthorizedAccess",
    "forbidden", "unauthorized", "AuthorizationHeaderMalformed",
    # Azure Storage
    "AuthenticationFailed", "AuthorizationFailure", "AuthorizationPermissionMismatch", "AuthorizationSourceIPMismatch",
    "AuthorizationProtocolMismatch", "AuthorizationResourceTypeMismatch", "AuthorizationServiceMismatch",
    "InsufficientAccountPermissions", "InvalidAuthenticationInfo", "NoAuthenticationInformation", "AccountIsDisabled",
    "KeyBasedAuthenticationNotPermitted",
}
# Codes that say "slow down": the service refused for load. A subset of the retryable codes below; only these
# back a tier's limiter off and send the fast transport's next attempts through the SDK (to see Retry-After).
_SLOW_DOWN_CODES = {
    "SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "RequestThrottled", "TooManyRequests",
    "rateLimitExceeded", "EC2ThrottledException", "BandwidthLimitExceeded", "ServerBusy",
}
_THROTTLING_CODES = {
    "SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "RequestThrottled", "TooManyRequests",
    "ServiceUnavailable", "InternalError", "RequestTimeout", "RequestTimeTooSkewed", "rateLimitExceeded",
    "backendError", "EC2ThrottledException", "BandwidthLimitExceeded", "PriorRequestNotComplete",
    "ServerBusy", "OperationTimedOut",
}
#: Codes for an object that exists but cannot be read without a restore (S3 Glacier, Azure's archive tier).
_ARCHIVED_CODES = {"InvalidObjectState", "BlobArchived"}
_QUERY = re.compile(r"(\w+://[^\s?'\"]*)\?[^\s'\"]*")
#: A path with a query, as HTTP libraries quote a request ("... with url: /container/key?sv=...&sig=...").
_PATH_QUERY = re.compile(r"((?:^|[\s'\"(=])/[^\s?'\"]*)\?(?!<query removed>)[^\s'\"]*")


class ShortRead(Exception):
    """The body ended before its Content-Length: the connection was cut (retried)."""


class HTTPStatusError(Exception):
    """A response a backend read itself that was not a success (mapped by ``status_error``)."""

    def __init__(self, status: int, code: str | None = None, message: str = "", retry_after: float | None = None):
        self.status, self.code, self.message, self.retry_after = status, code, message, retry_after
        super().__init__(f"HTTP {status} {code or ''} {message}".strip())


class Unconfirmed404(Exception):
    """A 404 that says neither "no such object" nor "no such bucket" (emulators, proxies, a route the endpoint
    does not serve). Never raised to users: the store settles it (is the bucket there? can the SDK read the
    object?) before answering missing."""

    def __init__(self, detail: str):
        super().__init__(detail)


def retry_after_of(value: Any) -> float | None:
    """Seconds from a ``Retry-After`` header value (delta-seconds or an HTTP date), None when absent or unreadable."""
    if value is None:
        return None
    text = str(value).strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        from email.utils import parsedate_to_datetime

        return max(0.0, parsedate_to_datetime(text).timestamp() - time.time())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def clean(text: Any, limit: int = 300) -> str:
    """A message safe to show: URL query strings (signatures, tokens: of full URLs and of request paths) and
    secret values in the forms ``_redact`` knows removed, length capped."""
    from ._redact import redact

    text = _PATH_QUERY.sub(r"\1?<query removed>", _QUERY.sub(r"\1?<query removed>", str(text)))
    return short(redact(text), limit)


def check_size(store: Any, uri: Any, length: int | None, limit: int | None) -> None:
    """Refuse an object whose announced size exceeds ``limit``, before its body is read."""
    if limit is not None and length is not None and length > limit:
        raise BlobTooLarge(store, uri, length, limit)


def read_exactly(data: bytes, length: int | None) -> bytes:
    """``data`` if it has the announced ``length`` (or none was announced), else ``ShortRead``."""
    if length is not None and len(data) != length:
        raise ShortRead(f"body has {len(data):,} of its {length:,} bytes")
    return data


def status_error(status: int | None, code: str | None, message: str, store: Any, uri: Any,
                 writing: bool = False, retry_after: float | None = None) -> BaseException:
    """Map an HTTP status and a service error code (either may be None)."""
    label = " ".join(str(p) for p in (code, f"(HTTP {status})" if status else None) if p)
    detail = clean(f"{label}: {message}" if message else label)
    bucket_missing = code in _BUCKET_MISSING_CODES or (
        code in _OBJECT_MISSING_CODES and _BUCKET_MESSAGE.search(message or ""))
    if bucket_missing or (writing and status == 404):  # a write answered 404: the bucket is not there
        word = getattr(store, "BUCKET_WORD", "bucket")
        return StoreNotAvailable(store, f"the {word} of '{clean(uri, 200)}' does not exist{_at(store)} ({detail})")
    if code in _OBJECT_MISSING_CODES:
        return NotFoundInStore(store, uri)
    if status == 404:
        return Unconfirmed404(detail)
    if code in _ARCHIVED_CODES:  # archived (S3 Glacier, Azure archive tier): not readable here, as the original
        return NotFoundInStore(store, uri, "archived, not readable without a restore")
    if status in (401, 403) or code in _AUTH_CODES:
        return StoreNotAvailable(store, f"credentials missing or rejected ({detail})")
    throttled = status in (429, 503) or code in _SLOW_DOWN_CODES
    retryable = throttled or code in _THROTTLING_CODES
    if retryable or status == 408 or (status is not None and status >= 500):
        return TransientError(detail, retry_after=retry_after, throttled=throttled)
    if status is not None and 400 <= status < 500:  # a request the service will never accept
        return FetchFailed(store, uri, detail)
    return TransientError(detail or "unknown error")


def _at(store: Any) -> str:
    """`` at <endpoint>`` for a store that has a custom endpoint (an emulator, MinIO...), else nothing."""
    where = getattr(store, "endpoint_label", None)
    return f" at {where}" if isinstance(where, str) and where else ""


def config_error(store: Any, what: str) -> StoreNotAvailable:
    """A configuration the transport cannot use: unavailable at once, never retried."""
    return StoreNotAvailable(store, f"configuration error: {clean(what)}")


class FastUnsupported(Exception):
    """The fast transport cannot make this request (a key obstore's paths refuse, such as ``a//b``), or, when
    ``endpoint_wide``, any request at this endpoint (it answered 501 Not Implemented to the XML-style GET): the
    store makes the next attempt through the SDK, which can."""

    def __init__(self, message: str, endpoint_wide: bool = False):
        super().__init__(message)
        self.endpoint_wide = endpoint_wide


def _passthrough(exc: BaseException, store: Any, uri: Any, writing: bool) -> BaseException | None:
    """Errors every backend maps alike: ours, markers the store settles, responses we read ourselves, short
    bodies, a deadline passing during a read."""
    from ..ground.retry import DeadlineExceeded

    if isinstance(exc, (BitstoreError, Unconfirmed404, FastUnsupported)):
        return exc
    if isinstance(exc, HTTPStatusError):
        return status_error(exc.status, exc.code, exc.message, store, uri, writing, exc.retry_after)
    if isinstance(exc, (ShortRead, DeadlineExceeded)):
        return TransientError(str(exc))
    return None


def _transient(exc: BaseException) -> TransientError:
    return TransientError(f"{type(exc).__name__}: {clean(exc)}")


def s3_error(exc: BaseException, store: Any, uri: Any, writing: bool = False) -> BaseException:
    """botocore errors: ``ClientError`` by status and code; missing credentials; configuration errors; connection,
    timeout and body-streaming errors (``ResponseStreamingError``, ``IncompleteReadError``) are transient."""
    done = _passthrough(exc, store, uri, writing)
    if done is not None:
        return done
    from botocore import exceptions as bx

    if isinstance(exc, bx.ClientError):
        error = exc.response.get("Error", {})
        meta = exc.response.get("ResponseMetadata", {})
        return status_error(meta.get("HTTPStatusCode"), error.get("Code"), error.get("Message", ""), store, uri,
                            writing, retry_after_of((meta.get("HTTPHeaders") or {}).get("retry-after")))
    if isinstance(exc, (bx.NoCredentialsError, bx.PartialCredentialsError, bx.CredentialRetrievalError,
                        bx.ProfileNotFound, bx.TokenRetrievalError)):
        return StoreNotAvailable(store, f"credentials missing or rejected ({type(exc).__name__})")
    if isinstance(exc, (bx.NoRegionError, bx.InvalidRegionError, bx.UnknownEndpointError, bx.EndpointResolutionError,
                        bx.InvalidS3AddressingStyleError, bx.InvalidConfigError, bx.UnsupportedS3ConfigurationError)):
        return config_error(store, f"{type(exc).__name__}: {exc}")
    if isinstance(exc, bx.ParamValidationError):
        return FetchFailed(store, uri, f"invalid request: {clean(exc)}")
    return _transient(exc)


def gcs_error(exc: BaseException, store: Any, uri: Any, writing: bool = False) -> BaseException:
    """google-cloud-storage / google-auth / requests errors, and HTTP responses from its session."""
    done = _passthrough(exc, store, uri, writing)
    if done is not None:
        return done
    from google.api_core import exceptions as gx
    from google.auth import exceptions as ax
    from requests import exceptions as rx

    response = getattr(exc, "response", None)  # google.resumable_media.InvalidResponse, requests.HTTPError
    retry_after = retry_after_of(getattr(getattr(response, "headers", None), "get", lambda _: None)("Retry-After"))
    if isinstance(exc, gx.GoogleAPICallError):
        reason = next((e.get("reason") for e in (exc.errors or []) if isinstance(e, dict)), None)
        return status_error(exc.code, reason, exc.message or "", store, uri, writing, retry_after)
    if isinstance(exc, (ax.DefaultCredentialsError, ax.RefreshError)) and not getattr(exc, "retryable", False):
        return StoreNotAvailable(store, f"credentials missing or rejected ({type(exc).__name__})")
    if isinstance(exc, (rx.InvalidSchema, rx.InvalidURL, rx.MissingSchema, rx.InvalidHeader)):
        return config_error(store, f"{type(exc).__name__}: {exc}")
    status = getattr(response, "status_code", None)
    if isinstance(status, int):
        return status_error(status, None, type(exc).__name__, store, uri, writing, retry_after)
    return _transient(exc)


def azure_error(exc: BaseException, store: Any, uri: Any, writing: bool = False) -> BaseException:
    """azure-core / azure-storage-blob / azure-identity errors, and HTTP responses read from the SDK's pipeline.
    An ``HttpResponseError`` is mapped by its status and the service's ``x-ms-error-code`` (``BlobNotFound`` is
    missing; ``ContainerNotFound`` and rejected credentials are unavailable); a credential the default chain
    cannot obtain is unavailable; connection, timeout and body errors are transient."""
    done = _passthrough(exc, store, uri, writing)
    if done is not None:
        return done
    from azure.core import exceptions as zx

    if isinstance(exc, zx.HttpResponseError) and isinstance(exc.status_code, int):
        response = exc.response
        headers = getattr(response, "headers", None) or {}
        code = exc.error_code or headers.get("x-ms-error-code")
        return status_error(exc.status_code, str(code) if code else None, _first_line(exc.reason or ""), store,
                            uri, writing, retry_after_of(headers.get("Retry-After")))
    if isinstance(exc, zx.ClientAuthenticationError):  # azure-identity: no credential found, or a token refused
        return StoreNotAvailable(store, f"credentials missing or rejected ({type(exc).__name__})")
    if isinstance(exc, ValueError) and not isinstance(exc, zx.AzureError):  # the SDK refused a URL or an option
        return config_error(store, f"{type(exc).__name__}: {_first_line(str(exc))}")
    return _transient(exc)


def _first_line(text: str) -> str:
    return text.strip().split("\n", 1)[0]


def obstore_error(exc: BaseException, store: Any, uri: Any, writing: bool = False) -> BaseException:
    """Errors of the fast transport. obstore raises ``FileNotFoundError`` for every 404, so the service's own
    code is read from the body it quotes (S3/GCS XML ``<Code>``, GCS JSON ``reason``); denied access is
    ``StoreNotAvailable``; a configuration it cannot use (``builder error``, unknown keys) is unavailable at once;
    everything else (HTTP 5xx with its retries switched off, resets, timeouts, bodies cut short) is transient."""
    done = _passthrough(exc, store, uri, writing)
    if done is not None:
        return done
    from obstore import exceptions as ox

    text = str(exc)
    code, message = _service_error_in(text)
    if isinstance(exc, (FileNotFoundError, ox.NotFoundError)):
        return status_error(404, code, message, store, uri, writing)
    if isinstance(exc, (ox.PermissionDeniedError, ox.UnauthenticatedError)):
        return StoreNotAvailable(store, f"credentials missing or rejected ({type(exc).__name__})")
    if isinstance(exc, ox.InvalidPathError):
        return FastUnsupported(f"{type(exc).__name__}: {clean(exc)}")
    if isinstance(exc, (ox.UnknownConfigurationKeyError, ox.NotSupportedError)) or "builder error" in text:
        return config_error(store, f"{type(exc).__name__}: {text.split(chr(10))[0]}")
    status = _status_in(text)
    if status == 501:  # the endpoint does not implement the request as obstore makes it (gcp-storage-emulator)
        return FastUnsupported(f"HTTP 501 {code or ''} {message}".strip(), endpoint_wide=True)
    if status is not None:
        return status_error(status, code, message or type(exc).__name__, store, uri, writing)
    return _transient(exc)


#: What obstore says when an endpoint did not answer a ranged GET as one (the range's own failure, not the blob's).
_RANGE_REFUSED = re.compile(r"non-partial response|content.range|range request|wanted range|range started|"
                            r"byte range|invalid range|unexpected range|range not satisfiable", re.I)


def range_refusal(exc: BaseException) -> str | None:
    """What an obstore error of a whole-blob ranged GET says of the range: ``"empty"`` (416: an empty object has
    no byte 0), ``"range"`` (a whole object answered 200 by an endpoint that ignores ranges or transcodes it, a
    ``Content-Range`` obstore cannot use), ``"request"`` (a 4xx but 401/403/404/408/429: the request as made
    does not work here), or None: an error a plain GET would meet (a 404 is the blob's)."""
    text = str(exc)
    status = _status_in(text)
    if status == 416:
        return "empty"
    if _RANGE_REFUSED.search(text) is not None:
        return "range"
    if status is not None and 400 <= status < 500 and status not in (401, 403, 404, 408, 429):
        return "request"
    return None


#: What obstore says when it cannot read a write's answer (an emulator's PUT answered without an ETag).
_WRITE_UNREAD = re.compile(r"extract metadata|ETag Header missing", re.I)


def write_refusal(exc: BaseException) -> str | None:
    """What an obstore error of a PUT says when the endpoint does not take writes as obstore makes them (a 400, 405
    or 501 answer: GCS emulators serve no XML-API upload; an answer obstore cannot read: no ETag), else None. The
    store takes it so only while no fast write has succeeded there (after one, a 400 is that request's own)."""
    text = str(exc)
    status = _status_in(text)
    if status in (400, 405, 501):
        code, message = _service_error_in(text)
        return clean(" ".join(p for p in (f"HTTP {status}", code, message) if p), 200)
    unread = _WRITE_UNREAD.search(text)
    return None if unread is None else f"an answer obstore cannot read ({clean(text.split(chr(10))[0], 200)})"


_STATUS = re.compile(r"(?:status|Client error|Server error)[^0-9]{0,20}([1-5][0-9]{2})\b", re.I)
_XML_CODE = re.compile(r"<Code>([^<]{1,100})</Code>")
_XML_MESSAGE = re.compile(r"<Message>([^<]{0,300})</Message>")
_JSON_REASON = re.compile(r'"reason"\s*:\s*"([^"]{1,100})"')
_JSON_MESSAGE = re.compile(r'"message"\s*:\s*"([^"]{0,300})"')


def _status_in(message: str) -> int | None:
    """The HTTP status obstore mentions in a generic error's message, if any."""
    match = _STATUS.search(message)
    return int(match.group(1)) if match else None


def _service_error_in(text: str) -> tuple[str | None, str]:
    """The service's error code and message from the response body obstore quotes in its message."""
    code = _XML_CODE.search(text) or _JSON_REASON.search(text)
    message = _XML_MESSAGE.search(text) or _JSON_MESSAGE.search(text)
    # The first line only: Azure's <Message> goes on with a RequestId and a Time, which differ on every answer.
    return (code.group(1) if code else None), (message.group(1).strip().split("\n", 1)[0] if message else "")


# --- plain HTTP(S) (the http tier): the status is the whole answer --------------------------------------------
#: Statuses that say "this blob is not here" on a plain HTTP tier.
HTTP_MISSING = (404, 410)


def mask(text: Any, secrets: list[str] | tuple[str, ...] = ()) -> str:
    """``text`` with every secret value (a header's) replaced by ``***``, and URL query strings removed."""
    out = str(text)
    for value in secrets:
        if value and len(value) >= 3:
            out = out.replace(value, "***")
    return _redact_text(clean(out))


def _redact_text(text: str) -> str:
    from ._redact import redact

    return redact(text)


def _http_status(status: int, reason: str, store: Any, uri: Any, retry_after: float | None) -> BaseException:
    if status in HTTP_MISSING:
        return NotFoundInStore(store, uri)
    if status in (401, 403):
        said = f"HTTP {status} {reason}".strip()
        return StoreNotAvailable(store, f"credentials missing or rejected ({said})")
    if 300 <= status < 400:
        return FetchFailed(store, uri, f"HTTP {status}: a redirect that was not followed (too many, or no Location)")
    if status < 200 or 200 < status < 300:
        return FetchFailed(store, uri, f"HTTP {status}: not a blob (a GET of a blob answers 200)")
    return status_error(status, None, reason, store, uri, False, retry_after)


def http_error(exc: BaseException, store: Any, uri: Any, secrets: list[str] | tuple[str, ...] = ()) -> BaseException:
    """The http tier's answers through urllib3: statuses (404/410 missing, 401/403 unavailable, 429/503 throttled,
    5xx transient), URL and TLS configuration errors (unavailable at once), everything else transient."""
    if isinstance(exc, HTTPStatusError):
        return _http_status(exc.status, mask(exc.message, secrets), store, uri, exc.retry_after)
    done = _passthrough(exc, store, uri, False)
    if done is not None:
        return done
    from urllib3 import exceptions as ux

    if isinstance(exc, ux.MaxRetryError) and exc.reason is not None:
        if isinstance(exc.reason, ux.ResponseError):  # too many redirects
            return FetchFailed(store, uri, f"too many redirects ({mask(exc.reason, secrets)})")
        exc = exc.reason
    if isinstance(exc, (ux.LocationValueError, ux.URLSchemeUnknown, ux.ProxySchemeUnknown)):
        return config_error(store, f"{type(exc).__name__}: {mask(exc, secrets)}")
    if isinstance(exc, ux.SSLError) and "CERTIFICATE_VERIFY_FAILED" in str(exc):
        return config_error(store, f"the server's TLS certificate is not trusted ({type(exc).__name__})")
    return TransientError(f"{type(exc).__name__}: {mask(exc, secrets)}")


def http_fast_error(exc: BaseException, store: Any, uri: Any,
                    secrets: list[str] | tuple[str, ...] = ()) -> BaseException:
    """The same answers through obstore's ``HTTPStore``: its 404 is ``FileNotFoundError``, 401/403 its
    unauthenticated/permission errors, other statuses are read from its message; its messages quote the server's
    body, so only the status reaches ours."""
    if isinstance(exc, HTTPStatusError):
        return http_error(exc, store, uri, secrets)
    done = _passthrough(exc, store, uri, False)
    if done is not None:
        return done
    from obstore import exceptions as ox

    text = str(exc)
    if isinstance(exc, (FileNotFoundError, ox.NotFoundError)):
        return NotFoundInStore(store, uri)
    if isinstance(exc, (ox.PermissionDeniedError, ox.UnauthenticatedError)):
        status = _status_in(text)
        return StoreNotAvailable(store, f"credentials missing or rejected (HTTP {status or 'denied'})")
    if isinstance(exc, (ox.UnknownConfigurationKeyError, ox.NotSupportedError)) or "builder error" in text:
        return config_error(store, f"{type(exc).__name__}: {mask(text.split(chr(10))[0], secrets)}")
    if isinstance(exc, ox.InvalidPathError):
        return FastUnsupported(f"{type(exc).__name__}: the path cannot be sent as written")
    status = _HTTP_STATUS.search(text)
    if status is not None:
        return _http_status(int(status.group(1)), status.group(2).strip(), store, uri, None)
    return TransientError(f"{type(exc).__name__}: {mask(text.split(chr(10))[0], secrets)}")


#: obstore's "Server returned non-2xx status code: 410 Gone: <body>".
_HTTP_STATUS = re.compile(r"status code: ([1-5][0-9]{2})((?: [A-Za-z-]+){0,4})")
