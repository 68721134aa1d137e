"""A bounded ``LocalRaw`` (``max_bytes``) against an unbounded one: a hit, a write, and the first hit of a new
process on a folder of 100,000 blobs; then what the other design (stamps on the files: mtime touched on reads,
a scan to find the least recently used) would pay for the same.

    PYTHONPATH=. python -m benchmarks.bounded_cache [--rounds 21] [--blobs 100000]

Each figure is the median of ``--rounds`` rounds (min-max beside it); the contenders run back to back within a
round, in alternating order, so a machine's load falls on both; hits compare the two stores on the same files.
Targets: a hit <= 1.2x the unbounded one, a write <= 1.5x.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from bitstore import LocalRaw

ROOT = Path(__file__).resolve().parents[1]
SIZES = {"16 KiB": 16 * 1024, "1 MiB": 1 << 20}
HIT_OPS = {"16 KiB": 200, "1 MiB": 20}  # per round
WRITE_OPS = {"16 KiB": 50, "1 MiB": 8}


_CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
_clock = time.perf_counter


def _per_op(run: Callable[[], int]) -> float:
    start = _clock()
    n = run()
    return (_clock() - start) / n


def _spread(samples: list[float]) -> tuple[float, float, float]:
    return statistics.median(samples), min(samples), max(samples)


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:,.1f} us" if seconds < 0.01 else f"{seconds * 1e3:,.1f} ms"


def _row(case: str, base: list[float], bounded: list[float], target: float | None) -> str:
    b, bmin, bmax = _spread(base)
    m, mmin, mmax = _spread(bounded)
    ratio = m / b
    verdict = "" if target is None else ("  ok" if ratio <= target else f"  OVER {target}x")
    return (f"{case:<34} unbounded {_us(b):>10} ({_us(bmin)}-{_us(bmax)})   bounded {_us(m):>10} "
            f"({_us(mmin)}-{_us(mmax)})   {ratio:.2f}x{verdict}")


def _read(store: LocalRaw, keys: list[str], ops: int, round_: int) -> int:
    for i in range(round_ * ops, (round_ + 1) * ops):
        store.get(keys[i % len(keys)])
    return ops


def _write(store: LocalRaw, names, data: bytes, ops: int, round_: int = 0) -> int:
    for _ in range(ops):
        store.put(next(names), data)
    return ops


def _rounds(contenders: dict[str, Callable[[int], int]], rounds: int) -> dict[str, list[float]]:
    """Per-op seconds of each contender in each round; within a round the contenders run back to back, in an
    order that alternates between rounds (a loaded machine's swings fall on both)."""
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            samples[name].append(_per_op(lambda run=contenders[name], r=r: run(r)))
    return samples


def hits(work: str, rounds: int) -> list[str]:
    """A hit on the same files through an unbounded and a bounded store (only the code path differs)."""
    out = []
    for label, size in SIZES.items():
        n_blobs = max(16, (64 << 20) // size // 4)
        keys = [f"blobs/{i:040x}" for i in range(n_blobs)]
        root = os.path.join(work, f"hit-{size}")
        bounded = LocalRaw(root, max_bytes=4 * n_blobs * size)
        data = os.urandom(size)
        for key in keys:
            bounded.put(key, data)
        unbounded = LocalRaw(root)
        ops = HIT_OPS[label]
        samples = _rounds({"unbounded": partial(_read, unbounded, keys, ops),
                           "bounded": partial(_read, bounded, keys, ops)}, rounds)
        out.append(_row(f"hit, {label}", samples["unbounded"], samples["bounded"], 1.2))
    return out


def writes(work: str, rounds: int) -> list[str]:
    out = []
    for label, size in SIZES.items():
        ops = WRITE_OPS[label]
        data = os.urandom(size)
        names = (f"blobs/{i:040x}" for i in range(10**9))
        stores = {"unbounded": LocalRaw(os.path.join(work, f"w-u-{size}")),
                  "bounded (filling)": LocalRaw(os.path.join(work, f"w-f-{size}"), max_bytes=10**15),
                  "bounded (full, evicting)": LocalRaw(os.path.join(work, f"w-e-{size}"), max_bytes=ops * size * 2)}
        _write(stores["bounded (full, evicting)"], names, data, 2 * ops)  # full before the first round
        samples = _rounds({name: partial(_write, store, names, data, ops) for name, store in stores.items()}, rounds)
        for name in ("bounded (filling)", "bounded (full, evicting)"):
            out.append(_row(f"write, {label}, {name}", samples["unbounded"], samples[name], 1.5))
    return out


_FIRST_HIT = """
import sys, time
clock = getattr(time, sys.argv[4])
start = clock()
from bitstore import LocalRaw
root, key, bound = sys.argv[1], sys.argv[2], sys.argv[3]
store = LocalRaw(root, max_bytes=None if bound == "-" else int(bound))
store.get(key)
hit = clock() - start
store.put("blobs/" + "f" * 40, b"x")
print(hit, clock() - start - hit)
"""


def first_hit(work: str, rounds: int, n_blobs: int) -> list[str]:
    """A folder of ``n_blobs`` blobs of 1 KiB, indexed as a bounded cache would have indexed them (rows added in
    bulk: a put per blob would measure the filling); a new process opens it, reads one blob, writes one."""
    root = os.path.join(work, "first")
    folder = os.path.join(root, "blobs")
    os.makedirs(folder)
    data = os.urandom(1024)
    names = [f"{i:040x}" for i in range(n_blobs)]
    for name in names:
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)
    bound = 2 * n_blobs * 1024
    index = LocalRaw(root, max_bytes=bound)._index
    db = index._connect()
    db.execute("BEGIN IMMEDIATE")
    db.executemany("INSERT INTO blobs (name, size, used, tmp) VALUES (?, 1024, ?, NULL)",
                   ((f"blobs/{name}", i) for i, name in enumerate(names)))
    db.execute("COMMIT")
    index.close()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    samples: dict[str, list[tuple[float, float]]] = {"unbounded": [], "bounded": []}
    for r in range(rounds):
        key = f"blobs/{names[(r * 7919) % n_blobs]}"
        for name, arg in (("unbounded", "-"), ("bounded", str(bound)))[:: 1 if r % 2 == 0 else -1]:
            done = subprocess.run([sys.executable, "-c", _FIRST_HIT, root, key, arg, _clock.__name__], env=env,
                                  capture_output=True, text=True, check=True)
            samples[name].append(tuple(float(x) for x in done.stdout.split()))
    return [
        _row(f"new process: import+open+first hit ({n_blobs:,} blobs)", [s[0] for s in samples["unbounded"]],
             [s[0] for s in samples["bounded"]], None),
        _row("new process: then its first write", [s[1] for s in samples["unbounded"]],
             [s[1] for s in samples["bounded"]], None),
    ], root


def stamps_alternative(root: str, rounds: int) -> list[str]:
    """What a stamp design pays: a futimens per hit (to record use on a noatime mount) and, to find the least
    recently used, a scan of every file's stat."""
    folder = os.path.join(root, "blobs")
    names = sorted(os.listdir(folder))[:2000]
    touch, scan = [], []
    for _ in range(rounds):
        def run_touch() -> int:
            for name in names:
                fd = os.open(os.path.join(folder, name), os.O_RDONLY)
                try:
                    os.utime(fd)
                finally:
                    os.close(fd)
            return len(names)

        def run_open() -> int:
            for name in names:
                os.close(os.open(os.path.join(folder, name), os.O_RDONLY))
            return len(names)

        touch.append(_per_op(run_touch) - _per_op(run_open))
        start = time.perf_counter()
        with os.scandir(folder) as entries:
            n = sum(1 for e in entries if e.stat().st_mtime >= 0)
        scan.append(time.perf_counter() - start)
    t, tmin, tmax = _spread(touch)
    s, smin, smax = _spread(scan)
    return [f"stamps design: mtime touch per hit      +{_us(t)} ({_us(tmin)}-{_us(tmax)})",
            f"stamps design: stat scan of {n:,} files  {_us(s)} ({_us(smin)}-{_us(smax)}) per eviction pass"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--blobs", type=int, default=100_000, help="blobs in the folder of the first-hit case")
    parser.add_argument("--clock", choices=sorted(_CLOCKS), default="wall",
                        help="wall time, or this process's CPU time (user + system: steadier on a loaded machine)")
    args = parser.parse_args(argv)
    global _clock
    _clock = _CLOCKS[args.clock]
    work = tempfile.mkdtemp(prefix="bitstore-bounded-bench-")
    try:
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; rounds: {args.rounds}; "
              f"clock: {args.clock}")
        for line in hits(work, args.rounds) + writes(work, args.rounds):
            print(line, flush=True)
        lines, root = first_hit(work, max(5, args.rounds // 3), args.blobs)
        for line in lines + stamps_alternative(root, 5):
            print(line, flush=True)
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
