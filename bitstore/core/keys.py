"""The key families by name (a spec's ``keys``): each one's hash and the classes that store blobs under it.

``keys = "uri"`` is no family: the tiers serve whole URIs (a plain ``Composite``). ``key_column`` is the default
name of the key column in tables (the fetch job, Arrow, Beam, Spark, Ray): the family's name, ``sha1`` otherwise.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .hashed import HashCache, HashComposite, HashStore, KeyFamily, family_of
from .sha1 import SHA1, Sha1Cache, Sha1Composite, Sha1Store
from .sha256 import SHA256, Sha256Cache, Sha256Composite, Sha256Store

__all__ = ["FamilyClasses", "FAMILIES", "KEY_NAMES", "family_named", "key_column", "DEFAULT_KEY_COLUMN"]

#: The key column of a store or spec that names no family (``keys = "uri"``, a user's store), as before.
DEFAULT_KEY_COLUMN = "sha1"


@dataclass(frozen=True)
class FamilyClasses:
    """A family and its stores: a tier (``store``), the cache tier (``cache``) and the ``composite``."""

    family: KeyFamily
    store: type[HashStore]
    cache: type[HashCache]
    composite: type[HashComposite]


FAMILIES: dict[str, FamilyClasses] = {
    "sha1": FamilyClasses(SHA1, Sha1Store, Sha1Cache, Sha1Composite),
    "sha256": FamilyClasses(SHA256, Sha256Store, Sha256Cache, Sha256Composite),
}
#: What a spec's ``keys`` may say.
KEY_NAMES = (*FAMILIES, "uri")


def family_named(name: str) -> FamilyClasses | None:
    """The family a spec's ``keys`` names, or None for ``uri``."""
    return FAMILIES.get(name)


def key_column(keyed: Any) -> str:
    """The default key column for a store, a spec (its ``keys``) or a ``keys`` name: the family's name (``sha256``
    for SHA-256 keys), else ``sha1``."""
    if isinstance(keyed, str):
        name = keyed
    else:
        family = family_of(keyed)
        name = family.name if family is not None else getattr(keyed, "keys", None)
    return name if name in FAMILIES else DEFAULT_KEY_COLUMN
