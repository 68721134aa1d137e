"""Apache Beam transforms for bitstore: ``FetchBlobs``, ``EnrichWithBlobs`` and ``BitstoreEnrichmentHandler``.

``python -m beam_transforms.pipeline`` runs the whole fetch (the same job as ``bitstore fetch``) as a
pipeline. Needs the ``beam`` extra: ``pip install 'bitstore-tiered[beam]'``.
"""
from __future__ import annotations

try:
    import apache_beam  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("beam_transforms needs Apache Beam: pip install 'bitstore-tiered[beam]'") from exc

from .enrichment import BitstoreEnrichmentHandler, EnrichWithBlobs
from .fetch import FetchBlobs, FetchBlobsResult

__all__ = ["FetchBlobs", "FetchBlobsResult", "EnrichWithBlobs", "BitstoreEnrichmentHandler"]
