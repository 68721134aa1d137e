"""The protocol between stores and the event-loop engine: how a store's keys may be fetched on the loop.

A store answers ``Store.async_route()`` with one of these, or ``None`` (its keys go on threads), and
``Store.reads_on_loop()`` says whether a read of it is cheap enough to make on the loop itself (a syscall or a
dict lookup: a hop to a thread and back costs more). The engine knows these records and nothing of the stores
that make them, so a user's own ``Store`` subclass can take the fast path by answering the same way.
``Store.keys_on_loop()`` says whether its key checks (``accepts``, ``canonical_key``) may run on a caller's loop
(``onloop``): a user's ``is_valid`` may block, so it is asked on a thread.

- ``Route``: a store whose raw GET can be attempted on the loop. ``attempt(uri, views)`` is a coroutine that
  returns the bytes (or a view), returns a ``NotFoundInStore`` when the service itself said the blob is not
  there, or raises ``Fallback`` for anything else (the store's own synchronous path then takes the key, going on
  from the failed attempt: ``Fallback.made``). ``read(key, get)`` is the store's own reading code around that
  raw get (a SHA1 check, say), ``uri_of(key)`` the raw uri of a key (``None``: the key itself).
- ``CompositeRoute``: a composite whose tier walk (``TierGet``/``WriteBack`` steps, driven by whoever fetches)
  the loop may drive, with the ``Route`` of each tier whose first attempts may be made there.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from typing import Any, NamedTuple, Protocol

__all__ = ["Fetchable", "Route", "CompositeRoute", "Fallback", "TierGet", "WriteBack", "OffLoop", "replay"]


class Fetchable(Protocol):
    """What the engine asks of a store (``bitstore.Store`` answers all of it)."""

    name: str

    def accepts(self, key: Any) -> bool: ...

    def canonical_key(self, key: Any) -> Hashable: ...

    def async_route(self) -> Route | CompositeRoute | None: ...

    def keys_on_loop(self) -> bool: ...


class Fallback(Exception):
    """The loop's attempt has no answer it may give: the store's own path takes the key. ``made``: ``(uri, error,
    started)`` of the attempt when one was made, so the store's retry policy goes on from it."""

    def __init__(self, made: tuple[Any, BaseException, float] | None = None):
        super().__init__()
        self.made = made


class Route:
    """How one store's keys reach a raw store's GET on the loop (see the module doc)."""

    __slots__ = ("store", "attempt", "usable", "uri_of", "read")

    def __init__(self, store: Any, attempt: Callable[[str, bool], Awaitable[Any]], usable: Callable[[], bool],
                 uri_of: Callable[[Any], str] | None = None,
                 read: Callable[[Any, Callable[[str], Any]], Any] | None = None):
        self.store, self.attempt, self.usable, self.uri_of, self.read = store, attempt, usable, uri_of, read

    def uri(self, key: Any) -> Any:
        return key if self.uri_of is None else self.uri_of(key)

    def answer(self, key: Any, get: Callable[[Any], Any]) -> Any:
        """The store's reading code around ``get`` (the raw outcome replayed)."""
        return get(key) if self.read is None else self.read(key, get)

    def over(self, store: Any, uri_of: Callable[[Any], str], read: Callable[[Any, Callable[[str], Any]], Any]
             ) -> Route | None:
        """This raw route seen through a store that wraps the raw one (a ``Sha1Store`` over it), or None when
        this route is not a raw one."""
        if self.uri_of is not None or self.read is not None:
            return None
        return Route(store, self.attempt, self.usable, uri_of, read)


class CompositeRoute:
    """How a composite's keys are fetched on the loop: its walk (``store._walk``), the ``Route`` of each tier (by
    ``id``) whose first attempts may be made there (checked again per key: a tier throttled since has a limiter),
    and the tiers read on the loop itself (``local``)."""

    __slots__ = ("store", "tiers", "local")

    def __init__(self, store: Any, tiers: dict[int, Route], local: frozenset[int] = frozenset()):
        self.store, self.tiers, self.local = store, tiers, local

    def tier_route(self, tier: Any) -> Route | None:
        route = self.tiers.get(id(tier))
        return route if route is not None and not tier.limited and route.usable() else None

    def inline(self, tier: Any) -> bool:
        return id(tier) in self.local and not tier.limited


class TierGet(NamedTuple):
    """A step of a composite's walk: ask ``tier`` for ``uri`` (send its bytes back, or throw its error)."""

    tier: Any
    uri: Any


class WriteBack(NamedTuple):
    """A step of a composite's walk: write ``data`` to the cache under ``uri`` (send back whether it stored it)."""

    data: bytes
    uri: Any


class OffLoop(NamedTuple):
    """A step of a composite's walk: ``call()``, which may block (a user store's ``is_valid``); the event loop's
    driver makes it on a thread, a thread's driver inline. Send back its value."""

    call: Callable[[], Any]


def replay(outcome: Any) -> Callable[[Any], Any]:
    """A ``get`` that answers ``outcome`` (returned, or raised when it is an exception) whatever it is asked: a raw
    outcome handed to a store's reading code (``Route.answer``, ``Store._answer``)."""
    def get(_uri: Any) -> Any:
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return get
