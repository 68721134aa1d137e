"""The original library's ``epic.bitstore.composite``: ``Composite`` (``bitstore.core.composite``)."""
from .core.composite import Composite
from .core.store import Store
from .ground.errors import NotFoundInStore, StoreNotAvailable

__all__ = ["Composite", "NotFoundInStore", "Store", "StoreNotAvailable"]
