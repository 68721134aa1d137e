"""A paid API tier with a quota: ``python -m benchmarks.paid_tier [--quota 8] [--latency 0.02] [--n 1600]``.

The API allows ``quota`` calls at once, each taking ``latency`` seconds; a call above the quota is answered
429 at once (``Throttled``). The best any client can do is ``quota / latency`` calls per second. Cases, each
fetching the same ``n`` keys with ``get_many(max_workers=64)`` (or 64 plain threads):

- bitstore, ``max_concurrency=quota``: the tier's limiter keeps calls within the quota;
- bitstore, ``max_rate=quota/latency``: a rate limit only, at the quota's throughput;
- bitstore, no limit: 64 calls at once; every 429 is retried by the composite under an adaptive limiter;
- plain threads, no limit: what a loop of 64 threads gets (each 429 is an error).

Reports, per case: keys/s, the ratio to the quota's throughput, keys answered with an error, 429 answers,
calls made and the most calls seen at once. Writes ``benchmarks/results/paid_tier.json`` unless told not to.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from bitstore import Sha1APISource, Sha1Composite, Throttled

from .report import RESULTS_DIR

__all__ = ["QuotaAPI", "run_cases", "main"]

WORKERS = 64


class QuotaAPI(Sha1APISource):
    """A paid API: ``quota`` calls at once, ``latency`` seconds each; above the quota, a 429 at once."""

    def __init__(self, blobs: dict[str, bytes], quota: int, latency: float):
        super().__init__(name="paid-api")
        self.blobs, self.quota, self.latency = blobs, quota, latency
        self.lock = threading.Lock()
        self.calls = self.now = self.peak = self.throttled = 0

    def api_get(self, sha1: str) -> bytes | None:
        with self.lock:
            self.calls += 1
            self.now += 1
            self.peak = max(self.peak, self.now)
            over = self.now > self.quota
            self.throttled += over
        try:
            if over:
                raise Throttled(message="429 Too Many Requests: over the quota")
            time.sleep(self.latency)
            return self.blobs.get(sha1)
        finally:
            with self.lock:
                self.now -= 1


@dataclass
class Case:
    case: str
    keys: int
    seconds: float
    keys_per_s: float
    ratio_to_quota: float
    errors: int
    answered_429: int
    calls: int
    peak_at_once: int


def _blobs(n: int) -> dict[str, bytes]:
    out = {}
    for i in range(n):
        data = b"paid blob %d" % i
        out[hashlib.sha1(data).hexdigest()] = data
    return out


def _bitstore(blobs, quota, latency, **limits) -> tuple[QuotaAPI, float, int]:
    api = QuotaAPI(blobs, quota, latency)
    store = Sha1Composite()
    store.append_source(api, **limits)
    start = time.perf_counter()
    errors = sum(r.status != "found" for r in store.get_many(list(blobs), max_workers=WORKERS, progress=False))
    return api, time.perf_counter() - start, errors


def _plain(blobs, quota, latency) -> tuple[QuotaAPI, float, int]:
    api = QuotaAPI(blobs, quota, latency)

    def one(key):
        try:
            return api.get(key) is not None
        except Throttled:
            return False

    start = time.perf_counter()
    with ThreadPoolExecutor(WORKERS) as pool:
        errors = sum(not ok for ok in pool.map(one, list(blobs)))
    return api, time.perf_counter() - start, errors


def run_cases(n: int, quota: int, latency: float) -> list[Case]:
    best = quota / latency
    cases = [
        (f"bitstore, max_concurrency={quota}", lambda b: _bitstore(b, quota, latency, max_concurrency=quota)),
        (f"bitstore, max_rate={best:g}/s", lambda b: _bitstore(b, quota, latency, max_rate=best)),
        ("bitstore, no limit (429s retried)", lambda b: _bitstore(b, quota, latency)),
        (f"plain {WORKERS} threads, no limit", lambda b: _plain(b, quota, latency)),
    ]
    out = []
    for label, run in cases:
        blobs = _blobs(n)
        api, seconds, errors = run(blobs)
        rate = n / seconds
        out.append(Case(label, n, round(seconds, 3), round(rate, 1), round(rate / best, 3), errors, api.throttled,
                        api.calls, api.peak))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.paid_tier", description=__doc__.split("\n\n")[0])
    p.add_argument("--quota", type=int, default=8, help="calls the API allows at once")
    p.add_argument("--latency", type=float, default=0.02, help="seconds per API call")
    p.add_argument("--n", type=int, default=1600, help="keys per case")
    p.add_argument("--output-dir", default=RESULTS_DIR, help="where paid_tier.json goes ('' to skip)")
    args = p.parse_args(argv)
    cases = run_cases(args.n, args.quota, args.latency)
    print(f"API quota {args.quota} calls at once, {args.latency * 1000:g} ms a call: at most "
          f"{args.quota / args.latency:,.0f} keys/s; {args.n} keys, {WORKERS} workers")
    header = f"{'case':40} {'keys/s':>8} {'x quota':>8} {'errors':>7} {'429s':>6} {'calls':>6} {'peak':>5}"
    print(header)
    for c in cases:
        print(f"{c.case:40} {c.keys_per_s:8,.0f} {c.ratio_to_quota:8.2f} {c.errors:7} {c.answered_429:6} "
              f"{c.calls:6} {c.peak_at_once:5}")
    limited = cases[0]
    ok = limited.ratio_to_quota >= 0.9 and limited.errors == 0
    print(f"target: at the limit >= 0.9x the quota's throughput with 0 errors: {'met' if ok else 'missed'}")
    if args.output_dir:
        os.makedirs(args.output_dir, exist_ok=True)
        with open(os.path.join(args.output_dir, "paid_tier.json"), "w") as f:
            json.dump({"quota": args.quota, "latency": args.latency, "n": args.n, "target_met": ok,
                       "cases": [asdict(c) for c in cases]}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
