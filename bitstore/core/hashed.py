"""Content-addressed stores for any hash: one implementation, parametrised by a ``KeyFamily``.

A family names a hash (``sha1``, ``sha256``), its hex length, its URI scheme and its hashlib constructor.
The classes here read ``FAMILY`` from the class they are used through, so ``core.sha1`` and ``core.sha256``
each declare their family's classes in a few lines (``Sha1Store``, ``Sha256Store``, ...). A key of one family
is never a valid key of another (their hex lengths differ), so a SHA1 given to a SHA-256 store is
``invalid``, never ``missing``.
"""
from __future__ import annotations

import functools
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import IO, Any, ClassVar

from ..engine.routes import Route, TierGet, WriteBack
from ..ground.errors import BlobTooLarge, InvalidDataFound, InvalidURI, NotFoundInStore, store_label
from ..ground.log import Counter, cause_of, log_once
from ..ground.stats import Usage
from .composite import Composite
from .listed import Listed
from .listing import keys_under
from .store import Store
from .tier import Tier

__all__ = [
    "KeyFamily",
    "HashFormatMixin",
    "VerifyHashMixin",
    "HashStore",
    "HashCache",
    "HashAPISource",
    "HashComposite",
    "family_of",
]

logger = logging.getLogger(__name__)


@functools.cache
def _lower_hex(length: int) -> re.Pattern:
    return re.compile(f"[0-9a-f]{{{length}}}")


@dataclass(frozen=True)
class KeyFamily:
    """A hash that keys blobs: ``name`` (``sha256``, also the URI scheme and the default key column), ``label``
    for messages (``SHA-256``), ``hex_length`` and the hashlib constructor ``new``."""

    name: str
    label: str
    hex_length: int
    new: Callable[[], Any]
    #: ``<hex>``: the bare key, any case.
    bare: re.Pattern = field(init=False, repr=False, compare=False)
    #: ``<hex>`` or ``<name>://<hex>`` (the scheme in any case); group 1 is the hex.
    uri: re.Pattern = field(init=False, repr=False, compare=False)
    #: Where the key goes in a store prefix that is a template rather than a folder: ``{sha256}``.
    template: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        hex_digits = f"[0-9a-fA-F]{{{self.hex_length}}}"
        object.__setattr__(self, "bare", re.compile(hex_digits))
        object.__setattr__(self, "uri", re.compile(f"(?:(?i:{re.escape(self.name)})://)?({hex_digits})"))
        object.__setattr__(self, "template", "{" + self.name + "}")
        object.__setattr__(self, "_canonical_form", _lower_hex(self.hex_length).fullmatch)

    @property
    def scheme(self) -> str:
        return f"{self.name}://"

    @property
    def hint(self) -> str:
        return f"<{self.name}> or {self.name}://<{self.name}>"

    def hex(self, data: bytes) -> str:
        """The lowercase hex digest of ``data``."""
        return self.new(data).hexdigest()

    def canonical(self, key: Any) -> str | None:
        """The lowercase bare hex of ``<hex>`` or ``<name>://<hex>`` (surrounding whitespace ignored), else None."""
        if type(key) is str and self._canonical_form(key) is not None:  # already canonical (one match, no copies)
            return key
        match = self.uri.fullmatch(key.strip()) if isinstance(key, str) else None
        return match.group(1).lower() if match else None

    def reason(self, key: Any) -> str:
        """Why ``key`` is not a key of this family, in one line."""
        if not isinstance(key, str):
            return f"not a {self.label}: expected a str, got {type(key).__name__}"
        shown = key if len(key) <= 80 else key[:77] + "..."
        return (f"not a {self.label}: {shown!r} (expected {self.hex_length} hex digits, optionally after "
                f"{self.scheme})")


def family_of(store: Any) -> KeyFamily | None:
    """The key family of a hash-keyed store (ours or a subclass), else None."""
    family = getattr(type(store), "FAMILY", None)
    return family if isinstance(family, KeyFamily) else None


class HashFormatMixin:
    """Accepts the family's hex digits, any case, with surrounding whitespace ignored (a line read from a file
    works, as in the original library); looks up the lowercase, stripped form."""

    FAMILY: ClassVar[KeyFamily]

    def is_valid(self, uri: Any) -> bool:
        return isinstance(uri, str) and self.FAMILY.bare.fullmatch(uri.strip()) is not None

    def canonical_key(self, key: Any) -> Any:
        return key.strip().lower() if isinstance(key, str) else key

    def key_for(self, data: bytes) -> str:
        """A blob's key is its hash (``put_many`` derives and checks keys with it)."""
        return self.FAMILY.hex(data)

    def canonical_match(self) -> Callable[[str], Any] | None:
        """A test of a listed name (one regex match): true exactly when ``accepts(name) and canonical_key(name) ==
        name`` (lowercase hex of the family's length), for a listing's every name; None when a subclass has its
        own key methods (the listing then asks them)."""
        cls = type(self)
        if (cls.is_valid is not HashFormatMixin.is_valid or cls.canonical_key is not HashFormatMixin.canonical_key
                or cls.accepts is not Store.accepts):
            return None
        return _lower_hex(self.FAMILY.hex_length).fullmatch

    def new_hasher(self) -> Any:
        """A hashlib object of this store's key family (``scrub`` and ``replicate`` hash streams with it)."""
        return self.FAMILY.new()


class VerifyHashMixin:
    """``_verify_data(data, key)`` returns ``data`` or raises ``InvalidDataFound``."""

    FAMILY: ClassVar[KeyFamily]

    def _verify_data(self, data: bytes, key: str) -> bytes:
        family = self.FAMILY
        actual = family.hex(data)
        if key.strip().lower() != actual:
            log_once(logger, logging.WARNING, f"verify:{store_label(self)}", f"{family.name} mismatch",
                     f"{store_label(self)}: bytes for {key} do not match their {family.label} (they hash to "
                     f"{actual}); refused as corrupt")
            raise InvalidDataFound(self, key, f"the bytes do not match this {family.label}: they hash to {actual}")
        return data


class HashStore(HashFormatMixin, VerifyHashMixin, Store):
    """Maps ``<hex>`` to ``f"{prefix}{hex.lower()}"`` on a raw store, or puts it where the family's template
    (``{sha1}``, ``{sha256}``) stands in the prefix (``https://api.example.com/v1/files?hash={sha256}``);
    ``verify=True`` checks the bytes' hash on get and put."""

    #: Set in the class body of bitstore's own store classes only (read from the class's own ``__dict__``, so a
    #: subclass does not inherit it): their reads are cheap enough for the event loop when the raw store's are.
    _LOOP_SAFE: ClassVar[bool] = False

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

    def _uri(self, key: str) -> str:
        key = key.strip().lower()
        prefix, template = self.prefix, self.FAMILY.template
        return prefix.replace(template, key) if template in prefix else prefix + key

    def get(self, key: str) -> bytes:
        self._check_valid(key)
        return self._read(key, self.base_store.get)

    def _read(self, key: str, base_get: Callable[[str], bytes]) -> bytes:
        """``get`` of a valid ``key`` with ``base_get`` as the base store's ``get`` (the async engine passes the
        answer it already has)."""
        try:
            data = base_get(self._uri(key))
        except InvalidDataFound:
            raise
        except NotFoundInStore as exc:
            raise NotFoundInStore(self, key) from exc
        if self.verify:
            self._verify_data(data, key)
        return data

    def _reads_as_written(self) -> bool:
        """Whether this store's reading code is ``HashStore``'s own (a subclass that changes it takes no route)."""
        cls = type(self)
        return (cls._result is Store._result and cls._fetch is Store._fetch and cls.get is HashStore.get
                and cls._read is HashStore._read)

    def async_route(self) -> Route | None:
        """The base store's raw route, seen through this store's keys and reading code (``_uri``, ``_read``)."""
        if not self._reads_as_written():
            return None
        base = self.base_store.async_route()
        return base.over(self, self._uri, self._read) if isinstance(base, Route) else None

    def lists_remotely(self) -> bool:
        remote = getattr(self.base_store, "lists_remotely", None)
        return bool(callable(remote) and remote())

    def reads_on_loop(self) -> bool:
        return (self._reads_as_written() and type(self).__dict__.get("_LOOP_SAFE", False)
                and self.base_store.reads_on_loop())

    def hits_on_loop(self) -> bool:
        return (self._reads_as_written() and type(self).__dict__.get("_LOOP_SAFE", False)
                and self.base_store.hits_on_loop())

    def usage(self) -> Usage | None:
        """The base store's, when it is bounded (``max_bytes``)."""
        usage = getattr(self.base_store, "usage", None)
        return usage() if callable(usage) else None

    def prepare_writes(self) -> None:
        prepare = getattr(self.base_store, "prepare_writes", None)
        if callable(prepare):
            prepare()

    def put(self, key: str, data: bytes) -> Any:
        self._check_valid(key)
        if self.verify:
            self._verify_data(data, key)
        return self.base_store.put(self._uri(key), data)

    def _put_verified(self, key: str, data: bytes) -> Any:
        """``put`` of bytes whose hash the caller has just checked against ``key`` (write-back): no second hash."""
        return self.base_store.put(self._uri(key), data)

    def head(self, key: str) -> int:
        """The size of the blob at ``prefix + key`` (HEAD or ``stat`` on the base store; nothing verified)."""
        self._check_valid(key)
        try:
            return self.base_store.head(self._uri(key))
        except InvalidDataFound:
            raise
        except NotFoundInStore as exc:
            raise NotFoundInStore(self, key) from exc

    def open(self, key: str) -> IO[bytes]:
        """The base store's file object for the blob, streamed. Not verified (the bytes are not all read here):
        ``bitstore get -o`` checks the hash while it streams."""
        self._check_valid(key)
        try:
            return self.base_store.open(self._uri(key))
        except InvalidDataFound:
            raise
        except NotFoundInStore as exc:
            raise NotFoundInStore(self, key) from exc


    # --- listing, deleting, streamed writes (``core.listing``, ``core.scrub``, ``core.replicate``) -------------
    def put_stream(self, key: str, stream: IO[bytes]) -> Any:
        """Write what ``stream`` reads (not verified here: ``replicate`` checks the bytes as it spools them)."""
        self._check_valid(key)
        put_stream = getattr(self.base_store, "put_stream", None)
        if not callable(put_stream):
            raise NotImplementedError(f"{self.base_store.name} cannot write a stream (no 'put_stream')")
        return put_stream(self._uri(key), stream)

    def delete(self, key: str) -> None:
        """Remove the blob from the base store (one that is not there is fine)."""
        self._check_valid(key)
        self.base_store.delete(self._uri(key))

    def iter_keys(self, *, start_after: str | None = None) -> Iterator[str]:
        """The keys under ``prefix`` on the base store, canonical, ascending, page by page (``core.listing``)."""
        return (entry.name for entry in self._listed(start_after))

    def _listed(self, start_after: str | None) -> Iterator[Listed]:
        if self.FAMILY.template in self.prefix:
            raise NotImplementedError(f"{self.name} cannot list its keys: its prefix is a template (the key is not "
                                      "at the end of a name)")
        return keys_under(self, self.base_store, self.prefix, start_after)


class HashCache(HashStore):
    """A ``HashStore`` used as a cache: ``put`` never raises and returns whether the blob was stored.

    Failures are logged once per cause and counted in ``write_failures``; with ``verify=True`` (the
    default) bytes whose hash does not match are never stored. A blob larger than a bounded base store's
    ``max_bytes`` (``BlobTooLarge``) is not stored either: counted in ``write_failures`` and ``too_large``.
    """

    def __init__(self, base_store: Store, prefix: str, verify: bool = True, *, name: str | None = None):
        super().__init__(base_store, prefix, verify, name=name)
        self.write_failures = Counter()
        self.too_large = Counter()

    def put(self, key: str, data: bytes) -> bool:
        return self._guarded(HashStore.put, key, data)

    def _put_verified(self, key: str, data: bytes) -> bool:
        return self._guarded(HashStore._put_verified, key, data)

    def _guarded(self, put: Callable[[HashStore, str, bytes], Any], key: str, data: bytes) -> bool:
        try:
            put(self, key, data)
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
        logger.debug("cached %s in %s", key, self.name)
        return True


class HashAPISource(HashFormatMixin, VerifyHashMixin, Store, ABC):
    """Base for API sources: implement ``api_get(key) -> bytes | None`` (None means not found).

    A ``Composite`` writes an API source's hits back to its cache unless told otherwise.
    """

    DEFAULT_CACHE_RESULT = True

    def __init__(self, verify: bool = False, *, name: str | None = None):
        super().__init__(name=name)
        self.verify = verify

    def get(self, key: str) -> bytes:
        self._check_valid(key)
        data = self.api_get(key.strip().lower())
        if data is None:
            raise NotFoundInStore(self, key)
        if self.verify:
            data = self._verify_data(data, key)
        return data

    @abstractmethod
    def api_get(self, key: str) -> bytes | None:
        """The blob's bytes, or None when the API does not have it."""


#: Per class: whether its key checks are ``HashComposite``'s own (asked per key on the hot path).
_OWN_KEYS: dict[type, bool] = {}


class HashComposite(HashFormatMixin, VerifyHashMixin, Composite):
    """A ``Composite`` keyed by the family's hash: accepts ``<hex>`` and ``<name>://<hex>`` in any case,
    surrounding whitespace ignored.

    Every write through it (``put`` and write-back) is checked against the key's hash in one place
    (``_checked_put``), whatever the cache's own ``verify``, so a cache is never poisoned.
    """

    def is_valid(self, uri: Any) -> bool:
        return self.FAMILY.canonical(uri) is not None

    def canonical_key(self, key: Any) -> Any:
        canonical = self.FAMILY.canonical(key)
        return key if canonical is None else canonical

    def _walk(self, uri: Any) -> Generator[TierGet | WriteBack, Any, tuple[bytes, str, bool | None]]:
        if self._own_keys():  # one match gives both the verdict and the canonical key
            key = self.FAMILY.canonical(uri)
            if key is None:
                raise InvalidURI(self, uri, hint=self.URI_HINT)
            return super()._walk(key, checked=True)
        self._check_valid(uri)
        return super()._walk(self.canonical_key(uri))

    def _own_keys(self) -> bool:
        """Whether this composite's key checks are this class's (a subclass's own ``is_valid`` is asked as such)."""
        cls = type(self)
        own = _OWN_KEYS.get(cls)
        if own is None:
            own = _OWN_KEYS[cls] = (cls.is_valid is HashComposite.is_valid and cls.accepts is Store.accepts
                                    and cls.canonical_key is HashComposite.canonical_key)
        return own

    def _accepted_canonical(self, key: Any) -> tuple[bool, Any]:
        """``(accepts(key), canonical_key(key))`` with one match when the key checks are this class's own."""
        if self._own_keys():
            canonical = self.FAMILY.canonical(key)
            return canonical is not None, canonical
        return super()._accepted_canonical(key)

    def hit_reader(self) -> Callable[[str], bytes] | None:
        """``get`` of a canonical key, for a server's hot path over a first tier read locally (ours: a file, a dict;
        no limits, no write-back): that tier's read asked directly, timed and counted as ``Tier.get`` counts it and
        verified by its store as ever; any other answer (a miss, a failure, a corrupt copy) goes on through the
        walk from there, and a key remembered missing takes the walk. None when the stack is not such a one."""
        tier = self._local_first_tier()
        if tier is None:
            return None
        store = tier.store
        read, raw_get, stats = store._read, store.base_store.get, tier.stats

        def get(key: str) -> bytes:
            missing = self._missing
            if tier.limited or (missing is not None and key in missing):
                return self._fetch(key)[0]
            now = tier.clock.monotonic
            start = now()
            try:
                data = read(key, raw_get)
            except Exception as exc:  # counted as the tier's, then the walk decides what it means
                tier.account(exc, now() - start)
                return self._resume(key, exc)[0]
            except BaseException as exc:
                tier.account(exc, now() - start)
                raise
            if type(data) is bytes:
                stats.hit(now() - start, len(data))
                return data
            tier.account(data, now() - start)
            return self._resume(key, data)[0]

        return get

    def first_hit(self) -> Callable[[str], bytes | None] | None:
        """A peek at the first tier for a canonical key, for a server's hot path over a stack whose first tier is
        read locally and whose others may not be (a bounded cache in front of a remote source): the blob's bytes
        when that tier has them (verified as its ``get`` verifies, timed and counted as ``Tier.get`` counts a hit),
        else None with nothing counted or logged (a miss, a key remembered missing, a corrupt copy, a failure, a
        tier under limits): the caller then fetches it as ever, and that fetch asks and counts the first tier
        itself. Never blocks on a remote tier (it asks none). None when the stack is not such a one."""
        tier = self._local_first_tier(hits_only=True)
        if tier is None:
            return None
        store = tier.store
        raw_get, uri_of, stats, family = store.base_store.get, store._uri, tier.stats, self.FAMILY

        def peek(key: str) -> bytes | None:
            missing = self._missing
            if tier.limited or (missing is not None and key in missing):
                return None
            now = tier.clock.monotonic
            start = now()
            try:
                data = raw_get(uri_of(key))
            except Exception:  # left to the fetch, which asks again and counts what it gets
                return None
            except BaseException as exc:
                tier.account(exc, now() - start)
                raise
            if type(data) is not bytes or (store.verify and family.hex(data) != key):
                return None  # a corrupt copy, or a value the walk judges: the fetch decides and counts
            stats.hit(now() - start, len(data))
            return data

        return peek

    def _local_first_tier(self, hits_only: bool = False) -> Tier | None:
        """The first tier when it can be read directly for this composite (``hit_reader``, ``first_hit``): this
        class's own walk and key checks, a tier of ours without limits or write-back, of this family, read
        locally (``reads_on_loop``; ``hits_on_loop`` with ``hits_only``: a bounded cache too); else None."""
        cls = type(self)
        if not (self._own_keys() and cls._fetch is Composite._fetch and cls.get is Composite.get
                and cls._walk is HashComposite._walk and self._tiers):
            return None
        tier = self._tiers[0]
        store = tier.store
        if (type(tier).get is not Tier.get or tier.limited or not isinstance(store, HashStore)
                or family_of(store) != self.FAMILY or (tier.write_back and store is not self.cache)
                or type(store).is_valid is not HashFormatMixin.is_valid or type(store).accepts is not Store.accepts
                or not (store.hits_on_loop() if hits_only else store.reads_on_loop())):
            return None
        return tier

    def _locate(self, uri: Any) -> tuple[int, str]:
        self._check_valid(uri)
        return super()._locate(self.canonical_key(uri))

    def open(self, uri: Any) -> IO[bytes]:
        self._check_valid(uri)
        return super().open(self.canonical_key(uri))

    def put(self, uri: Any, data: bytes) -> Any:
        """Write to the cache tier under the canonical (lowercase, bare) key; bytes that do not match it raise
        ``InvalidDataFound`` and are not written."""
        if self.cache is None:
            return super().put(uri, data)  # NotImplementedError, as the original
        self._check_valid(uri)
        key = self.canonical_key(uri)
        self.forget_missing(key)
        return self._checked_put(key, data)

    def _write_to_cache(self, data: bytes, uri: Any) -> bool:
        def put(key: str, data: bytes) -> Any:
            try:
                return self._checked_put(key, data)
            except InvalidDataFound:  # logged once by _verify_data: a tier served bytes that are not the blob
                return False

        return super()._write_to_cache(data, uri, put)

    def _checked_put(self, key: str, data: bytes) -> Any:
        """The one way bytes reach the cache: checked against ``key`` (canonical) first. A cache of ours keyed by
        the same hash is not asked to hash them again (a subclass's own ``put`` is kept)."""
        self._verify_data(data, key)
        cache = self.cache
        own = (isinstance(cache, HashStore) and family_of(cache) == self.FAMILY
               and type(cache).put in (HashStore.put, HashCache.put))
        return cache._put_verified(key, data) if own else cache.put(key, data)
