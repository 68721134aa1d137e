"""Where a worker's store comes from: a spec, a ``Store`` or a factory, built once per worker process.

A ``StoreSource`` is what travels inside pickled DoFns. It holds only the recipe (a validated spec, the
user's ``Store`` or a factory), never the store a worker built from it, so a pickled DoFn carries no
live client and no secret the library resolved itself. ``acquire()`` builds the store on first use
in a process and hands the same one to every thread of that process (``apache_beam.utils.shared``).
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, Union

from apache_beam.utils.shared import Shared

from bitstore import Store
from bitstore.spec import Spec, load_spec

__all__ = ["StoreLike", "StoreSource"]

StoreLike = Union[Spec, Mapping[str, Any], str, "os.PathLike[str]", Store, Callable[[], Store]]


class _Holder:
    """A weak-referenceable box for the shared store (``Shared`` keeps weak references only)."""

    __slots__ = ("store", "__weakref__")

    def __init__(self, store: Store):
        self.store = store


class StoreSource:
    """The recipe for a worker's store, and its per-process instance.

    ``store`` is a spec (a dict, a ``Spec``, or a TOML path read and checked now, when the transform is
    built), a ``Store`` (pickled to the workers with the pipeline) or a zero-argument callable returning one.
    """

    def __init__(self, store: StoreLike):
        if isinstance(store, Store):
            self._kind, self._recipe = "store", store
        elif isinstance(store, (Spec, Mapping, str, os.PathLike)):
            self._kind, self._recipe = "spec", load_spec(store)
        elif callable(store):
            self._kind, self._recipe = "factory", store
        else:
            raise TypeError(
                "store must be a spec (dict or TOML path), a bitstore Store or a zero-argument callable "
                f"returning one, not {type(store).__name__}"
            )
        self._shared = Shared()

    def build(self) -> Store:
        """A new store from the recipe (a spec is resolved here, on the worker)."""
        if self._kind == "spec":
            store = self._recipe.build()
        elif self._kind == "factory":
            store = self._recipe()
        else:
            store = self._recipe
        if not isinstance(store, Store):
            raise TypeError(f"the store factory returned {type(store).__name__}, not a bitstore Store")
        return store

    def acquire(self) -> Store:
        """This process's store, built on the first call and shared by every later caller.

        ``Shared`` keeps only a weak reference (and keeps alive just the last object acquired in the
        process), so this source holds the box itself: the store lives as long as a DoFn using it.
        """
        self._held = self._shared.acquire(lambda: _Holder(self.build()))
        return self._held.store

    def family(self):
        """The ``KeyFamily`` of this source's keys (None for a spec with ``keys = "uri"``, a store of no family, or a
        factory, whose store is known only on the worker)."""
        from bitstore.core.hashed import family_of
        from bitstore.core.keys import family_named

        if self._kind == "spec":
            named = family_named(self._recipe.keys)
            return None if named is None else named.family
        return family_of(self._recipe) if self._kind == "store" else None

    def key_column(self) -> str:
        """The default key field for this source's keys: ``sha256`` for SHA-256 keys, else ``sha1`` (a factory's
        store is known only on the worker: ``sha1``, unless the transform is given ``key_field``)."""
        from bitstore.core.keys import DEFAULT_KEY_COLUMN, key_column

        return DEFAULT_KEY_COLUMN if self._kind == "factory" else key_column(self._recipe)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_held", None)  # the worker's live store never travels
        return state

    def __repr__(self) -> str:
        if self._kind == "store":
            from bitstore.ground.errors import store_label

            return f"StoreSource(store={store_label(self._recipe)!r})"
        if self._kind == "factory":
            return f"StoreSource(factory={getattr(self._recipe, '__qualname__', type(self._recipe).__name__)})"
        return "StoreSource(spec)"

