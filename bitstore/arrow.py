"""Arrow: tables and streams of record batches gain a blob column (``bitstore.integrations.arrow``)."""
from .integrations.arrow import (  # noqa: F401 - re-exported
    DATASET_BATCH_ROWS,
    ColumnError,
    ColumnExists,
    ColumnTypeError,
    MissingColumn,
    enrich_batches,
    enrich_table,
)

__all__ = [
    "enrich_table",
    "enrich_batches",
    "ColumnError",
    "MissingColumn",
    "ColumnTypeError",
    "ColumnExists",
    "DATASET_BATCH_ROWS",
]
