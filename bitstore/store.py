"""The original library's ``epic.bitstore.store``: ``Store`` (``bitstore.core.store``)."""
from .core.store import DEFAULT_MAX_BYTES_IN_FLIGHT, Store
from .ground.errors import InvalidURI
from .ground.results import FetchResult, Status

__all__ = ["Store", "FetchResult", "Status", "DEFAULT_MAX_BYTES_IN_FLIGHT", "InvalidURI"]
