"""The original library's ``epic.bitstore.sha1``: the SHA1 stores (``bitstore.core.sha1``)."""
from .core.composite import Composite
from .core.sha1 import (
    Sha1APISource,
    Sha1Cache,
    Sha1Composite,
    Sha1FormatMixin,
    Sha1Store,
    VerifySha1Mixin,
    sha1_hex,
)
from .core.store import Store
from .ground.errors import InvalidDataFound, NotFoundInStore

__all__ = [
    "Sha1FormatMixin",
    "InvalidDataFound",
    "VerifySha1Mixin",
    "Sha1Store",
    "Sha1APISource",
    "Sha1Composite",
    "Sha1Cache",
    "sha1_hex",
    "Composite",
    "NotFoundInStore",
    "Store",
]
