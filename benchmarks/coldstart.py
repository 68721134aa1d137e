"""First and later calls of a fresh process: ``get_many`` against obstore's async API, N requests in flight.

Each measurement is a new Python process (``python -m benchmarks.coldstart --child ...``): it imports its client
and builds its store untimed, then times its FIRST call over the keys (threads, event loop, connections all
started inside it: what a user's first ``get_many`` costs), then ``--later`` more calls over other keys (warm).
Contenders alternate process by process (A B A B), so a slow spell of the machine weighs on both.

    python -m benchmarks.coldstart [--in-flight 1024,2048] [--n 6000] [--delay-ms 100] [--rounds 5]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

__all__ = ["CONTENDERS", "cold_case", "run_child", "main"]

#: Contender name -> how its child fetches (see ``_fetcher``).
CONTENDERS = {
    "bitstore get_many": "get_many",
    "obstore async": "obstore",
}
#: Seconds a child may take before it is stopped (a hung child must not hang the run).
CHILD_TIMEOUT = 600


def _fetchers(kind: str, endpoint: str, bucket: str, in_flight: int, engine: str):
    """``(fetch, connect)`` on one store: ``fetch(keys)`` with ``in_flight`` requests at once; ``connect(keys)`` one
    key at a time, which connects the store (credentials, clients, connection pool) and leaves the engine at
    ``in_flight`` cold (get_many keeps a pool per size: one of 1 thread is not one of N)."""
    from .remote import Target, _count, bitstore_store, obstore_fetcher, obstore_store, point_sdks_at

    point_sdks_at(endpoint)
    target = Target("s3", endpoint, bucket, "blobs/")
    if kind.startswith("get_many"):  # "get_many" or "get_many:<engine>"
        engine = kind.partition(":")[2] or engine
        store = bitstore_store(target)
        return (lambda keys: _count(store.get_many(keys, progress=False, max_workers=in_flight, engine=engine)),
                lambda keys: _count(store.get_many(keys, progress=False, max_workers=1, engine="threads")))
    if kind == "obstore":
        store = obstore_store(target)
        return obstore_fetcher(store, target, in_flight), obstore_fetcher(store, target, 1)
    raise ValueError(f"unknown contender kind {kind!r}")


def run_child(kind: str, endpoint: str, bucket: str, keys_file: str, in_flight: int, n: int, later: int,
              engine: str = "auto", connect: bool = False) -> dict:
    """In a fresh process: the first call's and each later call's blobs/s (each over ``n`` keys of its own).
    With ``connect``, one key is fetched first, one at a time, untimed (the store connected, the engine cold)."""
    with open(keys_file) as f:
        keys = f.read().split()
    fetch, connect_one = _fetchers(kind, endpoint, bucket, in_flight, engine)
    if connect:
        connect_one(keys[-1:])
    calls = []
    for i in range(1 + later):
        part = keys[i * n:(i + 1) * n]
        cpu0, t0 = time.process_time(), time.perf_counter()
        found, nbytes = fetch(part)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        if found != len(part):
            raise RuntimeError(f"call {i}: got {found}/{len(part)} blobs")
        calls.append({"blobs_per_s": found / seconds, "seconds": seconds, "cpu_ms_per_blob": 1000 * cpu / found})
    return {"first": calls[0], "later": calls[1:]}


def _spawn(kind: str, endpoint: str, bucket: str, keys_file: str, in_flight: int, n: int, later: int,
           engine: str, connect: bool) -> dict:
    args = [sys.executable, "-m", "benchmarks.coldstart", *["--connect"] * connect, "--child", kind,
            "--endpoint", endpoint, "--bucket", bucket, "--keys-file", keys_file, "--in-flight", str(in_flight),
            "--n", str(n), "--later", str(later), "--engine", engine]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    kind, _, tree = kind.partition("@")  # "get_many@/path": bitstore imported from another tree (before/after)
    args[args.index("--child") + 1] = kind
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [tree, root, os.environ.get("PYTHONPATH")])))
    # ``-m`` puts the working folder first on sys.path: started in ``tree``, the child imports that bitstore
    done = subprocess.run(args, cwd=tree or root, env=env, capture_output=True, text=True, timeout=CHILD_TIMEOUT)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} child exited {done.returncode}: {done.stderr.strip()[-800:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def cold_case(server, in_flight: int, n: int, rounds: int, later: int = 1, engine: str = "auto",
              contenders: dict[str, str] | None = None, seed: int = 5, connect: bool = False) -> dict:
    """``rounds`` rounds; in each, one fresh process per contender, in turn. Returns per contender the
    blobs/s of every round's first call and of its later calls (the median of a process's later calls)."""
    import tempfile

    contenders = contenders or CONTENDERS
    bucket = f"bench-cold-{in_flight}"
    keys = server.fill(bucket, "blobs/", n * (1 + later), 16 * 1024, seed=seed)
    with tempfile.NamedTemporaryFile("w", suffix=".keys", delete=False) as f:
        f.write("\n".join(keys))
    out: dict[str, dict[str, list[float]]] = {name: {"first": [], "later": [], "first_cpu": [], "later_cpu": []}
                                               for name in contenders}
    try:
        for round_ in range(rounds):
            for name, kind in contenders.items():
                got = _spawn(kind, server.endpoint, bucket, f.name, in_flight, n, later, engine, connect)
                rec = out[name]
                rec["first"].append(got["first"]["blobs_per_s"])
                rec["first_cpu"].append(got["first"]["cpu_ms_per_blob"])
                if got["later"]:
                    rec["later"].append(statistics.median(c["blobs_per_s"] for c in got["later"]))
                    rec["later_cpu"].append(statistics.median(c["cpu_ms_per_blob"] for c in got["later"]))
                print(f"  [{round_ + 1}/{rounds}] {name:<20} first {got['first']['blobs_per_s']:>7,.0f} blobs/s "
                      f"({1000 * rec['first_cpu'][-1]:,.0f} µs CPU/blob)"
                      + (f", later {rec['later'][-1]:>7,.0f} ({1000 * rec['later_cpu'][-1]:,.0f} µs)"
                         if got["later"] else ""), flush=True)
    finally:
        os.unlink(f.name)
        server.drop(bucket)
    return out


def _child_main(args) -> None:
    result = run_child(args.child, args.endpoint, args.bucket, args.keys_file, args.in_flight, args.n, args.later,
                       args.engine, args.connect)
    print(json.dumps(result), flush=True)
    if args.child == "obstore":
        # obstore's async API under asyncio.run can abort the process as it exits (a tokio thread settling a
        # future as the interpreter finalizes; see benchmarks/exit_abort.py); the figures are printed already.
        os._exit(0)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.coldstart", description=__doc__.split("\n\n")[0])
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--endpoint", default=None, help=argparse.SUPPRESS)
    p.add_argument("--bucket", default=None, help=argparse.SUPPRESS)
    p.add_argument("--keys-file", default=None, help=argparse.SUPPRESS)
    p.add_argument("--later", type=int, default=1, help="warm calls after the first, per process")
    p.add_argument("--engine", default="auto", help="get_many's engine")
    p.add_argument("--connect", action="store_true", help="one key fetched first (store connected, engine cold)")
    p.add_argument("--also", default="",
                   help="more contenders, comma separated: get_many:async, get_many:threads, get_many@<folder with "
                        "another bitstore package> (a before/after comparison)")
    p.add_argument("--in-flight", default="1024,2048")
    p.add_argument("--n", type=int, default=6000)
    p.add_argument("--delay-ms", type=float, default=100.0)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args(argv)
    if args.child:
        args.in_flight = int(args.in_flight)
        _child_main(args)
        return
    from .server import ServerProcess

    with ServerProcess() as server:
        server.set_delay(args.delay_ms)
        for in_flight in [int(x) for x in args.in_flight.split(",") if x]:
            print(f"\n{in_flight} in flight, {args.n:,} blobs of 16 KiB, {args.delay_ms:g} ms; load "
                  f"{os.getloadavg()[0]:.1f}", flush=True)
            contenders = dict(CONTENDERS, **{f"bitstore {k}": k for k in args.also.split(",") if k})
            out = cold_case(server, in_flight, args.n, args.rounds, args.later, args.engine, contenders,
                            connect=args.connect)
            other = out["obstore async"]
            for name, ref in out.items():
                cpu = {phase: statistics.median(ref[f"{phase}_cpu"]) * 1000 for phase in ("first", "later")
                       if ref[f"{phase}_cpu"]}
                print(f"  {name}: client CPU per blob, median: "
                      + ", ".join(f"{phase} {v:,.0f} µs" for phase, v in cpu.items()), flush=True)
            for name, ref in out.items():
                for phase in ("first", "later"):
                    ratios = [a / b for a, b in zip(ref[phase], other[phase]) if b]
                    if ratios and ref is not other:
                        print(f"  {phase}: {name} / obstore {statistics.median(ratios):.2f}x "
                              f"[{min(ratios):.2f}-{max(ratios):.2f}]", flush=True)
            print(f"  load after: {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
