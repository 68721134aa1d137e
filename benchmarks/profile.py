"""Profile bitstore ``get_many`` with py-spy on one case (default S3, 16 KiB, 20 ms) and list the hotspots.

``python -m benchmarks.profile [--protocol s3] [--n 4000] [--size 16384] [--delay-ms 20] [--transport auto]``

Starts ``benchmarks.server``, fills it, starts the fetch in a child process, and once the child has built
its store and warmed up attaches ``py-spy record --gil`` (samples only the thread holding the GIL, i.e.
the Python work that costs client CPU and serialises threads), so set-up is left out. Prints the top
frames by own samples and by inclusive samples, as file:line. The raw collapsed stacks are kept in
``benchmarks/results/`` for flame graphs.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter

from .report import RESULTS_DIR

__all__ = ["main", "hotspots"]


def _child(args) -> None:
    from .remote import Target, bitstore_store, point_sdks_at

    point_sdks_at(args.endpoint)
    with open(args.keys_file) as f:
        keys = f.read().split()
    store = bitstore_store(Target(args.protocol, args.endpoint, args.bucket, "blobs/"), args.transport)
    list(store.get_many(keys[:64], progress=False))
    print("READY", flush=True)
    sys.stdin.readline()  # the profiler is attached
    start = time.perf_counter()
    found = sum(r.data is not None for r in store.get_many(keys[64:], progress=False))
    print(f"fetched {found:,}/{len(keys) - 64:,} blobs in {time.perf_counter() - start:.2f}s", flush=True)


def _frame(frame: str) -> str:
    """``func (path/to/file.py:12)`` -> ``func (file.py:12)`` with the path shortened to its package."""
    name, _, where = frame.rpartition(" (")
    path = where.rstrip(")")
    for marker in ("site-packages/", "/work/main/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path})"


def hotspots(raw_path: str, top: int = 20) -> str:
    """The ``top`` frames by own and by inclusive samples from py-spy's raw (collapsed) output."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    with open(raw_path) as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack or not count.isdigit():
                continue
            frames = [_frame(x) for x in stack.split(";") if x]
            if not frames:
                continue
            n = int(count)
            total += n
            own[frames[-1]] += n
            for frame in set(frames):
                inclusive[frame] += n
    if not total:
        return "no samples"
    lines = [f"{total:,} samples (thread holding the GIL)", "", "own samples (where the time is spent):"]
    lines += [f"  {100 * c / total:5.1f}%  {f}" for f, c in own.most_common(top)]
    lines += ["", "inclusive samples (frame on the stack):"]
    lines += [f"  {100 * c / total:5.1f}%  {f}" for f, c in inclusive.most_common(top)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__.split("\n\n")[0])
    p.add_argument("--protocol", default="s3", choices=["s3", "gcs"])
    p.add_argument("--n", type=int, default=4000)
    p.add_argument("--size", type=int, default=16 * 1024)
    p.add_argument("--delay-ms", type=float, default=20.0)
    p.add_argument("--transport", default="auto")
    p.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    p.add_argument("--top", type=int, default=20)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--endpoint", help=argparse.SUPPRESS)
    p.add_argument("--bucket", help=argparse.SUPPRESS)
    p.add_argument("--keys-file", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        _child(args)
        return ""
    from .server import ServerProcess

    py_spy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    if not os.path.exists(py_spy):
        raise SystemExit("py-spy is not installed: pip install py-spy")
    os.makedirs(RESULTS_DIR, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    raw = os.path.join(RESULTS_DIR, f"profile-{args.protocol}-{args.size}-{args.delay_ms:g}ms-{stamp}.txt")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with ServerProcess(args.delay_ms) as server, tempfile.NamedTemporaryFile("w", suffix=".keys") as keys_file:
        keys_file.write("\n".join(server.fill("profile", "blobs/", args.n + 64, args.size)))
        keys_file.flush()
        child = [sys.executable, "-m", "benchmarks.profile", "--child", "--protocol", args.protocol,
                 "--endpoint", server.endpoint, "--bucket", "profile", "--keys-file", keys_file.name,
                 "--transport", args.transport]
        with subprocess.Popen(child, cwd=root, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as proc:
            if proc.stdout.readline().strip() != "READY":
                raise SystemExit("the profiled child failed to start")
            spy = subprocess.Popen([py_spy, "record", "--gil", "--format", "raw", "--rate", str(args.rate),
                                    "-o", raw, "--pid", str(proc.pid)])
            time.sleep(2)  # let py-spy attach before the timed fetch starts
            proc.stdin.write("go\n")
            proc.stdin.flush()
            print(proc.stdout.read().strip())
            spy.wait()
    text = (f"py-spy on get_many: {args.protocol}, {args.size:,} B, {args.delay_ms:g} ms, {args.n:,} blobs, "
            f"transport={args.transport}\n{hotspots(raw, args.top)}\nraw stacks: {raw}")
    print(text)
    return text


if __name__ == "__main__":
    main()
