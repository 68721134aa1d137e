"""Peak memory of ``bitstore fetch`` over 100,000 keys, against a fixed ceiling.

    .venv/bin/python benchmarks/cli_memory.py                      # 100,000 keys, ceiling 200 MiB
    .venv/bin/python benchmarks/cli_memory.py --keys 1000000 --json

Creates a local store of small blobs under a temporary ``BITSTORE_HOME`` (1% of the keys are left
missing), writes the keys to a ``.txt`` file, and runs the console script as a subprocess, polling its
RSS (psutil) and reading its peak RSS (``os.wait4`` rusage) when it ends. A run over a tenth
of the keys is measured first: if ``fetch`` streams, the two peaks are about the same. Exits 1 when the
peak is over the ceiling or the output is wrong.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pyarrow.parquet as pq

from bitstore import sha1_hex

MiB = 1024 * 1024
REPO = Path(__file__).resolve().parents[1]


def make_store(home: Path, keys: int, blob_bytes: int) -> Path:
    """``keys`` blobs of about ``blob_bytes`` each in ``home/blobs`` (every 100th left out); the keys file."""
    folder = home / "blobs"
    folder.mkdir(parents=True)
    keys_file = home / "keys.txt"
    pad = b"x" * max(0, blob_bytes - 12)
    with open(keys_file, "w") as out:
        for i in range(keys):
            data = pad + i.to_bytes(12, "big")
            key = sha1_hex(data)
            if i % 100:
                (folder / key).write_bytes(data)
            out.write(key + "\n")
    return keys_file


def run_fetch(home: Path, keys_file: Path, output: Path, workers: int, budget: int | None = None) -> dict:
    """Run ``bitstore fetch`` in a subprocess; its peak RSS (polled and from getrusage) and wall time."""
    env = {**os.environ, "BITSTORE_HOME": str(home), "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "bitstore.cli", "fetch", "--input", str(keys_file), "--output", str(output),
           "--max-workers", str(workers), "--no-progress"]
    if budget:
        cmd += ["--max-bytes-in-flight", str(budget)]
    started = time.perf_counter()
    proc = psutil.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    polled = 0
    while True:  # wait4 gives this child's own rusage (RUSAGE_CHILDREN would mix in earlier runs)
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        try:
            polled = max(polled, proc.memory_info().rss)
        except psutil.Error:
            pass
        time.sleep(0.02)
    proc.returncode = code = os.waitstatus_to_exitcode(status)
    stderr = proc.stderr.read().decode()
    seconds = time.perf_counter() - started
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB elsewhere
    usage_peak = usage.ru_maxrss * scale
    return {"exit": code, "seconds": seconds, "rss_polled": polled, "rss_peak": max(polled, usage_peak),
            "stderr": stderr}


def check_output(output: Path, keys: int) -> str | None:
    """None when the file has one row per key, 99% found, else what is wrong."""
    meta = pq.ParquetFile(output).metadata
    if meta.num_rows != keys:
        return f"{meta.num_rows} rows for {keys} keys"
    status = pq.read_table(output, columns=["status"]).column("status").value_counts().to_pylist()
    counts = {item["values"]: item["counts"] for item in status}
    expected = {"found": keys - (keys + 99) // 100, "missing": (keys + 99) // 100}
    return None if counts == expected else f"statuses {counts}, expected {expected}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100_000, help="keys to fetch (default 100,000)")
    parser.add_argument("--blob-bytes", type=int, default=256, help="blob size (default 256)")
    parser.add_argument("--workers", type=int, default=64, help="--max-workers (default 64)")
    parser.add_argument("--ceiling-mib", type=float, default=200, help="peak RSS ceiling, MiB (default 200)")
    parser.add_argument("--budget-mib", type=float, default=2.0,
                        help="--max-bytes-in-flight in MiB (default 2: the 100,000-key data set is over 10x that)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    figures = {"keys": args.keys, "blob_bytes": args.blob_bytes, "ceiling": int(args.ceiling_mib * MiB),
               "budget": int(args.budget_mib * MiB)}
    problems = []
    with tempfile.TemporaryDirectory(prefix="bitstore-cli-memory-") as tmp:
        for label, n in (("small", max(1, args.keys // 10)), ("full", args.keys)):
            home = Path(tmp) / label
            started = time.perf_counter()
            keys_file = make_store(home, n, args.blob_bytes)
            setup = time.perf_counter() - started
            output = home / "out.parquet"
            run = run_fetch(home, keys_file, output, args.workers, int(args.budget_mib * MiB))
            if run["exit"] != 0:
                problems.append(f"{label}: exit {run['exit']}: {run['stderr'].strip()[-500:]}")
                continue
            wrong = check_output(output, n)
            if wrong:
                problems.append(f"{label}: {wrong}")
            figures[label] = {"keys": n, "setup_s": round(setup, 2), "seconds": round(run["seconds"], 2),
                              "rss_peak": run["rss_peak"], "rss_polled": run["rss_polled"],
                              "output_bytes": output.stat().st_size}
    full = figures.get("full")
    if full and full["rss_peak"] > figures["ceiling"]:
        problems.append(f"peak RSS {full['rss_peak'] / MiB:.1f} MiB is over the ceiling {args.ceiling_mib} MiB")
    figures["problems"] = problems
    if args.json:
        print(json.dumps(figures))
    else:
        for label in ("small", "full"):
            run = figures.get(label)
            if run:
                print(f"bitstore fetch, {run['keys']:>9,} keys of {args.blob_bytes} B: peak RSS "
                      f"{run['rss_peak'] / MiB:6.1f} MiB, {run['seconds']:.1f} s "
                      f"({run['keys'] / run['seconds']:,.0f} keys/s), output {run['output_bytes'] / MiB:.1f} MiB")
        print(f"ceiling {args.ceiling_mib:.0f} MiB: " + ("FAILED: " + "; ".join(problems) if problems else "ok"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
