"""Spark and Ray contenders: ``enrich_dataframe`` / ``enrich_dataset`` on the same keys as ``get_many``.

Steady state: the session or cluster is started when the contender is built (untimed; its start-up time is
reported apart, in the row's note and JSON), and a warm-up job runs before the timed one (Spark's Python
workers and Ray's worker processes, with their stores, are kept between jobs). Each timed job sends the keys
to the engine, fetches them on 2 workers with 32 threads each (64 requests in flight, as ``get_many``), and
sums the blobs' count and bytes on the workers (the blobs are not collected to the driver). The CPU time of
the engine's processes (the JVM and its Python workers; Ray's daemons and workers) is added to the driver's.
"""
from __future__ import annotations

import atexit
import os
import shutil
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


def _tree_cpu() -> float:
    """CPU seconds of this process's descendants (the engine's processes), including their reaped children;
    the benchmark's object server is left out."""
    import psutil

    total = 0.0
    for proc in psutil.Process().children(recursive=True):
        try:
            if "benchmarks.server" in proc.cmdline():
                continue
            t = proc.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
        except psutil.Error:
            pass
    return total


class _Counted:
    """A fetcher that also reports the CPU its engine's processes spent in the last call (``worker_cpu_s``)."""

    def __init__(self, fetch: Fetcher):
        self.fetch, self.worker_cpu_s = fetch, 0.0

    def __call__(self, keys: Sequence[str]) -> tuple[int, int]:
        before = _tree_cpu()
        try:
            return self.fetch(keys)
        finally:
            self.worker_cpu_s = _tree_cpu() - before


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

    return _Counted(fetch)


def _ray(t: Target) -> Fetcher:
    try:
        from bitstore.ray import TASK_NUM_CPUS, enrich_dataset, local_cluster
    except ImportError as exc:
        raise Unavailable(f"ray not installed: {exc}") from None
    start = time.perf_counter()
    temp_dir = tempfile.mkdtemp(prefix="bitstore-bench-ray-")
    atexit.register(_remove_ray_dir, temp_dir)  # before ray.init registers its own handler: runs after it
    local_cluster(num_cpus=ENGINE_WORKERS, temp_dir=temp_dir,
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
        ds = enrich_dataset(ray.data.from_arrow(_key_table(keys)), spec, max_workers=THREADS_PER_WORKER)
        # Same resources as the enriching tasks, so Ray fuses the two: the blobs go to no object store.
        parts = ds.map_batches(totals, batch_format="pyarrow", batch_size=None, num_cpus=TASK_NUM_CPUS).take_all()
        return sum(p["n"] for p in parts), sum(p["bytes"] for p in parts)

    return _Counted(fetch)


def _remove_ray_dir(path: str) -> None:
    """At exit: the local cluster stopped, then its temp dir (sessions, logs, sockets) removed."""
    import ray

    ray.shutdown()
    shutil.rmtree(path, ignore_errors=True)


#: Warm-up keys of the engines: enough that the warm-up's tasks overlap, so every worker process the timed job
#: uses has started and built its store (with 64 keys one worker could run both tasks, one after the other).
ENGINE_WARMUP = 1024


def engine_contenders() -> list[Contender]:
    return [
        Contender(f"spark enrich_dataframe (local[{ENGINE_WORKERS}], {THREADS_PER_WORKER} threads per task)",
                  _spark, warmup=ENGINE_WARMUP),
        Contender(f"ray enrich_dataset ({ENGINE_WORKERS} tasks, {THREADS_PER_WORKER} threads each)", _ray,
                  warmup=ENGINE_WARMUP),
    ]


def main(argv: list[str] | None = None) -> int:
    """This case alone: ``python -m benchmarks.engines [--n 20000] [--repeat 5] [--delay-ms 20]``."""
    import argparse
    import json
    import statistics

    from .machine import machine_info
    from .measure import measure
    from .remote import point_sdks_at, remote_contenders
    from .server import ServerProcess

    parser = argparse.ArgumentParser(prog="python -m benchmarks.engines", description=main.__doc__)
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--delay-ms", type=float, default=20.0)
    parser.add_argument("--size", type=int, default=16 * 1024)
    parser.add_argument("--only", default="", help="comma-separated: spark,ray (get_many always runs)")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    wanted = [w for w in args.only.split(",") if w]
    contenders = [c for c in remote_contenders() if c.name == "bitstore get_many"]
    contenders += [c for c in engine_contenders() if not wanted or c.name.split()[0] in wanted]
    rates: dict[str, list[float]] = {c.name: [] for c in contenders}
    loads = []
    with ServerProcess() as server:
        point_sdks_at(server.endpoint)
        keys = server.fill("bench-engines", "blobs/", args.n + ENGINE_WARMUP, args.size, seed=3)
        server.set_delay(args.delay_ms)
        target = Target("s3", server.endpoint, "bench-engines", "blobs/")
        for round_ in range(args.repeat):
            for contender in contenders:
                row = measure("engines", contender, target, keys[: args.n], keys[args.n:], args.size, server)
                load = os.getloadavg()[0]
                loads.append(load)
                if not row.ok:
                    print(f"[{round_ + 1}] {contender.name}: {row.status}: {row.note}", flush=True)
                    continue
                rates[contender.name].append(row.blobs_per_s)
                print(f"[{round_ + 1}/{args.repeat}] {contender.name:<60} {row.blobs_per_s:8,.0f} blobs/s "
                      f"{row.cpu_ms_per_blob:5.2f} CPU-ms/blob (all processes)  load {load:.2f}", flush=True)
    reference = contenders[0].name
    out = {"machine": machine_info(), "n": args.n, "delay_ms": args.delay_ms, "size": args.size,
           "load_1min_during": [round(min(loads), 2), round(max(loads), 2)] if loads else None,
           "startup_s": {k: round(v, 1) for k, v in STARTUP.items()}, "contenders": {}}
    ref_rounds = rates[reference]
    for name, values in rates.items():
        if not values:
            continue
        entry = {"median_blobs_per_s": round(statistics.median(values)), "rounds": [round(v) for v in values]}
        if name != reference and len(values) == len(ref_rounds):
            ratios = [v / r for v, r in zip(values, ref_rounds)]  # each round against get_many in the same round
            entry["ratio_median"] = round(statistics.median(ratios), 3)
            entry["ratio_min_max"] = [round(min(ratios), 3), round(max(ratios), 3)]
        out["contenders"][name] = entry
        ratio = (f"  {entry['ratio_median']:.2f}x get_many ({entry['ratio_min_max'][0]:.2f}-"
                 f"{entry['ratio_min_max'][1]:.2f})" if "ratio_median" in entry else "")
        print(f"{name:<60} median {entry['median_blobs_per_s']:8,} blobs/s{ratio}")
    print(f"start-up (not timed): {out['startup_s']}; 1-min load during the run {out['load_1min_during']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
