"""Spark: a DataFrame gains a blob column, fetched on the executors (``bitstore.integrations.spark``)."""
from .integrations.spark import (  # noqa: F401 - re-exported
    JAVA_INSTALL_HINT,
    JavaNotFound,
    check_java,
    enrich_dataframe,
    local_session,
)

__all__ = [
    "enrich_dataframe",
    "local_session",
    "check_java",
    "JavaNotFound",
    "JAVA_INSTALL_HINT",
]
