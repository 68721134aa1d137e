"""bitstore: tiered, content-addressed (SHA1 or SHA-256) blob storage across S3, GCS, local disk and APIs.

``import bitstore`` imports no cloud SDK, Beam or Arrow: cloud backends and specs are loaded on first
use (``bitstore.S3Raw`` imports ``bitstore.backends.s3``, which imports boto3 only when a client is made).
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .backends.local import LocalRaw
from .backends.memory import MemoryRaw
from .core.bulk import BlobInfo, PutResult
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
from .core.sha256 import (
    Sha256APISource,
    Sha256Cache,
    Sha256Composite,
    Sha256FormatMixin,
    Sha256Store,
    VerifySha256Mixin,
    sha256_hex,
)
from .core.store import Store
from .ground.errors import (
    BitstoreError,
    BlobTooLarge,
    FetchFailed,
    InvalidDataFound,
    InvalidURI,
    NotFoundInStore,
    SpecError,
    StoreNotAvailable,
    Throttled,
)
from .ground.results import FetchResult
from .ground.retry import RetryPolicy

if TYPE_CHECKING:
    from .backends.azure import AZRaw
    from .backends.gcs import GSRaw
    from .backends.http import HTTPRaw
    from .backends.s3 import S3Raw
    from .core.replicate import ReplicateReport, replicate
    from .core.scrub import ScrubResult, scrub
    from .spec.load import from_spec
    from .spec.url_stores import from_url, from_urls

from .ground.version import __version__

# name -> module; imported on first attribute access so that no heavy dependency loads with bitstore.
_LAZY = {
    "S3Raw": "bitstore.backends.s3",
    "GSRaw": "bitstore.backends.gcs",
    "HTTPRaw": "bitstore.backends.http",
    "AZRaw": "bitstore.backends.azure",
    "from_spec": "bitstore.spec.load",
    "from_url": "bitstore.spec.url_stores",
    "from_urls": "bitstore.spec.url_stores",
    "scrub": "bitstore.core.scrub",
    "ScrubResult": "bitstore.core.scrub",
    "replicate": "bitstore.core.replicate",
    "ReplicateReport": "bitstore.core.replicate",
}

__all__ = [
    "__version__", "Store", "FetchResult", "BlobInfo", "PutResult", "Composite",
    "Sha1Store", "Sha1Cache", "Sha1APISource", "Sha1Composite", "Sha1FormatMixin", "VerifySha1Mixin", "sha1_hex",
    "Sha256Store", "Sha256Cache", "Sha256APISource", "Sha256Composite", "Sha256FormatMixin", "VerifySha256Mixin",
    "sha256_hex",
    "LocalRaw", "MemoryRaw", "S3Raw", "GSRaw", "AZRaw", "HTTPRaw", "from_spec", "from_url", "from_urls",
    "RetryPolicy",
    "scrub", "ScrubResult", "replicate", "ReplicateReport",
    "BitstoreError", "NotFoundInStore", "InvalidDataFound", "StoreNotAvailable", "InvalidURI", "FetchFailed",
    "BlobTooLarge", "SpecError", "Throttled",
]


#: The original library's module names (``epic.bitstore.exc`` -> ``bitstore.exc``), imported on first access.
_COMPAT_MODULES = ("exc", "aws", "gcp", "sha1", "store", "composite")


def __getattr__(name: str):
    if name in _COMPAT_MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'bitstore' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
