"""The original library's ``epic.bitstore.aws``: ``S3Raw`` and ``ANONYMOUS`` (boto3 is imported on first use)."""
from __future__ import annotations

from .backends.s3 import ANONYMOUS, S3Raw
from .core.store import Store
from .ground.errors import NotFoundInStore, StoreNotAvailable

__all__ = ["S3Raw", "ANONYMOUS", "Store", "NotFoundInStore", "StoreNotAvailable"]
