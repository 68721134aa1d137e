"""Ray Data: a Dataset gains a blob column, fetched by Ray tasks (``bitstore.integrations.ray``)."""
from .integrations.ray import (  # noqa: F401 - re-exported
    ACTOR_NUM_CPUS,
    TASK_NUM_CPUS,
    enrich_dataset,
    local_cluster,
)

__all__ = [
    "enrich_dataset",
    "local_cluster",
    "TASK_NUM_CPUS",
    "ACTOR_NUM_CPUS",
]
