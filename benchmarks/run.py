"""Run every benchmark in one go: ``python -m benchmarks.run [--quick] [options]`` (``make bench``).

1. S3 and GCS protocols against ``benchmarks.server`` (a separate process answering from memory), for
   each blob size and per-request delay: the contenders of ``benchmarks.remote`` on the same keys; the Azure
   protocol (``--protocols ...,azure``) against Azurite (``benchmarks.azurite``), for each size, at 0 ms.
2. Many requests in flight (``--in-flight``, at ``--in-flight-delay``) and one process against two at 0 ms
   (``benchmarks.inflight``).
3. A fresh process's first and second call at ``--cold`` requests in flight (``benchmarks.coldstart``): get_many
   against obstore async, each in its own process, alternating; with the store built, then with it connected.
4. FetchBlobs and EnrichWithBlobs at steady state against get_many on ``--beam-n`` keys (16 KiB, the largest
   delay; ``benchmarks.beam_steady``), and Spark and Ray against get_many on ``--engine-n`` keys
   (``benchmarks.engines``).
5. The local-disk store against a plain threaded read loop (``benchmarks.local_disk``).
6. Peak memory of enrich_batches and ``bitstore fetch`` (``benchmarks/arrow_memory.py``, ``cli_memory.py``).

Prints a table per case with ratios to bitstore and the targets, and writes one results file per run,
``benchmarks/results/<time>.json`` (machine, load, date, versions, every case), with a chart per case beside it
(``benchmarks.report``); ``python -m benchmarks.page --add <file>`` publishes it to the docs.
"""
from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time

from .inflight import IN_FLIGHT, IN_FLIGHT_DELAY_MS, blobs_for, in_flight_contenders, process_contenders
from .local_disk import local_contenders, write_blobs
from .machine import machine_info
from .measure import Contender, Row, measure
from .remote import Target, obstore_async, point_sdks_at, remote_contenders
from .report import RESULTS_DIR, docs_cases, markdown, versions, write_results
from .server import ServerProcess
from .targets import evaluate

__all__ = ["main"]

WARMUP_KEYS = 64
SMALL_LIMIT = 64 * 1024
MEMORY_SCRIPTS = ("arrow_memory", "cli_memory")


def _size_label(size: int) -> str:
    mib = 1024 * 1024
    return f"{size // mib} MiB" if size >= mib and size % mib == 0 else f"{size // 1024} KiB"


def _csv(kind):
    return lambda text: [kind(x) for x in text.split(",") if x.strip()]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a short smoke run: few keys, no Beam scale case, no memory")
    p.add_argument("--n", type=int, default=None, help="blobs per case for sizes <= 64 KiB (default 5000; quick 100)")
    p.add_argument("--n-large", type=int, default=None, help="blobs per case for larger sizes (default 1000; quick 10)")
    p.add_argument("--sizes", type=_csv(int), default=[16 * 1024, 1024 * 1024], help="blob sizes in bytes")
    p.add_argument("--delays", type=_csv(float), default=[0.0, 20.0], help="per-request server delays in ms")
    p.add_argument("--protocols", type=_csv(str), default=["s3", "gcs"],
                   help="s3,gcs,azure (azure: against Azurite, npm ci); empty for none")
    p.add_argument("--contenders", type=_csv(str), default=None,
                   help="only contenders whose name contains one of these (comma separated, case-insensitive)")
    p.add_argument("--beam-n", type=int, default=None,
                   help="keys of the FetchBlobs-at-scale case (default 20000; 0 skips)")
    p.add_argument("--engine-n", type=int, default=None,
                   help="keys of the Spark/Ray case (16 KiB, the largest delay; default 20000; 0 skips)")
    p.add_argument("--repeat", type=int, default=None,
                   help="interleaved rounds per case; the median round is reported (default 5; quick 1)")
    p.add_argument("--in-flight", type=_csv(int), default=list(IN_FLIGHT),
                   help="requests in flight of the many-in-flight case (empty skips it; quick: 64)")
    p.add_argument("--in-flight-delay", type=float, default=IN_FLIGHT_DELAY_MS, help="its server delay in ms")
    p.add_argument("--in-flight-n", type=int, default=None,
                   help="at least this many blobs per in-flight run (default 2000, 8x N above; quick 200)")
    p.add_argument("--skip-processes", action="store_true", help="skip the 0 ms one-vs-two-processes case")
    p.add_argument("--cold", type=_csv(int), default=None,
                   help="requests in flight of the first-call case (default 1024,2048; quick: none; empty skips)")
    p.add_argument("--cold-n", type=int, default=6000, help="blobs per call of the first-call case")
    p.add_argument("--cold-delay", type=float, default=IN_FLIGHT_DELAY_MS, help="its server delay in ms")
    p.add_argument("--skip-server-check", action="store_true")
    p.add_argument("--skip-local", action="store_true")
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--output-dir", default=RESULTS_DIR)
    p.add_argument("--seed", type=int, default=0)
    return p


def _select(contenders: list[Contender], patterns: list[str] | None) -> list[Contender]:
    if not patterns:
        return contenders
    return [c for c in contenders if any(p.lower() in c.name.lower() for p in patterns)]


def _print_row(row: Row) -> None:
    if row.ok:
        print(f"  {row.contender:<42} {row.blobs_per_s:>9,.0f} blobs/s {row.mb_per_s:>8,.1f} MB/s "
              f"{row.cpu_ms_per_blob:>6.2f} CPU-ms/blob", flush=True)
    else:
        print(f"  {row.contender:<42} {row.status}: {row.note}", flush=True)


def _measure_case(args, name: str, contenders: list[Contender], target, keys: list[str], warmup: list[str],
                  size: int, server: ServerProcess | None = None) -> list[Row]:
    """``--repeat`` interleaved rounds over the contenders; each row is the round with the median blobs/s
    (a contender that failed in any round keeps that failure). Every round's rate goes in the note."""
    runs: dict[str, list[Row]] = {c.name: [] for c in contenders}
    for round_ in range(args.repeat):
        for contender in contenders:
            if runs[contender.name] and not runs[contender.name][0].ok:
                continue
            row = measure(name, contender, target, keys, warmup, size, server)
            runs[contender.name].append(row)
            print(f"  [{round_ + 1}/{args.repeat}]", end="")
            _print_row(row)
    rows = []
    for contender in contenders:
        done = runs[contender.name]
        failed = [r for r in done if not r.ok]
        if failed:
            rows.append(failed[0])
            continue
        row = sorted(done, key=lambda r: r.blobs_per_s)[len(done) // 2]
        if len(done) > 1:
            row.extra["rounds_blobs_per_s"] = [round(r.blobs_per_s) for r in done]
            row.note = "rounds: " + " / ".join(f"{r.blobs_per_s:,.0f}" for r in done)
        rows.append(row)
    return rows


def _remote_cases(args, server: ServerProcess, cases: list[dict], rows: list[Row]) -> None:
    contenders = _select(remote_contenders(), args.contenders)
    for size in args.sizes:
        n = args.n if size <= SMALL_LIMIT else args.n_large
        bucket = f"bench-{size}"
        keys = server.fill(bucket, "blobs/", n + WARMUP_KEYS, size, seed=args.seed)
        measured, warmup = keys[:n], keys[n:]
        for delay in args.delays:
            server.set_delay(delay)
            for protocol in args.protocols:
                name = f"{protocol} {_size_label(size)} {delay:g}ms"
                cases.append({"name": name, "kind": "remote", "protocol": protocol, "size": size, "delay_ms": delay,
                              "n": n, "title": f"{protocol.upper()}, {_size_label(size)} blobs, "
                                               f"{delay:g} ms per request, {n:,} blobs"})
                print(f"\n{name} ({n:,} blobs)", flush=True)
                target = Target(protocol, server.endpoint, bucket, "blobs/")
                rows += _measure_case(args, name, contenders, target, measured, warmup, size, server)
        server.drop(bucket)
    server.set_delay(0)


def _azure_cases(args, cases: list[dict], rows: list[Row]) -> None:
    """The remote contenders over the Azure protocol, against Azurite (no delay setting: 0 ms only)."""
    from .azurite import AzuriteBench

    contenders = _select(remote_contenders(), args.contenders)
    with AzuriteBench() as azurite:
        for size in args.sizes:
            n = args.n if size <= SMALL_LIMIT else args.n_large
            container = f"bench-{size}"
            keys = azurite.fill(container, "blobs/", n + WARMUP_KEYS, size, seed=args.seed)
            measured, warmup = keys[:n], keys[n:]
            name = f"azure {_size_label(size)} 0ms"
            cases.append({"name": name, "kind": "remote", "protocol": "azure", "size": size, "delay_ms": 0.0, "n": n,
                          "title": f"Azure (Azurite), {_size_label(size)} blobs, 0 ms per request, {n:,} blobs"})
            print(f"\n{name} ({n:,} blobs, Azurite)", flush=True)
            target = Target("azure", azurite.endpoint, container, "blobs/", azurite.server.account_name,
                            azurite.server.account_key)
            rows += _measure_case(args, name, contenders, target, measured, warmup, size, azurite)
            azurite.drop(container)


def _server_check(args, server: ServerProcess, cases: list[dict], rows: list[Row]) -> None:
    """The server's headroom: obstore with 4x the contenders' concurrency on 16 KiB blobs at the largest delay.
    If it goes well past every contender, the server was not what limited them."""
    size, delay, n = 16 * 1024, max(args.delays), 4 * args.n
    keys = server.fill("bench-check", "blobs/", n + WARMUP_KEYS, size, seed=args.seed + 2)
    server.set_delay(delay)
    name = f"server headroom {delay:g}ms"
    cases.append({"name": name, "kind": "server-check", "protocol": "s3", "size": size, "delay_ms": delay, "n": n,
                  "title": f"Server headroom: S3, 16 KiB, {delay:g} ms, {n:,} blobs, 256 requests in flight"})
    print(f"\n{name}", flush=True)
    contender = Contender("obstore async, 256 in flight", obstore_async(256))
    rows += _measure_case(args, name, [contender], Target("s3", server.endpoint, "bench-check", "blobs/"),
                          keys[:n], keys[n:], size, server)
    server.drop("bench-check")
    server.set_delay(0)


def _beam_case(args, server: ServerProcess, cases: list[dict], rows: list[Row]) -> None:
    """FetchBlobs and EnrichWithBlobs at steady state (their bundles' span; Beam's start-up apart, in the JSON as
    ``wall_s``) against get_many on the same keys."""
    from .beam_steady import beam_contenders

    contenders = [c for c in remote_contenders() if c.name == "bitstore get_many"] + beam_contenders()
    size, delay = 16 * 1024, max(args.delays)
    keys = server.fill("bench-beam", "blobs/", args.beam_n + WARMUP_KEYS, size, seed=args.seed + 1)
    server.set_delay(delay)
    protocol = args.protocols[0]
    name = f"{protocol} 16 KiB {delay:g}ms, {args.beam_n:,} keys"
    cases.append({"name": name, "kind": "beam-scale", "protocol": protocol, "size": size, "delay_ms": delay,
                  "n": args.beam_n, "id": "beam-steady",
                  "title": f"FetchBlobs and EnrichWithBlobs at steady state: {protocol.upper()}, 16 KiB, {delay:g} "
                           f"ms, {args.beam_n:,} keys (FnApiRunner; Beam's start-up apart)"})
    print(f"\n{name}", flush=True)
    target = Target(protocol, server.endpoint, "bench-beam", "blobs/")
    rows += _measure_case(args, name, contenders, target, keys[: args.beam_n], keys[args.beam_n:], size, server)
    server.drop("bench-beam")
    server.set_delay(0)


def _engine_case(args, server: ServerProcess, cases: list[dict], rows: list[Row]) -> None:
    """Spark and Ray against get_many on the same keys (16 KiB, the largest delay), steady state."""
    from .engines import ENGINE_WARMUP, STARTUP, engine_contenders

    contenders = [c for c in remote_contenders() if c.name == "bitstore get_many"] + engine_contenders()
    size, delay, protocol = 16 * 1024, max(args.delays), args.protocols[0]
    keys = server.fill("bench-engines", "blobs/", args.engine_n + ENGINE_WARMUP, size, seed=args.seed + 3)
    server.set_delay(delay)
    name = f"{protocol} 16 KiB {delay:g}ms, {args.engine_n:,} keys, engines"
    cases.append({"name": name, "kind": "engines", "protocol": protocol, "size": size, "delay_ms": delay,
                  "n": args.engine_n, "title": f"Spark and Ray: {protocol.upper()}, 16 KiB, {delay:g} ms, "
                                               f"{args.engine_n:,} keys (steady state; start-up apart)"})
    print(f"\n{name}", flush=True)
    target = Target(protocol, server.endpoint, "bench-engines", "blobs/")
    measured = _measure_case(args, name, contenders, target, keys[: args.engine_n], keys[args.engine_n:], size,
                             server)
    for row in measured:
        engine = row.contender.split()[0]
        if engine in STARTUP:
            row.extra["startup_s"] = round(STARTUP[engine], 1)
            row.note = f"start-up {STARTUP[engine]:.1f} s (not timed); {row.note}"
    rows += measured
    server.drop("bench-engines")
    server.set_delay(0)


def _in_flight_cases(args, server: ServerProcess, cases: list[dict], rows: list[Row]) -> None:
    """N requests in flight at a long latency, for each N; the client's ceiling is N / latency."""
    size, delay, protocol = 16 * 1024, args.in_flight_delay, args.protocols[0]
    largest = blobs_for(max(args.in_flight), args.in_flight_n)
    keys = server.fill("bench-inflight", "blobs/", largest + max(args.in_flight), size, seed=args.seed + 3)
    server.set_delay(delay)
    target = Target(protocol, server.endpoint, "bench-inflight", "blobs/")
    for in_flight in args.in_flight:
        n = blobs_for(in_flight, args.in_flight_n)
        name = f"{protocol} 16 KiB {delay:g}ms, {in_flight} in flight"
        cases.append({"name": name, "kind": "in-flight", "protocol": protocol, "size": size, "delay_ms": delay,
                      "n": n, "in_flight": in_flight,
                      "title": f"{protocol.upper()}, 16 KiB blobs, {delay:g} ms per request, {in_flight:,} "
                               f"requests in flight (ceiling {in_flight / delay * 1000:,.0f} blobs/s), {n:,} blobs"})
        print(f"\n{name} ({n:,} blobs)", flush=True)
        rows += _measure_case(args, name, _select(in_flight_contenders(in_flight), args.contenders), target,
                              keys[:n], keys[largest:], size, server)
    server.drop("bench-inflight")
    server.set_delay(0)


def _cold_cases(args, server: ServerProcess, cases: list[dict], rows: list[Row]) -> None:
    """A fresh process's first call and its second, get_many against obstore async (``benchmarks.coldstart``):
    with the store only built (the first call connects it), and with it connected by a one-key call first."""
    import statistics

    from .coldstart import cold_case

    size, delay = 16 * 1024, args.cold_delay
    server.set_delay(delay)
    for connect in (False, True):
        for in_flight in args.cold:
            state = "store connected first" if connect else "store built, not connected"
            name = f"s3 16 KiB {delay:g}ms, {in_flight} in flight, fresh process, {state}"
            cases.append({"name": name, "kind": "cold", "protocol": "s3", "size": size, "delay_ms": delay,
                          "n": args.cold_n, "in_flight": in_flight, "connect": connect,
                          "id": f"cold-{in_flight}" + ("-connected" if connect else ""),
                          "title": f"First call of a fresh process and its second: S3, 16 KiB, {delay:g} ms, "
                                   f"{in_flight:,} in flight, {args.cold_n:,} blobs per call ({state}; one process "
                                   f"per contender and round, alternating)"})
            print(f"\n{name}", flush=True)
            got = cold_case(server, in_flight, args.cold_n, args.repeat, later=1, connect=connect, seed=args.seed + 6)
            for contender, phase, other in (("bitstore get_many", "first", False), ("obstore async", "first", True),
                                            ("bitstore get_many", "later", True), ("obstore async", "later", True)):
                label = f"{contender}, {'first' if phase == 'first' else 'second'} call"
                rates = got[contender][phase]
                cpu = got[contender][f"{phase}_cpu"]
                row = Row(name, label, reference=(contender.startswith("bitstore") and phase == "first"))
                if not rates:
                    row.status, row.note = "error", "no call measured"
                else:
                    median = statistics.median(rates)
                    row.n = row.found = args.cold_n
                    row.nbytes, row.seconds = args.cold_n * size, args.cold_n / median
                    row.cpu_s = statistics.median(cpu) * args.cold_n / 1000
                    row.extra.update(rounds_blobs_per_s=[round(r) for r in rates], phase=phase)
                    if other:
                        pair = "bitstore get_many" if contender == "obstore async" else "obstore async"
                        row.extra["compare_with"] = f"{pair}, {'first' if phase == 'first' else 'second'} call"
                    row.note = "rounds: " + " / ".join(f"{r:,.0f}" for r in rates)
                rows.append(row)
                _print_row(row)
    server.set_delay(0)


def _process_case(args, server: ServerProcess, cases: list[dict], rows: list[Row]) -> None:
    """At 0 ms the client's CPU is the limit; one process against two."""
    size, protocol, n = 16 * 1024, args.protocols[0], args.n
    keys = server.fill("bench-procs", "blobs/", n + 512, size, seed=args.seed + 4)
    server.set_delay(0)
    name = f"{protocol} 16 KiB 0ms, processes"
    cases.append({"name": name, "kind": "processes", "protocol": protocol, "size": size, "delay_ms": 0, "n": n,
                  "title": f"{protocol.upper()}, 16 KiB blobs, 0 ms, one process against two (client CPU includes "
                           f"the worker processes), {n:,} blobs"})
    print(f"\n{name} ({n:,} blobs)", flush=True)
    rows += _measure_case(args, name, _select(process_contenders(), args.contenders),
                          Target(protocol, server.endpoint, "bench-procs", "blobs/"), keys[:n], keys[n:], size, server)
    server.drop("bench-procs")


def _local_cases(args, cases: list[dict], rows: list[Row]) -> None:
    for size in args.sizes:
        n = args.n if size <= SMALL_LIMIT else args.n_large
        name = f"local {_size_label(size)}"
        cases.append({"name": name, "kind": "local", "size": size, "n": n,
                      "title": f"Local disk, {_size_label(size)} blobs (page cache warm), {n:,} blobs"})
        print(f"\n{name} ({n:,} blobs)", flush=True)
        with tempfile.TemporaryDirectory(prefix="bitstore-bench-") as root:
            keys = write_blobs(root, n + WARMUP_KEYS, size, seed=args.seed)
            rows += _measure_case(args, name, _select(local_contenders(), args.contenders), root, keys[:n],
                                  keys[n:], size)


def _memory_scripts() -> dict[str, str]:
    """Run the peak-memory scripts other modules provide; their own output is the report."""
    here = os.path.dirname(os.path.abspath(__file__))
    out = {}
    for script in MEMORY_SCRIPTS:
        title = f"Peak memory: benchmarks/{script}.py"
        if not os.path.exists(os.path.join(here, f"{script}.py")):
            out[title] = "not available: the script is not written yet"
            continue
        print(f"\nrunning benchmarks/{script}.py", flush=True)
        try:
            done = subprocess.run([sys.executable, os.path.join(here, f"{script}.py")], cwd=os.path.dirname(here),
                                  capture_output=True, text=True, timeout=1800)
            text = (done.stdout + ("\n" + done.stderr if done.returncode else "")).strip()
            out[title] = f"{text}\n(exit code {done.returncode})"
        except subprocess.TimeoutExpired:
            out[title] = "timed out after 30 minutes"
        print(out[title], flush=True)
    return out


def main(argv: list[str] | None = None) -> dict:
    args = _parser().parse_args(argv)
    if args.n is None:
        args.n = 100 if args.quick else 5000
    if args.n_large is None:
        args.n_large = 10 if args.quick else 1000
    if args.repeat is None:
        args.repeat = 1 if args.quick else 5
    if args.in_flight_n is None:
        args.in_flight_n = 200 if args.quick else 2000
    if args.quick and args.in_flight == list(IN_FLIGHT):
        args.in_flight = [64]
    if args.beam_n is None:
        args.beam_n = 0 if args.quick else 20000
    if args.engine_n is None:
        args.engine_n = 0 if args.quick else 20000
    if args.cold is None:
        args.cold = [] if args.quick else [1024, 2048]
    command = shlex.join(["python", "-m", "benchmarks.run", *(sys.argv[1:] if argv is None else argv)])
    machine = machine_info()
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"machine: {machine['cores']} cores, {machine['cpu']}, {machine['python']}, "
          f"load {machine['load_avg_1_5_15']}", flush=True)
    cases: list[dict] = []
    rows: list[Row] = []
    azure = "azure" in args.protocols
    args.protocols = [p for p in args.protocols if p != "azure"]
    if args.protocols:
        with ServerProcess() as server:
            point_sdks_at(server.endpoint)
            if not args.skip_server_check:
                _server_check(args, server, cases, rows)
            _remote_cases(args, server, cases, rows)
            if args.in_flight:
                _in_flight_cases(args, server, cases, rows)
            if not args.skip_processes:
                _process_case(args, server, cases, rows)
            if args.cold:
                _cold_cases(args, server, cases, rows)
            if args.beam_n:
                _beam_case(args, server, cases, rows)
            if args.engine_n:
                _engine_case(args, server, cases, rows)
    if azure:
        _azure_cases(args, cases, rows)
    if not args.skip_local:
        _local_cases(args, cases, rows)
    extras = {} if args.quick or args.skip_memory else _memory_scripts()
    machine["load_avg_after"] = [round(x, 2) for x in os.getloadavg()]
    targets = evaluate(cases, rows)
    text = markdown(machine, command, cases, rows, targets, extras)
    payload = {"about": "One run of python -m benchmarks.run (make bench); cases in the shape of "
                        "docs/benchmarks/results.json, raw rows, targets.",
               "date": date, "command": command, "machine": machine, "versions": versions(),
               "cases": docs_cases(machine, command, date, cases, rows), "rows": [r.to_dict() for r in rows],
               "targets": targets, "extras": extras}
    print("\n" + text)
    path = write_results(payload, args.output_dir)
    print(f"results: {path} (charts in {path[:-len('.json')]}/); publish to the docs with: "
          f"python -m benchmarks.page --add {path}")
    return payload


if __name__ == "__main__":
    main()
