"""``Listed``: one name of a raw store's listing (``Store.list_names``) and its size."""
from __future__ import annotations

from typing import NamedTuple

__all__ = ["Listed"]


class Listed(NamedTuple):
    """A name relative to the listed prefix, and the blob's size in bytes (None when the listing does not say)."""

    name: str
    size: int | None = None
