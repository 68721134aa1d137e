"""Operating a store, side by side with the usual tools: ``replicate`` beside ``rclone copy``, ``scrub`` beside
``sha1sum``, and the peak memory of listing and replicating a million keys.

Cases (each the median of ``--rounds`` rounds, min-max beside it; the load average is printed with them):

- replicate 10,000 blobs of 16 KiB local -> local, then the rerun with nothing to do, beside ``rclone copy``
  (``--transfers``/``--checkers`` = the same concurrency; ``--size-only`` for the rerun) when rclone is installed;
- S3 cases (local -> S3, S3 -> local, listing 100,000 keys beside boto3's paginator) need a loopback S3 server that
  lists and takes PUTs: ``benchmarks/server.py`` once it serves ListObjectsV2; until then they are reported as not
  measured;
- scrub of a local tier beside ``sha1sum`` over the same files (one process, as it is usually run);
- peak RSS of a child process listing N local keys and replicating them (``--million`` for N = 1,000,000).

Run: ``python -m benchmarks.operate [--rounds 5] [--blobs 10000] [--million]``.
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

from .local_disk import write_blobs

WORKERS = 16
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _timed(rounds: int, setup: Callable[[], None], run: Callable[[], None]) -> list[float]:
    times = []
    for _ in range(rounds):
        setup()
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return times


def _line(case: str, ours: list[float], theirs: list[float] | None, name: str) -> str:
    med = statistics.median(ours)
    text = f"{case:<46} bitstore {med:7.3f}s ({min(ours):.3f}-{max(ours):.3f})"
    if theirs:
        other = statistics.median(theirs)
        text += f"  {name} {other:7.3f}s ({min(theirs):.3f}-{max(theirs):.3f})  ratio {other / med:5.2f}x"
    return text


def _store(folder: str):
    from bitstore import LocalRaw, Sha1Store

    return Sha1Store(LocalRaw(folder), os.path.join(folder, ""))


def _rclone(*args: str) -> None:
    subprocess.run(["rclone", *args, "--transfers", str(WORKERS), "--checkers", str(WORKERS), "-q"], check=True)


def replicate_local(work: str, n: int, rounds: int) -> list[str]:
    import bitstore

    src, dst = os.path.join(work, "src"), os.path.join(work, "dst")
    os.makedirs(src, exist_ok=True)
    write_blobs(src, n, 16 * 1024)

    def fresh() -> None:
        shutil.rmtree(dst, ignore_errors=True)

    def ours() -> None:
        report = bitstore.replicate(_store(src), _store(dst), max_workers=WORKERS, progress=False)
        assert report.copied == n, report

    def rerun() -> None:
        report = bitstore.replicate(_store(src), _store(dst), max_workers=WORKERS, progress=False)
        assert report.skipped == n and report.copied == 0, report

    has_rclone = shutil.which("rclone") is not None
    out = []
    copy = _timed(rounds, fresh, ours)
    theirs = _timed(rounds, fresh, lambda: _rclone("copy", src, dst)) if has_rclone else None
    out.append(_line(f"replicate {n:,} x 16 KiB local->local", copy, theirs, "rclone copy"))
    ours_rerun = _timed(rounds, lambda: None, rerun)
    theirs_rerun = _timed(rounds, lambda: None, lambda: _rclone("copy", "--size-only", src, dst)) if has_rclone \
        else None
    out.append(_line("  rerun, nothing to do", ours_rerun, theirs_rerun, "rclone --size-only"))
    if not has_rclone:
        out.append("  (rclone is not installed: no comparison)")
    return out


def scrub_local(work: str, rounds: int) -> list[str]:
    import bitstore

    src = os.path.join(work, "src")

    def ours() -> None:
        assert all(r.status == "ok" for r in bitstore.scrub(_store(src), max_workers=WORKERS, progress=False))

    def theirs() -> None:
        names = sorted(os.listdir(src))
        subprocess.run(["sha1sum", "--", *names], cwd=src, check=True, stdout=subprocess.DEVNULL)

    n = len(os.listdir(src))
    return [_line(f"scrub {n:,} x 16 KiB local", _timed(rounds, lambda: None, ours),
                  _timed(rounds, lambda: None, theirs), "sha1sum")]


_RSS_CHILD = r"""
import os, resource, sys, time
from bitstore import LocalRaw, Sha1Store, replicate
src, dst, what = sys.argv[1], sys.argv[2], sys.argv[3]
store = lambda f: Sha1Store(LocalRaw(f), os.path.join(f, ""))
start = time.perf_counter()
if what == "list":
    n = sum(1 for _ in store(src).iter_keys())
else:
    report = replicate(store(src), store(dst), max_workers=16, progress=False)
    n = report.copied + report.skipped
print(n, time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def peak_rss(work: str, n: int) -> list[str]:
    src, dst = os.path.join(work, "rss-src"), os.path.join(work, "rss-dst")
    os.makedirs(src, exist_ok=True)
    import hashlib

    for i in range(n):
        data = str(i).encode()
        with open(os.path.join(src, hashlib.sha1(data).hexdigest()), "wb") as f:
            f.write(data)
    out = []
    env = {**os.environ, "PYTHONPATH": _REPO}
    for what in ("list", "replicate", "rerun"):
        done = subprocess.run([sys.executable, "-c", _RSS_CHILD, src, dst, "list" if what == "list" else "copy"],
                              capture_output=True, text=True, env=env, check=True)
        count, seconds, rss = done.stdout.split()
        out.append(f"peak RSS, {what} {int(count):,} local keys: {int(rss)} MiB ({float(seconds):.1f}s)")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--blobs", type=int, default=10_000)
    parser.add_argument("--rss-keys", type=int, default=100_000)
    parser.add_argument("--million", action="store_true", help="peak RSS with 1,000,000 keys")
    parser.add_argument("--skip", action="append", default=[], choices=("replicate", "scrub", "rss"))
    args = parser.parse_args(argv)
    print(f"load average before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}; "
          f"{os.cpu_count()} CPUs; {WORKERS} workers / rclone --transfers {WORKERS} --checkers {WORKERS}")
    work = tempfile.mkdtemp(prefix="bitstore-bench-operate-")
    try:
        if "replicate" not in args.skip:
            for line in replicate_local(work, args.blobs, args.rounds):
                print(line, flush=True)
        if "scrub" not in args.skip:
            if not os.path.isdir(os.path.join(work, "src")):
                os.makedirs(os.path.join(work, "src"))
                write_blobs(os.path.join(work, "src"), args.blobs, 16 * 1024)
            for line in scrub_local(work, args.rounds):
                print(line, flush=True)
        print("S3 cases (local->S3, S3->local, listing 100,000 keys beside boto3's paginator): not measured here: "
              "benchmarks/server.py serves no ListObjectsV2 yet", flush=True)
        if "rss" not in args.skip:
            for line in peak_rss(work, 1_000_000 if args.million else args.rss_keys):
                print(line, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
