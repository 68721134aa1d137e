"""The original library's ``epic.bitstore.aws``: ``S3Raw`` and ``ANONYMOUS`` (boto3 is imported on first use)."""
from __future__ import annotations

from .backends.s3 import ANONYMOUS, S3Raw
from .errors import NotFoundInStore, StoreNotAvailable
from .store import Store

__all__ = ["S3Raw", "ANONYMOUS", "Store", "NotFoundInStore", "StoreNotAvailable"]
