"""The original library's ``epic.bitstore.exc``: ``from epic.bitstore.exc import X`` becomes
``from bitstore.exc import X``. The classes are bitstore's own (``bitstore.ground.errors``); ``ParameterizedException``,
the original's base class, is ``BitstoreError``."""
from __future__ import annotations

from .ground.errors import (
    BitstoreError,
    BlobTooLarge,
    FetchFailed,
    InvalidDataFound,
    InvalidURI,
    NotFoundInStore,
    SpecError,
    StoreNotAvailable,
)

ParameterizedException = BitstoreError

__all__ = [
    "StoreNotAvailable", "NotFoundInStore", "InvalidURI", "ParameterizedException",
    "BitstoreError", "InvalidDataFound", "FetchFailed", "BlobTooLarge", "SpecError",
]
