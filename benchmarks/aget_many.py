"""``aget_many`` on the caller's event loop against ``get_many`` and obstore's async API, many requests in flight.

16 KiB blobs from ``benchmarks.server`` over S3 on 127.0.0.1, each request delayed (100 ms by default: a
cross-region read), N in flight for N in 64, 256, 1,024. Contenders, interleaved round by round:

- ``aget_many``: ``Sha1Store.aget_many(keys, max_in_flight=N)`` consumed with ``async for`` in ``asyncio.run``;
- ``get_many``: ``Sha1Store.get_many(keys, max_workers=N)`` (``engine="auto"``);
- ``obstore async``: ``obstore.get_async`` + ``bytes_async`` with N coroutines (obstore's own buffer), and the
  same with each blob copied to ``bytes`` (as ``aget_many`` returns it).

Each figure is the median of ``--rounds`` rounds (at least 5) with the min-max, in blobs/s and client CPU
(this process's user+system time) per blob. Ratios are of medians.

Run: ``python -m benchmarks.aget_many [--rounds 5] [--delay-ms 100] [--in-flight 64 256 1024]``.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Callable, Sequence

from .remote import Target, _count, bitstore_store, obstore_async, point_sdks_at
from .server import ServerProcess

SIZE = 16 * 1024


def _aget_many(t: Target, n: int) -> Callable[[Sequence[str]], tuple[int, int]]:
    store = bitstore_store(t)

    async def run(keys: Sequence[str]) -> tuple[int, int]:
        found = nbytes = 0
        async for result in store.aget_many(keys, max_in_flight=n):
            if result.data is not None:
                found += 1
                nbytes += len(result.data)
        return found, nbytes

    return lambda keys: asyncio.run(run(keys))


def _get_many(t: Target, n: int) -> Callable[[Sequence[str]], tuple[int, int]]:
    store = bitstore_store(t)
    return lambda keys: _count(store.get_many(keys, max_workers=n, progress=False))


CONTENDERS: dict[str, Callable[[Target, int], Callable]] = {
    "aget_many": _aget_many,
    "get_many": _get_many,
    "obstore async": lambda t, n: obstore_async(n)(t),
    "obstore async, copied to bytes": lambda t, n: obstore_async(n, copy=True)(t),
}


def _timed(fetch: Callable, keys: Sequence[str]) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    found, _ = fetch(keys)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if found != len(keys):
        raise RuntimeError(f"found {found} of {len(keys)} blobs")
    return len(keys) / wall, cpu / len(keys) * 1e6  # blobs/s, CPU microseconds per blob


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--delay-ms", type=float, default=100.0)
    parser.add_argument("--in-flight", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--n", type=int, default=2000, help="keys per run (at least 8 x in flight)")
    args = parser.parse_args(argv)
    if args.rounds < 5:
        parser.error("--rounds must be at least 5 (a median of 5 or more)")
    with ServerProcess(delay_ms=args.delay_ms) as server:
        point_sdks_at(server.endpoint)
        largest = max(args.n, 8 * max(args.in_flight))
        keys = server.fill("bench-aget", "blobs/", largest, SIZE, seed=7)
        target = Target("s3", server.endpoint, "bench-aget", "blobs/")
        print(f"# 16 KiB blobs, {args.delay_ms:g} ms per request, S3 on 127.0.0.1; load average "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; {os.cpu_count()} CPUs")
        for n in args.in_flight:
            run_keys = keys[:max(args.n, 8 * n)]
            fetchers = {name: build(target, n) for name, build in CONTENDERS.items()}
            for fetch in fetchers.values():  # warm-up: connections, credentials, thread pools
                fetch(run_keys[:n])
            rates: dict[str, list[float]] = {name: [] for name in fetchers}
            cpus: dict[str, list[float]] = {name: [] for name in fetchers}
            for _ in range(args.rounds):
                for name, fetch in fetchers.items():
                    rate, cpu = _timed(fetch, run_keys)
                    rates[name].append(rate)
                    cpus[name].append(cpu)
            print(f"\n## {n} in flight ({len(run_keys):,} blobs a run, ceiling {n / args.delay_ms * 1000:,.0f} "
                  f"blobs/s), median of {args.rounds} rounds [min-max]")
            print("| contender | blobs/s | client CPU µs/blob |")
            print("|---|---|---|")
            for name in fetchers:
                r, c = rates[name], cpus[name]
                print(f"| {name} | {statistics.median(r):,.0f} [{min(r):,.0f}-{max(r):,.0f}] | "
                      f"{statistics.median(c):,.0f} [{min(c):,.0f}-{max(c):,.0f}] |")
            med = {name: statistics.median(v) for name, v in rates.items()}
            cpu_med = {name: statistics.median(v) for name, v in cpus.items()}
            print(f"aget_many / get_many: {med['aget_many'] / med['get_many']:.2f}x; aget_many / obstore async: "
                  f"{med['aget_many'] / med['obstore async']:.2f}x; CPU per blob aget_many / obstore async: "
                  f"{cpu_med['aget_many'] / cpu_med['obstore async']:.2f}x "
                  f"(/ obstore copied: {cpu_med['aget_many'] / cpu_med['obstore async, copied to bytes']:.2f}x)")
        print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
