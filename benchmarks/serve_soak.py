"""``bitstore serve`` in front of a faulty S3 source tier, under many connections, for minutes: no wrong bytes, no
present blob answered 404, memory that does not grow.

16 KiB blobs in ``benchmarks.server`` (in-memory S3 on 127.0.0.1), reached through the tests' fault proxy
(``tests/servers/faults.py``: 5xx, 429, resets, stalls, truncated bodies) failing ``--fault-rate`` of the GETs.
``bitstore serve`` (one worker, no cache tier: every request reaches the faulty tier) is asked by ``--connections``
keep-alive clients for random present keys; each body is checked against its SHA1. Prints the answers by status,
wrong bodies, 404s for present blobs, and the server's RSS at the start, ten times during the run, and at the end.

Run: ``python -m benchmarks.serve_soak [--minutes 3] [--connections 64] [--fault-rate 0.2] [--server uvicorn]``.
"""
from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from .serve import ROOT, _free_port, _stop, _wait
from .server import ServerProcess

SIZE = 16 * 1024


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--fault-rate", type=float, default=0.2)
    parser.add_argument("--blobs", type=int, default=500)
    parser.add_argument("--server", choices=("bitstore", "uvicorn"), default="bitstore",
                        help="bitstore serve --server (default: bitstore, the default server)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from tests.servers.faults import FaultProxy

    with ServerProcess() as server, tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        keys = server.fill("soak", "blobs/", args.blobs, SIZE, seed=3)
        proxy = FaultProxy(server.endpoint, rate=args.fault_rate, match="/soak/blobs/", preserve_host=True,
                           stall_seconds=3.0, lifetime=args.minutes * 60 + 120, seed=11).start()
        spec = Path(tmp) / "spec.toml"
        spec.write_text(f'keys = "sha1"\n\n[[tier]]\ntype = "s3"\nprefix = "s3://soak/blobs/"\n'
                        f'endpoint_url = "{proxy.url}"\nregion = "us-east-1"\n')
        port = _free_port()
        env = {**os.environ, "PYTHONPATH": str(ROOT), "AWS_ACCESS_KEY_ID": "soak", "AWS_SECRET_ACCESS_KEY": "soak"}
        process = subprocess.Popen([sys.executable, "-m", "bitstore.cli", "serve", "--spec", str(spec), "--port",
                                    str(port), "--server", args.server], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        counts: Counter[str] = Counter()
        lock = threading.Lock()
        try:
            _wait(f"http://127.0.0.1:{port}/healthz")
            rss_start = _rss_kib(process.pid)
            deadline = time.monotonic() + args.minutes * 60

            def client(seed: int) -> None:
                rng = random.Random(seed)
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                while time.monotonic() < deadline:
                    key = rng.choice(keys)
                    try:
                        conn.request("GET", f"/blobs/{key}")
                        answer = conn.getresponse()
                        body = answer.read()
                    except (OSError, http.client.HTTPException):
                        conn.close()
                        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                        with lock:
                            counts["connection errors"] += 1
                        continue
                    with lock:
                        counts[str(answer.status)] += 1
                        if answer.status == 200 and hashlib.sha1(body).hexdigest() != key:
                            counts["wrong bytes"] += 1
                        if answer.status == 404:
                            counts["present blob answered 404"] += 1
                conn.close()

            threads = [threading.Thread(target=client, args=(i,)) for i in range(args.connections)]
            for t in threads:
                t.start()
            started, step = time.monotonic(), max(1.0, args.minutes * 6)  # ten samples over the run
            samples, next_at = [(0.0, rss_start)], started + step
            while any(t.is_alive() for t in threads):
                time.sleep(min(1.0, max(0.0, next_at - time.monotonic())))
                if time.monotonic() >= next_at:
                    samples.append((time.monotonic() - started, _rss_kib(process.pid)))
                    next_at += step
            rss_end = _rss_kib(process.pid)
        finally:
            _stop(process)
            proxy.stop()
        print(f"# bitstore serve --server {args.server}, {args.minutes:g} min, {args.connections} connections, "
              f"{args.fault_rate:.0%} of source GETs "
              f"faulted ({dict(proxy.stats)}); load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print(f"answers: {dict(counts)}")
        print(f"wrong bytes: {counts['wrong bytes']}; present blobs answered 404: "
              f"{counts['present blob answered 404']}; server RSS {rss_start / 1024:.1f} MiB at start, "
              f"{rss_end / 1024:.1f} MiB at the end")
        print("server RSS over the run (minute: MiB): "
              + ", ".join(f"{seconds / 60:.1f}: {kib / 1024:.1f}" for seconds, kib in samples))


if __name__ == "__main__":
    main()
