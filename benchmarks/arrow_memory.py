"""Peak memory of ``bitstore.arrow.enrich_batches`` streaming a dataset many times larger than its byte budget.

Run it in a fresh process (the Arrow pool's peak is per process):

    .venv/bin/python benchmarks/arrow_memory.py                  # 640 MiB of blobs through a 64 MiB budget
    .venv/bin/python benchmarks/arrow_memory.py --budget-mib 16 --json

Blobs come from an API source that builds fresh bytes on every call (as a network read would), keyed by SHA1s
read from a Parquet dataset. Measured: the peak of Python allocations (tracemalloc), the peak of the Arrow
memory pool, and the growth of the process's peak RSS while streaming.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from bitstore import Sha1APISource, Sha1Composite, sha1_hex
from bitstore.arrow import enrich_batches

MiB = 1024 * 1024


class GeneratedBlobs(Sha1APISource):
    """Answers every SHA1 with ``blob_size`` fresh bytes."""

    def __init__(self, blob_size: int):
        super().__init__(name="generated")
        self.repeat = max(1, blob_size // 40)

    def api_get(self, sha1: str) -> bytes:
        return sha1.encode() * self.repeat


def _peak_rss() -> int:
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is bytes on macOS, KiB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def measure(*, blobs: int, blob_size: int, budget: int, batch_rows: int, max_workers: int) -> dict:
    """Stream ``blobs`` generated blobs through ``enrich_batches`` and report the peaks, in bytes."""
    store = Sha1Composite()
    store.append_source(GeneratedBlobs(blob_size))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "keys.parquet"
        pq.write_table(pa.table({"sha1": [sha1_hex(str(i).encode()) for i in range(blobs)]}), path)
        rss_before = _peak_rss()
        arrow_before = pa.total_allocated_bytes()
        tracemalloc.start()
        started = time.perf_counter()
        rows = streamed = batches = 0
        reader = enrich_batches(ds.dataset(path), store, max_workers=max_workers, max_bytes_in_flight=budget,
                                batch_size=batch_rows, progress=False)
        for batch in reader:
            rows += batch.num_rows
            streamed += batch.column("blob").buffers()[2].size
            batches += 1
        seconds = time.perf_counter() - started
        python_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return {
        "rows": rows,
        "batches": batches,
        "blob_bytes": streamed,
        "budget": budget,
        "batch_bytes": batch_rows * GeneratedBlobs(blob_size).repeat * 40,
        "python_peak": python_peak,
        "arrow_peak": pa.default_memory_pool().max_memory() - arrow_before,
        "rss_growth": _peak_rss() - rss_before,
        "seconds": seconds,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-mib", type=float, default=64, help="max_bytes_in_flight, MiB (default 64)")
    parser.add_argument("--factor", type=float, default=10, help="dataset size / budget (default 10)")
    parser.add_argument("--blob-kib", type=int, default=64, help="blob size, KiB (default 64)")
    parser.add_argument("--batch-rows", type=int, default=256, help="rows per batch (default 256)")
    parser.add_argument("--workers", type=int, default=64, help="max_workers (default 64)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)
    budget, blob_size = int(args.budget_mib * MiB), args.blob_kib * 1024
    blobs = max(1, int(budget * args.factor) // blob_size)
    figures = measure(blobs=blobs, blob_size=blob_size, budget=budget, batch_rows=args.batch_rows,
                      max_workers=args.workers)
    if args.json:
        print(json.dumps(figures))
        return
    print(f"enrich_batches: {figures['rows']:,} blobs of {args.blob_kib} KiB in {figures['batches']:,} batches, "
          f"{figures['seconds']:.2f} s")
    for label, key in [("blobs streamed", "blob_bytes"), ("max_bytes_in_flight", "budget"),
                       ("one output batch", "batch_bytes"), ("peak Python allocations", "python_peak"),
                       ("peak Arrow pool", "arrow_peak"), ("peak RSS growth", "rss_growth")]:
        print(f"  {label:<24} {figures[key] / MiB:9.1f} MiB")
    peak = figures["python_peak"] + figures["arrow_peak"]
    print(f"  Python + Arrow peak is {peak / figures['budget']:.2f}x the budget, "
          f"{peak / figures['blob_bytes']:.1%} of the data streamed")


if __name__ == "__main__":
    main()
