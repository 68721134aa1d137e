"""The error types bitstore raises. Imports nothing of ours.

Every error pickles with its message (``__reduce__`` replays the constructor arguments), so
errors raised inside worker processes or Beam workers arrive intact.
"""
from __future__ import annotations

from typing import Any

__all__ = [
    "BitstoreError",
    "NotFoundInStore",
    "InvalidDataFound",
    "StoreNotAvailable",
    "InvalidURI",
    "FetchFailed",
    "BlobTooLarge",
    "SpecError",
    "Throttled",
    "store_label",
    "short",
]

_MAX_SHOWN = 200


def short(value: Any, limit: int = _MAX_SHOWN) -> str:
    """``str(value)`` cut to ``limit`` characters, so junk keys cannot flood a message or a log."""
    if isinstance(value, str):
        text = value
    else:
        try:
            text = repr(value)
        except Exception:  # a key whose repr raises must not turn an error report into a crash
            text = f"<{type(value).__name__} with a failing repr>"
    return text if len(text) <= limit else f"{text[:limit]}...(+{len(text) - limit} chars)"


def store_label(store: Any) -> str:
    """The name a store is known by in messages: its ``name``, never its repr (which could hold secrets)."""
    if isinstance(store, str):
        return store
    try:
        name = store.name
    except Exception:
        name = None
    return name if isinstance(name, str) and name else type(store).__name__


def _restore(cls: type, message: str, state: dict) -> BitstoreError:
    """Rebuild an error from its message and attributes, without re-running its constructor."""
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class BitstoreError(Exception):
    """Base of every error bitstore raises. Pickles (and copies) with its exact message and attributes."""

    def __init__(self, msg: str):
        super().__init__(msg)

    def __reduce__(self):
        return _restore, (type(self), str(self), self.__dict__)


class StoreNotAvailable(BitstoreError):
    """The store cannot be used: credentials missing or rejected (401/403), or the client failed to start."""

    def __init__(self, store: Any, reason: str | None = None):
        label = store_label(store)
        suffix = f": {reason}" if reason else ""
        super().__init__(f"{label} is not available{suffix}")


class NotFoundInStore(BitstoreError):
    """The blob is definitively absent from the store (404, no such key or bucket, API answered None)."""

    def __init__(self, store: Any, uri: Any, detail: str | None = None):
        label = store_label(store)
        suffix = f" ({detail})" if detail else ""
        super().__init__(f"{label} does not contain '{short(uri)}'{suffix}")


class InvalidDataFound(NotFoundInStore):
    """The store's copy of the blob is corrupt (its SHA1 does not match), so for the caller it is missing."""

    def __init__(self, store: Any, uri: Any, detail: str | None = "data does not match its SHA1"):
        super().__init__(store, uri, detail)


class InvalidURI(BitstoreError):
    """The key or URI is not one this store accepts."""

    def __init__(self, store: Any, uri: Any, hint: str | None = None):
        label = store if isinstance(store, str) else type(store).__name__
        hint_str = "" if hint is None else f" (hint: {hint})"
        shown = short(uri)
        super().__init__(f"URI '{shown}' is invalid for {label}{hint_str}")


class FetchFailed(BitstoreError):
    """A tier failed to answer after its retries; the blob may well exist. Never a ``NotFoundInStore``."""

    def __init__(self, store: Any, uri: Any, cause: Any):
        label = store_label(store)
        cause_str = short(cause if isinstance(cause, str) else f"{type(cause).__name__}: {cause}", 1000)
        self.cause = cause_str
        super().__init__(f"{label} failed to fetch '{short(uri)}': {cause_str}")


class BlobTooLarge(FetchFailed):
    """The object is larger than the store's size limit; refused before its bytes were buffered."""

    def __init__(self, store: Any, uri: Any, size: int, limit: int):
        self.size, self.limit = size, limit
        BitstoreError.__init__(
            self, f"{store_label(store)}: '{short(uri)}' is {size:,} bytes, over the limit of {limit:,} bytes")
        self.cause = str(self)


class SpecError(BitstoreError, ValueError):
    """A store spec is malformed: names the key and, when read from a file, the file."""

    def __init__(self, message: str, key: str | None = None, source: str | None = None):
        where = "".join([f" in {source}" if source else "", f" at '{key}'" if key else ""])
        self.key, self.source = key, source
        super().__init__(f"invalid store spec{where}: {message}")


class Throttled(BitstoreError):
    """Raised by a tier (an API source's ``api_get``, a user's store) to say "too many requests" (HTTP 429).

    A composite treats it as transient: the tier's limiter backs off (and pauses the tier for
    ``retry_after`` seconds when given), and the call is retried under the limiter; only when the
    retries run out does the key count as failed.
    """

    def __init__(self, retry_after: float | None = None, message: str | None = None):
        self.retry_after = retry_after
        after = f" (retry after {retry_after:g}s)" if isinstance(retry_after, (int, float)) else ""
        super().__init__(message or f"throttled: too many requests{after}")
