"""Zero-copy fetches: ``get_many(views=True)``, which the Arrow adapter uses.

A store's ``get`` returns ``bytes``, and so do ``fetch`` and ``get_many``. Between ``allow()`` and ``restore()`` a
transport that already holds a large body in a buffer of its own (the fast transport) may hand back a read-only
``memoryview`` of that buffer instead of copying it into ``bytes``; ``Store`` and ``Composite`` then pass such
views on as they are (a cache's ``put`` still gets ``bytes``). That saves one copy of every large blob. The flag
is context-local: the batch engine sets it around each fetch of a ``views=True`` call, in the worker thread that
runs it, so no other call ever sees a view.
"""
from __future__ import annotations

from contextvars import ContextVar, Token
from typing import Any

__all__ = ["VIEW_MIN_BYTES", "allow", "restore", "views_allowed", "blob"]

#: Smaller bodies are copied anyway: the copy is cheap, and a view of a small body can pin the whole
#: network read buffer it was sliced from.
VIEW_MIN_BYTES = 256 << 10

_views: ContextVar[bool] = ContextVar("bitstore_views", default=False)


def views_allowed() -> bool:
    """Whether the fetch running in this context may return a read-only view instead of ``bytes``."""
    return _views.get()


def allow() -> Token[bool]:
    """Allow views in this context until ``restore(token)`` (cheaper per fetch than a ``with`` block)."""
    return _views.set(True)


def restore(token: Token[bool]) -> None:
    _views.reset(token)


def blob(data: Any) -> bytes | memoryview:
    """``data`` as the result of a fetch: ``bytes`` (copied if need be), or, where views are allowed, a view
    of a buffer nobody can write to (a ``memoryview`` of a ``bytearray`` is copied: its owner could change it)."""
    if type(data) is bytes or (type(data) is memoryview and _views.get() and _immutable(data)):
        return data
    return bytes(data)


def _immutable(view: memoryview) -> bool:
    try:
        return view.readonly and memoryview(view.obj).readonly
    except (TypeError, ValueError):
        return False
