"""The ``bitstore`` command (``main``) and ``bitstore demo`` (``demo``).

May import everything else in bitstore; nothing in bitstore imports it.
"""
from .main import EXIT_FAILED, EXIT_MISSING, EXIT_OK, EXIT_USAGE, main

__all__ = ["main", "EXIT_OK", "EXIT_MISSING", "EXIT_USAGE", "EXIT_FAILED"]
