"""The one place that maps S3, GCS and obstore errors to bitstore's: missing, unavailable, failed or transient.

Each ``*_error(exc, store, uri, writing=False)`` returns the exception ``RetryPolicy.run`` should act on:
a ``BitstoreError`` (raised at once) or a ``TransientError`` (retried, then ``FetchFailed``). Messages are
built from status codes and error codes, and any URL in them loses its query string (signed URLs carry
credentials), so no secret reaches a message or a log line.
"""
from __future__ import annotations

import re
from typing import Any

from ..errors import BitstoreError, FetchFailed, NotFoundInStore, StoreNotAvailable, short
from ..retry import TransientError

__all__ = ["ShortRead", "HTTPStatusError", "check_size", "read_exactly", "status_error",
           "s3_error", "gcs_error", "obstore_error"]

# Error codes (S3 XML, GCS JSON "reason") that say "this object or bucket does not exist".
_MISSING_CODES = {"NoSuchKey", "NoSuchBucket", "NotFound", "404", "notFound"}
# Credentials missing, expired or rejected: no retry will fix them.
_AUTH_CODES = {
    "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken",
    "TokenRefreshRequired", "AllAccessDisabled", "AccountProblem", "InvalidSecurity", "UnauthorizedAccess",
    "forbidden", "unauthorized", "AuthorizationHeaderMalformed",
}
_THROTTLING_CODES = {
    "SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "RequestThrottled", "TooManyRequests",
    "ServiceUnavailable", "InternalError", "RequestTimeout", "RequestTimeTooSkewed", "rateLimitExceeded",
    "backendError", "EC2ThrottledException", "BandwidthLimitExceeded", "PriorRequestNotComplete",
}
_QUERY = re.compile(r"(\w+://[^\s?'\"]*)\?[^\s'\"]*")


class ShortRead(Exception):
    """The body ended before its Content-Length: the connection was cut (retried)."""


class HTTPStatusError(Exception):
    """A response a backend read itself that was not a success (mapped by ``status_error``)."""

    def __init__(self, status: int, code: str | None = None, message: str = ""):
        self.status, self.code, self.message = status, code, message
        super().__init__(f"HTTP {status} {code or ''} {message}".strip())


def clean(text: Any, limit: int = 300) -> str:
    """A message safe to show: URL query strings (signatures, tokens) removed, length capped."""
    return short(_QUERY.sub(r"\1?<query removed>", str(text)), limit)


def check_size(store: Any, uri: Any, length: int | None, limit: int | None) -> None:
    """Refuse an object whose announced size exceeds ``limit``, before its body is read."""
    from ..errors import BlobTooLarge

    if limit is not None and length is not None and length > limit:
        raise BlobTooLarge(store, uri, length, limit)


def read_exactly(data: bytes, length: int | None) -> bytes:
    """``data`` if it has the announced ``length`` (or none was announced), else ``ShortRead``."""
    if length is not None and len(data) != length:
        raise ShortRead(f"body has {len(data):,} of its {length:,} bytes")
    return data


def status_error(status: int | None, code: str | None, message: str, store: Any, uri: Any,
                 writing: bool = False) -> BaseException:
    """Map an HTTP status and a service error code (either may be None)."""
    label = " ".join(str(p) for p in (code, f"(HTTP {status})" if status else None) if p)
    detail = clean(f"{label}: {message}" if message else label)
    if status == 404 or code in _MISSING_CODES:
        if writing:
            return FetchFailed(store, uri, f"cannot write, the bucket does not exist ({detail})")
        return NotFoundInStore(store, uri)
    if code == "InvalidObjectState":  # archived (e.g. S3 Glacier): not readable here, as the original
        return NotFoundInStore(store, uri, "archived, not readable without a restore")
    if status in (401, 403) or code in _AUTH_CODES:
        return StoreNotAvailable(store, f"credentials missing or rejected ({detail})")
    if status in (408, 429) or (status is not None and status >= 500) or code in _THROTTLING_CODES:
        return TransientError(detail)
    if status is not None and 400 <= status < 500:  # a request the service will never accept
        return FetchFailed(store, uri, detail)
    return TransientError(detail or "unknown error")


def _passthrough(exc: BaseException, store: Any, uri: Any, writing: bool) -> BaseException | None:
    """Errors every backend maps alike: ours, responses we read ourselves, short bodies."""
    if isinstance(exc, BitstoreError):
        return exc
    if isinstance(exc, HTTPStatusError):
        return status_error(exc.status, exc.code, exc.message, store, uri, writing)
    if isinstance(exc, ShortRead):
        return TransientError(str(exc))
    return None


def _transient(exc: BaseException) -> TransientError:
    return TransientError(f"{type(exc).__name__}: {clean(exc)}")


def s3_error(exc: BaseException, store: Any, uri: Any, writing: bool = False) -> BaseException:
    """botocore errors: ``ClientError`` by status and code; missing credentials; connection, timeout
    and body-streaming errors (``ResponseStreamingError``, ``IncompleteReadError``) are transient."""
    done = _passthrough(exc, store, uri, writing)
    if done is not None:
        return done
    from botocore import exceptions as bx

    if isinstance(exc, bx.ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return status_error(status, error.get("Code"), error.get("Message", ""), store, uri, writing)
    if isinstance(exc, (bx.NoCredentialsError, bx.PartialCredentialsError, bx.CredentialRetrievalError,
                        bx.ProfileNotFound, bx.TokenRetrievalError)):
        return StoreNotAvailable(store, f"credentials missing or rejected ({type(exc).__name__})")
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

    if isinstance(exc, gx.GoogleAPICallError):
        reason = next((e.get("reason") for e in (exc.errors or []) if isinstance(e, dict)), None)
        return status_error(exc.code, reason, exc.message or "", store, uri, writing)
    if isinstance(exc, (ax.DefaultCredentialsError, ax.RefreshError)) and not getattr(exc, "retryable", False):
        return StoreNotAvailable(store, f"credentials missing or rejected ({type(exc).__name__})")
    response = getattr(exc, "response", None)  # google.resumable_media.InvalidResponse, requests.HTTPError
    status = getattr(response, "status_code", None)
    if isinstance(status, int):
        return status_error(status, None, type(exc).__name__, store, uri, writing)
    return _transient(exc)


def obstore_error(exc: BaseException, store: Any, uri: Any, writing: bool = False) -> BaseException:
    """Errors of the fast transport: obstore raises ``FileNotFoundError`` for a missing object and its own
    classes for denied access; everything else (HTTP 5xx with its retries switched off, resets, timeouts,
    bodies cut short) is transient."""
    done = _passthrough(exc, store, uri, writing)
    if done is not None:
        return done
    from obstore import exceptions as ox

    if isinstance(exc, (FileNotFoundError, ox.NotFoundError)):
        return status_error(404, None, "", store, uri, writing)
    if isinstance(exc, (ox.PermissionDeniedError, ox.UnauthenticatedError)):
        return StoreNotAvailable(store, f"credentials missing or rejected ({type(exc).__name__})")
    if isinstance(exc, (ox.InvalidPathError, ox.UnknownConfigurationKeyError, ox.NotSupportedError)):
        return FetchFailed(store, uri, f"{type(exc).__name__}: {clean(exc)}")
    status = _status_in(str(exc))
    if status is not None and 400 <= status < 500 and status not in (408, 429):
        return status_error(status, None, type(exc).__name__, store, uri, writing)
    return _transient(exc)


_STATUS = re.compile(r"(?:status|Client error|Server error)[^0-9]{0,20}([1-5][0-9]{2})\b", re.I)


def _status_in(message: str) -> int | None:
    """The HTTP status obstore mentions in a generic error's message, if any."""
    match = _STATUS.search(message)
    return int(match.group(1)) if match else None
