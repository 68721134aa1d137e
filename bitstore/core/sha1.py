"""SHA1-addressed stores: ``Sha1Store``, ``Sha1Cache``, ``Sha1APISource``, ``Sha1Composite`` and their mixins.

The SHA1 key family over the generic machinery of ``core.hashed`` (``core.sha256`` is its twin).
"""
from __future__ import annotations

import hashlib
import re

from ..ground.errors import InvalidDataFound
from .hashed import (
    HashAPISource,
    HashCache,
    HashComposite,
    HashFormatMixin,
    HashStore,
    KeyFamily,
    VerifyHashMixin,
)

__all__ = [
    "SHA1",
    "Sha1FormatMixin",
    "VerifySha1Mixin",
    "InvalidDataFound",
    "Sha1Store",
    "Sha1Cache",
    "Sha1APISource",
    "Sha1Composite",
    "sha1_hex",
]

#: Keys of 40 hex digits, ``sha1://`` accepted by the composite.
SHA1 = KeyFamily("sha1", "SHA1", 40, hashlib.sha1)
#: Where the key goes in a prefix that is a template rather than a folder.
TEMPLATE = SHA1.template
_SHA1_URI = SHA1.uri


def sha1_hex(data: bytes) -> str:
    """The lowercase hex SHA1 of ``data``."""
    return SHA1.hex(data)


class Sha1FormatMixin(HashFormatMixin):
    """Accepts 40 hex digits, any case, with surrounding whitespace ignored (a line read from a file works,
    as in the original library); looks up the lowercase, stripped form."""

    FAMILY = SHA1
    URI_HINT = "<sha1>"
    _SHA1_REGEX = re.compile("[0-9a-fA-F]{40}")


class VerifySha1Mixin(VerifyHashMixin):
    """``_verify_data(data, sha1)`` returns ``data`` or raises ``InvalidDataFound``."""

    FAMILY = SHA1


class Sha1Store(Sha1FormatMixin, VerifySha1Mixin, HashStore):
    """Maps ``<sha1>`` to ``f"{prefix}{sha1.lower()}"`` on a raw store; a ``{sha1}`` in the prefix marks where the
    key goes instead (``https://api.example.com/v1/files?hash={sha1}``); ``verify=True`` checks the bytes' SHA1 on
    get and put."""

    _LOOP_SAFE = True


class Sha1Cache(HashCache, Sha1Store):
    """A ``Sha1Store`` used as a cache: ``put`` never raises and returns whether the blob was stored.

    Failures are logged once per cause and counted in ``write_failures``; with ``verify=True`` (the
    default) bytes whose SHA1 does not match are never stored. A blob larger than a bounded base store's
    ``max_bytes`` (``BlobTooLarge``) is not stored either: counted in ``write_failures`` and ``too_large``.
    """

    _LOOP_SAFE = True


class Sha1APISource(Sha1FormatMixin, VerifySha1Mixin, HashAPISource):
    """Base for API sources: implement ``api_get(sha1) -> bytes | None`` (None means not found).

    A ``Composite`` writes an API source's hits back to its cache unless told otherwise.
    """


class Sha1Composite(Sha1FormatMixin, VerifySha1Mixin, HashComposite):
    """A ``Composite`` keyed by SHA1: accepts ``<sha1>`` and ``sha1://<sha1>`` in any case, surrounding
    whitespace ignored. Every write through it is checked against the key's SHA1."""

    SHA1_URI_REGEX = _SHA1_URI
    URI_HINT = "<sha1> or sha1://<sha1>"
