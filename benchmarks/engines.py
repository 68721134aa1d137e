"""Spark and Ray contenders: ``enrich_dataframe`` / ``enrich_dataset`` on the same keys as ``get_many``.

Steady state: the session or cluster is started when the contender is built (untimed; its start-up time is
reported apart, in the row's note and JSON), and a warm-up job runs before the timed one. Each timed job sends
the keys to the engine, fetches them on 2 workers with 32 threads each (64 requests in flight, as
``get_many``), and sums the blobs' count and bytes on the workers (the blobs are not collected to the driver).
"""
from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence

from .measure import Contender, Fetcher, Unavailable
from .remote import Target

__all__ = ["engine_contenders", "ENGINE_WORKERS", "THREADS_PER_WORKER"]

ENGINE_WORKERS = 2
THREADS_PER_WORKER = 32
#: Start-up seconds of each engine, for the report (the timed rows leave it out).
STARTUP: dict[str, float] = {}


def _spec(t: Target) -> dict:
    tier = {"type": t.protocol, "prefix": t.uri_prefix, "name": "bench"}
    tier["endpoint_url" if t.protocol == "s3" else "endpoint"] = t.endpoint
    return {"keys": "sha1", "tier": [tier]}


def _key_table(keys: Sequence[str]):
    """The keys in one chunk per worker: one Spark partition / Ray block each."""
    import pyarrow as pa

    step = -(-len(keys) // ENGINE_WORKERS)
    return [pa.table({"sha1": pa.array(list(keys[o:o + step]), pa.string())}) for o in range(0, len(keys), step)]


def _spark(t: Target) -> Fetcher:
    try:
        from pyspark.sql import functions as F

        from bitstore.spark import JavaNotFound, enrich_dataframe, local_session
    except ImportError as exc:
        raise Unavailable(f"pyspark not installed: {exc}") from None
    start = time.perf_counter()
    try:
        spark = local_session(f"local[{ENGINE_WORKERS}]")
    except JavaNotFound as exc:
        raise Unavailable(str(exc)) from None
    STARTUP.setdefault("spark", time.perf_counter() - start)
    spec = _spec(t)

    def fetch(keys: Sequence[str]) -> tuple[int, int]:
        import pyarrow as pa

        df = spark.createDataFrame(pa.concat_tables(_key_table(keys)))  # one partition per chunk
        out = enrich_dataframe(df, spec, max_workers=THREADS_PER_WORKER)
        row = out.agg(F.count("blob").alias("n"), F.sum(F.length("blob")).alias("bytes")).collect()[0]
        return int(row["n"]), int(row["bytes"] or 0)

    return fetch


def _ray(t: Target) -> Fetcher:
    try:
        from bitstore.ray import enrich_dataset, local_cluster
    except ImportError as exc:
        raise Unavailable(f"ray not installed: {exc}") from None
    start = time.perf_counter()
    local_cluster(num_cpus=ENGINE_WORKERS, temp_dir=tempfile.mkdtemp(prefix="bitstore-bench-ray-"),
                  env={k: v for k, v in os.environ.items() if k.startswith(("AWS_", "STORAGE_EMULATOR"))})
    import pyarrow as pa
    import pyarrow.compute as pc
    import ray.data

    STARTUP.setdefault("ray", time.perf_counter() - start)
    ray.data.DataContext.get_current().enable_progress_bars = False
    spec = _spec(t)

    def totals(table: pa.Table) -> pa.Table:
        blobs = table.column("blob")
        return pa.table({"n": [len(blobs) - blobs.null_count],
                         "bytes": [pc.sum(pc.binary_length(blobs)).as_py() or 0]})

    def fetch(keys: Sequence[str]) -> tuple[int, int]:
        pool = ray.data.ActorPoolStrategy(size=ENGINE_WORKERS, max_tasks_in_flight_per_actor=1)
        ds = enrich_dataset(ray.data.from_arrow(_key_table(keys)), spec, max_workers=THREADS_PER_WORKER, compute=pool)
        parts = ds.map_batches(totals, batch_format="pyarrow", batch_size=None).take_all()
        return sum(p["n"] for p in parts), sum(p["bytes"] for p in parts)

    return fetch


def engine_contenders() -> list[Contender]:
    return [
        Contender(f"spark enrich_dataframe (local[{ENGINE_WORKERS}], {THREADS_PER_WORKER} threads per task)",
                  _spark),
        Contender(f"ray enrich_dataset ({ENGINE_WORKERS} actors, {THREADS_PER_WORKER} threads each)", _ray),
    ]
