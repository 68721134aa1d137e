"""Keys from listings: a keyed store's raw names turned into its keys, and a composite's tiers merged.

Written against a store's own key methods (``is_valid``, ``canonical_key``, ``key_for``), never a hash by name,
so every key family (SHA1, SHA-256, ...) lists, scrubs and replicates alike. ``listed(store)`` is the one entry:
``Listed(key, size)`` ascending, each key once; a store that cannot list raises ``NotImplementedError`` naming
it at once (when ``listed`` is called, not on the first ``next``), so nothing is ever silently partial.
"""
from __future__ import annotations

import hashlib
import heapq
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .listed import Listed
from .store import Store

__all__ = ["listed", "keys_under", "merged", "start_key", "hasher_for", "can_list", "can_delete", "read_ahead"]

#: Hashes tried, in this order, to tell from ``key_for(b"")`` which one a store's keys are.
_HASHES = ("sha1", "sha256", "sha512", "sha224", "sha384", "md5", "blake2b", "blake2s", "sha3_256", "sha3_512")


def can_list(store: Any) -> bool:
    """Whether ``store`` says it can list (a keyed store over a raw store with ``list_names``, a composite of
    such tiers); ``listed`` still raises if a tier turns out not to."""
    try:
        listed(store)
    except NotImplementedError:
        return False
    return True


def can_delete(store: Any) -> bool:
    base = getattr(store, "base_store", store)
    return type(base).delete is not Store.delete


def start_key(store: Any, start_after: Any) -> str | None:
    """``start_after`` as the listing compares it: a valid key in its canonical form, any other string as given."""
    if start_after is None:
        return None
    if not isinstance(start_after, str):
        raise TypeError(f"start_after must be a key (str) or None, not {type(start_after).__name__}")
    return store.canonical_key(start_after) if store.accepts(start_after) else start_after


def listed(store: Any, start_after: Any = None) -> Iterator[Listed]:
    """``Listed(key, size)`` of every key ``store`` holds after ``start_after``, ascending, each once."""
    own = getattr(store, "_listed", None)
    if callable(own):
        return own(start_after)
    if type(store).iter_keys is not Store.iter_keys:  # a user's store that lists keys its own way
        keys = store.iter_keys(start_after=start_after)
        return (Listed(key) for key in keys)
    return Store.iter_keys(store)  # raises NotImplementedError naming the store


def keys_under(store: Any, base: Store, prefix: str, start_after: Any) -> Iterator[Listed]:
    """The keys of ``store``, a keyed store over ``base`` at ``prefix``: the names of ``base.list_names`` that
    are valid canonical keys (temp files, other objects, keys in another case are skipped)."""
    if type(base).list_names is Store.list_names:
        raise NotImplementedError(f"{store.name} cannot list its keys: its store {base.name} cannot list "
                                  f"({type(base).__name__} has no 'list_names')")
    after = start_key(store, start_after)
    return _valid(store, base.list_names(prefix, start_after=after))


def _valid(store: Any, names: Iterable[Listed]) -> Iterator[Listed]:
    own = getattr(store, "canonical_match", None)
    match = own() if callable(own) else None
    if match is not None:  # one regex match per name where the store has one for its canonical keys
        for entry in names:
            if match(entry.name):
                yield entry
        return
    accepts, canonical = store.accepts, store.canonical_key
    for entry in names:
        name = entry.name
        if accepts(name) and canonical(name) == name:
            yield entry


def merged(listings: Iterable[Iterator[Listed]]) -> Iterator[Listed]:
    """Ascending listings merged lazily (a heap of their heads), each key once (the first listing's size)."""
    listings = list(listings)
    last = None
    # a composite of one listing tier: nothing to merge (no heap, no key function per entry)
    for entry in listings[0] if len(listings) == 1 else heapq.merge(*listings, key=lambda e: e.name):
        if entry.name != last:
            last = entry.name
            yield entry


def hasher_for(store: Any) -> Callable[[], Any]:
    """A factory of hashlib objects whose ``hexdigest()`` is a blob's key in ``store``: its ``new_hasher`` when it
    has one, else the hash whose digest of no bytes is ``store.key_for(b"")``."""
    own = getattr(store, "new_hasher", None)
    if callable(own):
        return own
    empty = store.key_for(b"")
    if isinstance(empty, str):
        for name in _HASHES:
            if hashlib.new(name, b"").hexdigest() == empty:
                return lambda name=name: hashlib.new(name)
    raise TypeError(f"{store.name} does not derive its keys from a blob's bytes by a known hash: nothing to "
                    "check its blobs against")


#: Entries a read-ahead listing hands over at a time, and batches it may hold ahead of its reader.
READ_AHEAD_BATCH = 1000
READ_AHEAD_BATCHES = 4


def read_ahead(entries: Iterator[Listed], name: str = "listing", batch_size: int = READ_AHEAD_BATCH,
               batches_ahead: int = READ_AHEAD_BATCHES) -> Iterator[Listed]:
    """``entries`` read on a thread of their own, started now and up to ``READ_AHEAD_BATCHES`` batches ahead of
    the reader (memory stays bounded), so two listings compared side by side wait on their services at the same
    time. The entries and their order are the same; an error of the listing is raised to the reader where it
    happened, after the entries read before it. A reader that stops early, or never starts, stops the thread at
    its next batch."""
    import queue
    import threading
    import weakref

    batches: queue.Queue = queue.Queue(batches_ahead)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                batches.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        batch: list[Listed] = []
        try:
            for entry in entries:
                batch.append(entry)
                if len(batch) >= batch_size:
                    if not put(batch):
                        return
                    batch = []
            if put(batch):
                put(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the reader, raised there
            if not batch or put(batch):
                put(exc)
        finally:
            close = getattr(entries, "close", None)
            if callable(close):
                close()

    def read() -> Iterator[Listed]:
        try:
            while True:
                item = batches.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield from item
        finally:
            stop.set()

    reader = read()
    weakref.finalize(reader, stop.set)  # a reader dropped before its first entry
    threading.Thread(target=produce, name=f"bitstore-{name}", daemon=True).start()
    return reader
