"""The original library's ``epic.bitstore.gcp``: ``GSRaw`` and ``ANONYMOUS`` (google-cloud-storage is imported
on first use)."""
from __future__ import annotations

from .backends.gcs import ANONYMOUS, GSRaw
from .errors import NotFoundInStore, StoreNotAvailable
from .store import Store

__all__ = ["GSRaw", "ANONYMOUS", "Store", "NotFoundInStore", "StoreNotAvailable"]
