"""Keeps credentials out of the SDKs' own debug logs.

At DEBUG level botocore logs every request with its headers (``X-Amz-Security-Token``, ``Authorization``)
and its canonical request, HTTP libraries may log ``Authorization: Bearer ...`` and request URLs (an Azure SAS
signature, a presigned URL's in their query). A filter on those
loggers rewrites such values to ``<redacted>`` before any handler sees them. Installed once per process by
the cloud backends when they build a client.
"""
from __future__ import annotations

import logging
import re
import threading

__all__ = ["redact", "install"]

_HEADER = re.compile(
    r"((?:x-amz-security-token|authorization|proxy-authorization|x-goog-iam-authorization-token)"
    r"['\"]?\s*[:=]\s*b?['\"]?)[^'\"\r\n,}]+",
    re.IGNORECASE,
)
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/-]+=*", re.IGNORECASE)
#: Secrets in URLs' query strings (an Azure SAS ``sig``, S3/GCS presigned URLs) and in connection strings.
_PARAM = re.compile(
    r"((?:[?&;]|\b)(?:sig|signature|x-amz-signature|x-amz-credential|x-amz-security-token|x-goog-signature|"
    r"x-goog-credential|accountkey|sharedaccesssignature)=)[^&\s;'\"]+",
    re.IGNORECASE,
)
#: Loggers that print request headers or signing material at DEBUG.
_LOGGERS = (
    "botocore.endpoint", "botocore.auth", "botocore.hooks", "botocore.awsrequest", "botocore.httpsession",
    "botocore.parsers", "urllib3.connectionpool", "google.auth.transport.requests", "google.auth.transport.urllib3",
    "google.auth._default", "google.cloud.storage", "google.resumable_media",
    "azure.core.pipeline.policies.http_logging_policy", "azure.storage.blob._shared.policies", "azure.identity",
    "azure.core.pipeline.transport._requests_basic",
)
_lock = threading.Lock()


def redact(text: str) -> str:
    """``text`` with secret header values and bearer tokens replaced by ``<redacted>``."""
    return _PARAM.sub(r"\1<redacted>", _BEARER.sub(r"\1<redacted>", _HEADER.sub(r"\1<redacted>", text)))


class _RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record whose arguments do not format: leave it to the handler
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


_FILTER = _RedactSecrets()


def install() -> None:
    """Add the redacting filter to the SDK loggers (idempotent)."""
    with _lock:
        for name in _LOGGERS:
            logger = logging.getLogger(name)
            if _FILTER not in logger.filters:
                logger.addFilter(_FILTER)
