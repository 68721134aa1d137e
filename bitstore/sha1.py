"""SHA1-addressed stores: ``Sha1Store``, ``Sha1Cache``, ``Sha1APISource``, ``Sha1Composite`` and their mixins."""
from __future__ import annotations

import hashlib
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from ._logging import Counter, cause_of, log_once
from .composite import Composite
from .errors import InvalidDataFound, NotFoundInStore, store_label
from .store import Store

__all__ = [
    "Sha1FormatMixin",
    "VerifySha1Mixin",
    "InvalidDataFound",
    "Sha1Store",
    "Sha1Cache",
    "Sha1APISource",
    "Sha1Composite",
    "sha1_hex",
]

logger = logging.getLogger(__name__)
_SHA1_URI = re.compile(r"(?:[sS][hH][aA]1://)?([0-9a-fA-F]{40})")


def sha1_hex(data: bytes) -> str:
    """The lowercase hex SHA1 of ``data``."""
    return hashlib.sha1(data).hexdigest()


class Sha1FormatMixin:
    """Accepts exactly 40 hex digits, any case (and nothing else: no whitespace, no newline)."""

    URI_HINT = "<sha1>"
    _SHA1_REGEX = re.compile("[0-9a-fA-F]{40}")

    def is_valid(self, uri: Any) -> bool:
        return isinstance(uri, str) and self._SHA1_REGEX.fullmatch(uri) is not None

    def canonical_key(self, key: Any) -> Any:
        return key.lower() if isinstance(key, str) else key


class VerifySha1Mixin:
    """``_verify_data(data, sha1)`` returns ``data`` or raises ``InvalidDataFound``."""

    def _verify_data(self, data: bytes, sha1: str) -> bytes:
        actual = sha1_hex(data)
        if sha1.lower() != actual:
            log_once(logger, logging.WARNING, f"verify:{store_label(self)}", "sha1 mismatch",
                     f"{store_label(self)}: data for {sha1} has SHA1 {actual}; refused as corrupt")
            raise InvalidDataFound(self, sha1, f"data has SHA1 {actual}")
        return data


class Sha1Store(Sha1FormatMixin, VerifySha1Mixin, Store):
    """Maps ``<sha1>`` to ``f"{prefix}{sha1.lower()}"`` on a raw store."""

    def __init__(self, base_store: Store, prefix: str, verify: bool = False, *, name: str | None = None):
        super().__init__(name=name)
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, not {type(prefix).__name__}")
        self.base_store = base_store
        self.prefix = prefix
        self.verify = verify

    def _default_name(self) -> str:
        if "://" in self.prefix:
            return self.prefix
        kind = getattr(self.base_store, "KIND", None) or store_label(self.base_store)
        return f"{kind}:{self.prefix}"

    def _uri(self, sha1: str) -> str:
        return f"{self.prefix}{sha1.lower()}"

    def get(self, sha1: str) -> bytes:
        self._check_valid(sha1)
        try:
            data = self.base_store.get(self._uri(sha1))
        except InvalidDataFound:
            raise
        except NotFoundInStore as exc:
            raise NotFoundInStore(self, sha1) from exc
        if self.verify:
            self._verify_data(data, sha1)
        return data

    def prepare_writes(self) -> None:
        prepare = getattr(self.base_store, "prepare_writes", None)
        if callable(prepare):
            prepare()

    def put(self, sha1: str, data: bytes) -> Any:
        self._check_valid(sha1)
        if self.verify:
            self._verify_data(data, sha1)
        return self.base_store.put(self._uri(sha1), data)

    def _put_verified(self, sha1: str, data: bytes) -> Any:
        """``put`` of bytes whose SHA1 the caller has just checked against ``sha1`` (write-back): no second hash."""
        return self.base_store.put(self._uri(sha1), data)


class Sha1Cache(Sha1Store):
    """A ``Sha1Store`` used as a cache: ``put`` never raises and returns whether the blob was stored.

    Failures are logged once per cause and counted in ``write_failures``; with ``verify=True`` (the
    default) bytes whose SHA1 does not match are never stored.
    """

    def __init__(self, base_store: Store, prefix: str, verify: bool = True, *, name: str | None = None):
        super().__init__(base_store, prefix, verify, name=name)
        self.write_failures = Counter()

    def put(self, sha1: str, data: bytes) -> bool:
        return self._guarded(Sha1Store.put, sha1, data)

    def _put_verified(self, sha1: str, data: bytes) -> bool:
        return self._guarded(Sha1Store._put_verified, sha1, data)

    def _guarded(self, put: Callable[[Sha1Store, str, bytes], Any], sha1: str, data: bytes) -> bool:
        try:
            put(self, sha1, data)
        except InvalidDataFound:  # already logged once by _verify_data
            self.write_failures.add()
            return False
        except Exception as exc:
            self.write_failures.add()
            log_once(logger, logging.WARNING, f"cache-put:{self.name}", cause_of(exc),
                     f"{self.name}: not caching blob: {cause_of(exc)}")
            return False
        logger.debug("cached %s in %s", sha1, self.name)
        return True


class Sha1APISource(Sha1FormatMixin, VerifySha1Mixin, Store, ABC):
    """Base for API sources: implement ``api_get(sha1) -> bytes | None`` (None means not found).

    A ``Composite`` writes an API source's hits back to its cache unless told otherwise.
    """

    DEFAULT_CACHE_RESULT = True

    def __init__(self, verify: bool = False, *, name: str | None = None):
        super().__init__(name=name)
        self.verify = verify

    def get(self, sha1: str) -> bytes:
        self._check_valid(sha1)
        data = self.api_get(sha1.lower())
        if data is None:
            raise NotFoundInStore(self, sha1)
        if self.verify:
            data = self._verify_data(data, sha1)
        return data

    @abstractmethod
    def api_get(self, sha1: str) -> bytes | None:
        """The blob's bytes, or None when the API does not have it."""


class Sha1Composite(Sha1FormatMixin, Composite):
    """A ``Composite`` keyed by SHA1: accepts ``<sha1>`` and ``sha1://<sha1>`` in any case.

    Bytes are checked against their SHA1 before they are written back, so a cache is never poisoned.
    """

    SHA1_URI_REGEX = _SHA1_URI
    URI_HINT = "<sha1> or sha1://<sha1>"

    def is_valid(self, uri: Any) -> bool:
        return isinstance(uri, str) and self.SHA1_URI_REGEX.fullmatch(uri) is not None

    def canonical_key(self, key: Any) -> Any:
        match = self.SHA1_URI_REGEX.fullmatch(key) if isinstance(key, str) else None
        return match.group(1).lower() if match else key

    def _fetch(self, uri: Any) -> tuple[bytes, str, bool | None]:
        self._check_valid(uri)
        return super()._fetch(self.canonical_key(uri))

    def put(self, uri: Any, data: bytes) -> Any:
        """Write to the cache tier under the canonical (lowercase, bare) SHA1."""
        self._check_valid(uri)
        return super().put(self.canonical_key(uri), data)

    def _write_to_cache(self, data: bytes, uri: Any) -> bool:
        if sha1_hex(data) != uri:
            self.cache_write_failures.add()
            log_once(logger, logging.WARNING, f"cache-write:{self.name}", "sha1 mismatch",
                     f"{self.name}: a tier served bytes that do not match their SHA1; not caching them")
            return False
        # The bytes were just checked: a SHA1 cache of ours need not hash them again (a subclass's own put is kept).
        own = isinstance(self.cache, Sha1Store) and type(self.cache).put in (Sha1Store.put, Sha1Cache.put)
        put = self.cache._put_verified if own else None
        return super()._write_to_cache(data, uri, put)
