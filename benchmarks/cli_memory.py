"""Peak memory of ``bitstore fetch`` on every engine, against a fixed ceiling, the driver and workers apart.

    .venv/bin/python benchmarks/cli_memory.py                          # 100,000 keys, local engine, local store
    .venv/bin/python benchmarks/cli_memory.py --keys 1000000 --engines local,beam,spark,ray --stores local,s3

Makes the blobs once per store (256 B each; every 100th key left missing): ``local`` is a folder of files
under a temporary ``BITSTORE_HOME``; ``s3`` is the benchmarks' object server (``benchmarks.server``, a separate
process on 127.0.0.1) with a TOML spec pointing at it. Then, for each engine, runs the console script
(``bitstore fetch --engine E``) as a subprocess and, every 50 ms, reads the peak RSS (``VmHWM``, shared pages
included) of every process it started: the driver (the command itself), and, apart, Beam's pipeline process,
Spark's JVM and its Python workers, Ray's worker processes and its daemons. A process's figure is its own
high-water mark as last read (a driver with no child processes: exact, from ``wait4``). ``--baseline`` also
prints what importing each engine's modules alone costs a process, for scale. Checks the output has one row per key, 99%
found. Each engine first runs over a tenth of the keys: if ``fetch`` streams, the two peaks are about the same.
Exits 1 when a peak is over the ceiling or an output is wrong.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import psutil
import pyarrow.parquet as pq

from bitstore import sha1_hex

MiB = 1024 * 1024
REPO = Path(__file__).resolve().parents[1]
ENGINES = ("local", "beam", "spark", "ray")
STORES = ("local", "s3")


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


def make_s3_store(home: Path, server, keys: int, blob_bytes: int) -> tuple[Path, Path]:
    """The same on the object server: ``keys`` keys, every 100th one the server does not hold; the keys file and
    a spec naming the server."""
    home.mkdir(parents=True)
    stored = server.fill("memory", "blobs/", keys - (keys + 99) // 100, blob_bytes, seed=7)
    keys_file, spec = home / "keys.txt", home / "spec.toml"
    with open(keys_file, "w") as out:
        it = iter(stored)
        for i in range(keys):
            out.write((sha1_hex(f"absent {i}".encode()) if i % 100 == 0 else next(it)) + "\n")
    spec.write_text(f'keys = "sha1"\n[[tier]]\ntype = "s3"\nname = "bench"\nprefix = "s3://memory/blobs/"\n'
                    f'endpoint_url = "{server.endpoint}"\n')
    return keys_file, spec


def role(proc: psutil.Process, driver: int) -> str:
    """Which part of the job a process is."""
    if proc.pid == driver:
        return "driver"
    try:
        name, cmd = proc.name(), " ".join(proc.cmdline())
    except psutil.Error:
        return "other"
    if "beam_transforms.pipeline" in cmd:
        return "beam pipeline"
    if name == "java" or "org.apache.spark" in cmd:
        return "spark JVM"
    if "pyspark.daemon" in cmd or "pyspark/daemon" in cmd or "pyspark.worker" in cmd:
        return "spark python workers"
    if cmd.startswith("ray::") or "default_worker.py" in cmd:
        return "ray workers" if "Agent" not in cmd and "_StatsActor" not in cmd and "Coordinator" not in cmd \
            else "ray daemons"
    if "ray" in cmd:
        return "ray daemons"
    return "other"


def _hwm(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run_fetch(home: Path, keys_file: Path, output: Path, engine: str, workers: int, budget: int | None,
              spec: Path | None, env_extra: dict[str, str], timeout: float, extra: list[str] = ()) -> dict:
    """Run ``bitstore fetch`` in a subprocess; the peak RSS of each process it started, by role, and wall time."""
    env = {**os.environ, **env_extra, "BITSTORE_HOME": str(home), "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "bitstore.cli", "fetch", "--input", str(keys_file), "--output", str(output),
           "--max-workers", str(workers), "--no-progress", "--engine", engine]
    if spec is not None:
        cmd += ["--spec", str(spec)]
    if budget:
        cmd += ["--max-bytes-in-flight", str(budget)]
    cmd += list(extra)
    started = time.perf_counter()
    proc = psutil.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peaks: dict[int, int] = {}
    roles: dict[int, str] = {}
    status = None
    while True:  # wait4 gives this child's own rusage
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() - started > timeout:
            for child in proc.children(recursive=True) + [proc]:
                child.kill()  # our own subprocess tree only
            os.waitpid(proc.pid, 0)
            return {"exit": "timeout", "seconds": timeout, "stderr": f"killed after {timeout:.0f} s", "roles": {}}
        try:
            family = [proc] + proc.children(recursive=True)
        except psutil.Error:
            family = []
        for member in family:  # classified again each time: a process may exec another program (bash -> java)
            found = role(member, proc.pid)
            if found != "other" or member.pid not in roles:
                roles[member.pid] = found
            peaks[member.pid] = max(peaks.get(member.pid, 0), _hwm(member.pid))
        time.sleep(0.05)
    proc.returncode = code = os.waitstatus_to_exitcode(status)
    stderr = proc.stderr.read().decode()
    seconds = time.perf_counter() - started
    # Not wait4's ru_maxrss: on Linux it keeps the peak of the process the child was forked (or vforked) from,
    # across exec, so a large benchmark process showed up as the fetch's peak. VmHWM is the child's own.
    roles[proc.pid] = "driver"
    by_role: dict[str, dict] = defaultdict(lambda: {"processes": 0, "peak": 0})
    for pid, peak in peaks.items():
        entry = by_role[roles[pid]]
        entry["processes"] += 1
        entry["peak"] = max(entry["peak"], peak)
    return {"exit": code, "seconds": seconds, "stderr": stderr, "roles": dict(by_role)}


def check_output(output: Path, keys: int) -> str | None:
    """None when the file has one row per key, 99% found, else what is wrong."""
    meta = pq.ParquetFile(output).metadata
    if meta.num_rows != keys:
        return f"{meta.num_rows} rows for {keys} keys"
    status = pq.read_table(output, columns=["status"]).column("status").value_counts().to_pylist()
    counts = {item["values"]: item["counts"] for item in status}
    expected = {"found": keys - (keys + 99) // 100, "missing": (keys + 99) // 100}
    return None if counts == expected else f"statuses {counts}, expected {expected}"


def _csv(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100_000, help="keys to fetch (default 100,000)")
    parser.add_argument("--blob-bytes", type=int, default=256, help="blob size (default 256)")
    parser.add_argument("--engines", type=_csv, default=["local"], help=f"comma separated: {','.join(ENGINES)}")
    parser.add_argument("--stores", type=_csv, default=["local"], help=f"comma separated: {','.join(STORES)}")
    parser.add_argument("--workers", type=int, default=64, help="--max-workers (default 64)")
    parser.add_argument("--ceiling-mib", type=float, default=250, help="peak RSS ceiling per process, MiB (250)")
    parser.add_argument("--budget-mib", type=float, default=2.0,
                        help="--max-bytes-in-flight in MiB (default 2: the 100,000-key data set is over 10x that)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per run before it is killed")
    parser.add_argument("--no-tenth", action="store_true",
                        help="skip the run over a tenth of the keys that comes first (if fetch streams, the two "
                             "peaks are about the same)")
    parser.add_argument("--spark-conf", action="append", default=[], metavar="KEY=VALUE",
                        help="passed to bitstore fetch --engine spark (repeatable): e.g. spark.driver.memory=1g "
                             "and spark.driver.extraJavaOptions= for Spark's own JVM defaults")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    bad = [e for e in args.engines if e not in ENGINES] + [s for s in args.stores if s not in STORES]
    if bad:
        parser.error(f"unknown engine or store: {bad}")
    figures: dict = {"keys": args.keys, "blob_bytes": args.blob_bytes, "ceiling": int(args.ceiling_mib * MiB),
                     "budget": int(args.budget_mib * MiB), "load_before": [round(x, 2) for x in os.getloadavg()],
                     "runs": []}
    problems = []
    with tempfile.TemporaryDirectory(prefix="bitstore-cli-memory-") as tmp:
        for store in args.stores:
            server = None
            home = Path(tmp) / store
            started = time.perf_counter()
            env_extra: dict[str, str] = {}
            spec = None
            if store == "local":
                keys_file = make_store(home, args.keys, args.blob_bytes)
            else:
                from .server import ServerProcess

                server = ServerProcess()
                env_extra = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                             "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
                keys_file, spec = make_s3_store(home, server, args.keys, args.blob_bytes)
            setup = time.perf_counter() - started
            try:
                tenth = max(1, args.keys // 10)
                tenth_file = home / "keys-tenth.txt"
                with open(keys_file) as full, open(tenth_file, "w") as part:
                    part.writelines(line for _, line in zip(range(tenth), full))
                runs = [(e, n, f) for e in args.engines for n, f in ((tenth, tenth_file), (args.keys, keys_file))
                        if n < args.keys or f is keys_file]
                if args.no_tenth:
                    runs = [(e, n, f) for e, n, f in runs if f is keys_file]
                for engine, n, file in runs:
                    output = home / f"out-{engine}.parquet"
                    load = os.getloadavg()[0]
                    extra = [f"--spark-conf={c}" for c in args.spark_conf] if engine == "spark" else []
                    run = run_fetch(home, file, output, engine, args.workers, int(args.budget_mib * MiB), spec,
                                    env_extra, args.timeout, extra)
                    label = f"{engine} engine, {store} store, {n:,} keys"
                    entry = {"engine": engine, "store": store, "keys": n, "setup_s": round(setup, 1),
                             "seconds": round(run["seconds"], 1), "load_1min_before": round(load, 2),
                             "load_1min_after": round(os.getloadavg()[0], 2),
                             "peaks": {r: v for r, v in sorted(run["roles"].items())}, "exit": run["exit"]}
                    figures["runs"].append(entry)
                    if run["exit"] not in (0,):
                        problems.append(f"{label}: exit {run['exit']}: {run['stderr'].strip()[-500:]}")
                    else:
                        wrong = check_output(output, n)
                        if wrong:
                            problems.append(f"{label}: {wrong}")
                        entry["output_bytes"] = output.stat().st_size
                        output.unlink()
                    for name, value in run["roles"].items():
                        if value["peak"] > figures["ceiling"]:
                            problems.append(f"{label}: {name} peak RSS {value['peak'] / MiB:.1f} MiB is over the "
                                            f"ceiling {args.ceiling_mib:.0f} MiB")
                    if not args.json:
                        _print_run(entry)
            finally:
                if server is not None:
                    server.stop()
    figures["problems"] = problems
    figures["load_after"] = [round(x, 2) for x in os.getloadavg()]
    if args.json:
        print(json.dumps(figures))
    else:
        print(f"ceiling {args.ceiling_mib:.0f} MiB per process: " + ("FAILED: " + "; ".join(problems) if problems
                                                                      else "ok"))
    return 1 if problems else 0


def _print_run(entry: dict) -> None:
    rate = entry["keys"] / entry["seconds"] if entry["seconds"] else 0
    print(f"bitstore fetch --engine {entry['engine']}, {entry['store']} store, {entry['keys']:,} keys: "
          f"{entry['seconds']:.0f} s ({rate:,.0f} keys/s), load {entry['load_1min_before']:.1f}->"
          f"{entry['load_1min_after']:.1f}, exit {entry['exit']}", flush=True)
    for name, value in entry["peaks"].items():
        print(f"    {name:<22} peak RSS {value['peak'] / MiB:7.1f} MiB ({value['processes']} process"
              f"{'' if value['processes'] == 1 else 'es'})", flush=True)


if __name__ == "__main__":
    if __package__ in (None, ""):  # run as a script: import the sibling modules as the benchmarks package
        sys.path.insert(0, str(REPO))
        __package__ = "benchmarks"
    sys.exit(main())
