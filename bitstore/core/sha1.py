"""SHA1-addressed stores: ``Sha1Store``, ``Sha1Cache``, ``Sha1APISource``, ``Sha1Composite`` and their mixins."""
from __future__ import annotations

import hashlib
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator
from typing import IO, Any

from ..engine.routes import Route, TierGet, WriteBack
from ..ground.errors import BlobTooLarge, InvalidDataFound, NotFoundInStore, store_label
from ..ground.log import Counter, cause_of, log_once
from ..ground.stats import Usage
from .composite import Composite
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
#: Where the key goes in a prefix that is a template rather than a folder.
TEMPLATE = "{sha1}"
_SHA1_URI = re.compile(r"(?:[sS][hH][aA]1://)?([0-9a-fA-F]{40})")


def sha1_hex(data: bytes) -> str:
    """The lowercase hex SHA1 of ``data``."""
    return hashlib.sha1(data).hexdigest()


class Sha1FormatMixin:
    """Accepts 40 hex digits, any case, with surrounding whitespace ignored (a line read from a file works,
    as in the original library); looks up the lowercase, stripped form."""

    URI_HINT = "<sha1>"
    _SHA1_REGEX = re.compile("[0-9a-fA-F]{40}")

    def is_valid(self, uri: Any) -> bool:
        return isinstance(uri, str) and self._SHA1_REGEX.fullmatch(uri.strip()) is not None

    def canonical_key(self, key: Any) -> Any:
        return key.strip().lower() if isinstance(key, str) else key

    def key_for(self, data: bytes) -> str:
        """A blob's key is its SHA1 (``put_many`` derives and checks keys with it)."""
        return sha1_hex(data)


class VerifySha1Mixin:
    """``_verify_data(data, sha1)`` returns ``data`` or raises ``InvalidDataFound``."""

    def _verify_data(self, data: bytes, sha1: str) -> bytes:
        actual = sha1_hex(data)
        if sha1.strip().lower() != actual:
            log_once(logger, logging.WARNING, f"verify:{store_label(self)}", "sha1 mismatch",
                     f"{store_label(self)}: bytes for {sha1} do not match their SHA1 (they hash to {actual}); "
                     "refused as corrupt")
            raise InvalidDataFound(self, sha1, f"the bytes do not match this SHA1: they hash to {actual}")
        return data


class Sha1Store(Sha1FormatMixin, VerifySha1Mixin, Store):
    """Maps ``<sha1>`` to ``f"{prefix}{sha1.lower()}"`` on a raw store; a ``{sha1}`` in the prefix marks where the
    key goes instead (``https://api.example.com/v1/files?hash={sha1}``)."""

    def __init__(self, base_store: Store, prefix: str, verify: bool = False, *, name: str | None = None):
        super().__init__(name=name)
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, not {type(prefix).__name__}")
        self.base_store = base_store
        self.prefix = prefix
        self.verify = verify

    def _default_name(self) -> str:
        if "://" in self.prefix:  # a URL's query string may carry a token: never part of a name
            return self.prefix.split("?", 1)[0]
        kind = getattr(self.base_store, "KIND", None) or store_label(self.base_store)
        return f"{kind}:{self.prefix}"

    def _uri(self, sha1: str) -> str:
        key = sha1.strip().lower()
        return self.prefix.replace(TEMPLATE, key) if TEMPLATE in self.prefix else f"{self.prefix}{key}"

    def get(self, sha1: str) -> bytes:
        self._check_valid(sha1)
        return self._read(sha1, self.base_store.get)

    def _read(self, sha1: str, base_get: Callable[[str], bytes]) -> bytes:
        """``get`` of a valid ``sha1`` with ``base_get`` as the base store's ``get`` (the async engine passes the
        answer it already has)."""
        try:
            data = base_get(self._uri(sha1))
        except InvalidDataFound:
            raise
        except NotFoundInStore as exc:
            raise NotFoundInStore(self, sha1) from exc
        if self.verify:
            self._verify_data(data, sha1)
        return data

    def _reads_as_written(self) -> bool:
        """Whether this store's reading code is ``Sha1Store``'s own (a subclass that changes it takes no route)."""
        cls = type(self)
        return (cls._result is Store._result and cls._fetch is Store._fetch and cls.get is Sha1Store.get
                and cls._read is Sha1Store._read)

    def async_route(self) -> Route | None:
        """The base store's raw route, seen through this store's keys and reading code (``_uri``, ``_read``)."""
        if not self._reads_as_written():
            return None
        base = self.base_store.async_route()
        return base.over(self, self._uri, self._read) if isinstance(base, Route) else None

    def reads_on_loop(self) -> bool:
        return self._reads_as_written() and type(self) in (Sha1Store, Sha1Cache) and self.base_store.reads_on_loop()

    def usage(self) -> Usage | None:
        """The base store's, when it is bounded (``max_bytes``)."""
        usage = getattr(self.base_store, "usage", None)
        return usage() if callable(usage) else None

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

    def head(self, sha1: str) -> int:
        """The size of the blob at ``prefix + sha1`` (HEAD or ``stat`` on the base store; nothing verified)."""
        self._check_valid(sha1)
        try:
            return self.base_store.head(self._uri(sha1))
        except InvalidDataFound:
            raise
        except NotFoundInStore as exc:
            raise NotFoundInStore(self, sha1) from exc

    def open(self, sha1: str) -> IO[bytes]:
        """The base store's file object for the blob, streamed. Not verified (the bytes are not all read here):
        ``bitstore get -o`` checks the SHA1 while it streams."""
        self._check_valid(sha1)
        try:
            return self.base_store.open(self._uri(sha1))
        except InvalidDataFound:
            raise
        except NotFoundInStore as exc:
            raise NotFoundInStore(self, sha1) from exc


class Sha1Cache(Sha1Store):
    """A ``Sha1Store`` used as a cache: ``put`` never raises and returns whether the blob was stored.

    Failures are logged once per cause and counted in ``write_failures``; with ``verify=True`` (the
    default) bytes whose SHA1 does not match are never stored. A blob larger than a bounded base store's
    ``max_bytes`` (``BlobTooLarge``) is not stored either: counted in ``write_failures`` and ``too_large``.
    """

    def __init__(self, base_store: Store, prefix: str, verify: bool = True, *, name: str | None = None):
        super().__init__(base_store, prefix, verify, name=name)
        self.write_failures = Counter()
        self.too_large = Counter()

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
        except BlobTooLarge as exc:
            self.write_failures.add()
            self.too_large.add()
            log_once(logger, logging.INFO, f"cache-too-large:{self.name}", "too large",
                     f"{self.name}: not caching blobs over its bound ({cause_of(exc)})")
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
        data = self.api_get(sha1.strip().lower())
        if data is None:
            raise NotFoundInStore(self, sha1)
        if self.verify:
            data = self._verify_data(data, sha1)
        return data

    @abstractmethod
    def api_get(self, sha1: str) -> bytes | None:
        """The blob's bytes, or None when the API does not have it."""


class Sha1Composite(Sha1FormatMixin, VerifySha1Mixin, Composite):
    """A ``Composite`` keyed by SHA1: accepts ``<sha1>`` and ``sha1://<sha1>`` in any case, surrounding
    whitespace ignored.

    Every write through it (``put`` and write-back) is checked against the key's SHA1 in one place
    (``_checked_put``), whatever the cache's own ``verify``, so a cache is never poisoned.
    """

    SHA1_URI_REGEX = _SHA1_URI
    URI_HINT = "<sha1> or sha1://<sha1>"

    def is_valid(self, uri: Any) -> bool:
        return isinstance(uri, str) and self.SHA1_URI_REGEX.fullmatch(uri.strip()) is not None

    def canonical_key(self, key: Any) -> Any:
        match = self.SHA1_URI_REGEX.fullmatch(key.strip()) if isinstance(key, str) else None
        return match.group(1).lower() if match else key

    def _walk(self, uri: Any) -> Generator[TierGet | WriteBack, Any, tuple[bytes, str, bool | None]]:
        self._check_valid(uri)
        return super()._walk(self.canonical_key(uri))

    def _locate(self, uri: Any) -> tuple[int, str]:
        self._check_valid(uri)
        return super()._locate(self.canonical_key(uri))

    def open(self, uri: Any) -> IO[bytes]:
        self._check_valid(uri)
        return super().open(self.canonical_key(uri))

    def put(self, uri: Any, data: bytes) -> Any:
        """Write to the cache tier under the canonical (lowercase, bare) SHA1; bytes that do not match it
        raise ``InvalidDataFound`` and are not written."""
        if self.cache is None:
            return super().put(uri, data)  # NotImplementedError, as the original
        self._check_valid(uri)
        key = self.canonical_key(uri)
        self.forget_missing(key)
        return self._checked_put(key, data)

    def _write_to_cache(self, data: bytes, uri: Any) -> bool:
        def put(sha1: str, data: bytes) -> Any:
            try:
                return self._checked_put(sha1, data)
            except InvalidDataFound:  # logged once by _verify_data: a tier served bytes that are not the blob
                return False

        return super()._write_to_cache(data, uri, put)

    def _checked_put(self, sha1: str, data: bytes) -> Any:
        """The one way bytes reach the cache: checked against ``sha1`` (canonical) first. A SHA1 cache of ours
        is not asked to hash them again (a subclass's own ``put`` is kept)."""
        self._verify_data(data, sha1)
        cache = self.cache
        own = isinstance(cache, Sha1Store) and type(cache).put in (Sha1Store.put, Sha1Cache.put)
        return cache._put_verified(sha1, data) if own else cache.put(sha1, data)
