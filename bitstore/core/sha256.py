"""SHA-256-addressed stores: ``Sha256Store``, ``Sha256Cache``, ``Sha256APISource``, ``Sha256Composite``, mixins.

The SHA-256 key family over the generic machinery of ``core.hashed`` (``core.sha1`` is its twin).
"""
from __future__ import annotations

import hashlib

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
    "SHA256",
    "Sha256FormatMixin",
    "VerifySha256Mixin",
    "InvalidDataFound",
    "Sha256Store",
    "Sha256Cache",
    "Sha256APISource",
    "Sha256Composite",
    "sha256_hex",
]

#: Keys of 64 hex digits, ``sha256://`` accepted by the composite.
SHA256 = KeyFamily("sha256", "SHA-256", 64, hashlib.sha256)
#: Where the key goes in a prefix that is a template rather than a folder.
TEMPLATE = SHA256.template
_SHA256_URI = SHA256.uri


def sha256_hex(data: bytes) -> str:
    """The lowercase hex SHA-256 of ``data``."""
    return SHA256.hex(data)


class Sha256FormatMixin(HashFormatMixin):
    """Accepts 64 hex digits, any case, with surrounding whitespace ignored (a line read from a file works,
    as in the original library); looks up the lowercase, stripped form."""

    FAMILY = SHA256
    URI_HINT = "<sha256>"


class VerifySha256Mixin(VerifyHashMixin):
    """``_verify_data(data, sha256)`` returns ``data`` or raises ``InvalidDataFound``."""

    FAMILY = SHA256


class Sha256Store(Sha256FormatMixin, VerifySha256Mixin, HashStore):
    """Maps ``<sha256>`` to ``f"{prefix}{sha256.lower()}"`` on a raw store; a ``{sha256}`` in the prefix marks where
    the key goes instead; ``verify=True`` checks the bytes' SHA-256 on get and put."""

    _LOOP_SAFE = True


class Sha256Cache(HashCache, Sha256Store):
    """A ``Sha256Store`` used as a cache: ``put`` never raises and returns whether the blob was stored.

    Failures are logged once per cause and counted in ``write_failures``; with ``verify=True`` (the
    default) bytes whose SHA-256 does not match are never stored.
    """

    _LOOP_SAFE = True


class Sha256APISource(Sha256FormatMixin, VerifySha256Mixin, HashAPISource):
    """Base for API sources: implement ``api_get(sha256) -> bytes | None`` (None means not found).

    A ``Composite`` writes an API source's hits back to its cache unless told otherwise.
    """


class Sha256Composite(Sha256FormatMixin, VerifySha256Mixin, HashComposite):
    """A ``Composite`` keyed by SHA-256: accepts ``<sha256>`` and ``sha256://<sha256>`` in any case,
    surrounding whitespace ignored. Every write through it is checked against the key's SHA-256."""

    SHA256_URI_REGEX = _SHA256_URI
    URI_HINT = "<sha256> or sha256://<sha256>"
