"""The original library's ``epic.bitstore.gcp``: ``GSRaw`` and ``ANONYMOUS`` (google-cloud-storage is imported
on first use)."""
from __future__ import annotations

from .backends.gcs import ANONYMOUS, GSRaw
from .core.store import Store
from .ground.errors import NotFoundInStore, StoreNotAvailable

__all__ = ["GSRaw", "ANONYMOUS", "Store", "NotFoundInStore", "StoreNotAvailable"]
