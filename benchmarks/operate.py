"""Operating a store, side by side with the usual tools: ``replicate`` beside ``rclone copy``, ``scrub`` beside
``sha1sum``, and the peak memory of listing and replicating a million keys.

Cases (each the median of ``--rounds`` rounds, min-max beside it; the load average is printed with them):

- replicate 10,000 blobs of 16 KiB local -> local, then the rerun with nothing to do, beside ``rclone copy``
  (``--transfers``/``--checkers`` = the same concurrency; ``--size-only`` for the rerun) when rclone is installed,
  on the disk and again in memory (tmpfs, ``/dev/shm``: the tools' own cost);
- local -> S3 and S3 -> local (and their reruns) beside rclone, and listing 100,000 keys beside boto3's paginator
  alone, against the benchmarks' loopback S3 server (``benchmarks/server.py``, in a child process); the S3 -> local
  rerun also as the shell command (``python -m bitstore.cli replicate``, a process per run: start and imports
  included);
- scrub of a local tier beside ``sha1sum`` over the same files (one process, as it is usually run);
- peak RSS of a child process listing N local keys and replicating them (``--million`` for N = 1,000,000).

A copy to the disk first waits (``--settle``, at most 300 s) until creating a file there is cheap: this machine's
ext4 has no journal, and for a minute or two after many files are deleted it skips every freed inode on each
create (200-350 µs per file against 5 once settled), which both tools would pay; the report prints what it found.

Run: ``python -m benchmarks.operate [--rounds 5] [--blobs 10000] [--million]``; ``--only up`` runs the local -> S3
copy alone beside rclone (interleaved rounds), with the client CPU per blob of each; ``--only local`` the local
replicate and scrub alone.
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


def _side_by_side(rounds: int, ours: Callable[[], None], theirs: Callable[[], None] | None,
                  setup: Callable[[], None] = lambda: None) -> tuple[list[float], list[float] | None]:
    """Both timed round by round, in an order that alternates (a loaded machine's swings fall on both); ``setup``
    before each run, untimed."""
    mine: list[float] = []
    other: list[float] | None = None if theirs is None else []
    for r in range(rounds):
        pair = [(mine, ours)] + ([] if theirs is None else [(other, theirs)])
        for times, run in pair[:: 1 if r % 2 == 0 else -1]:
            times += _timed(1, setup, run)
    return mine, other


def _line(case: str, ours: list[float], theirs: list[float] | None, name: str, unit: str = "s") -> str:
    med = statistics.median(ours)
    text = f"{case:<46} bitstore {med:7.3f}{unit} ({min(ours):.3f}-{max(ours):.3f})"
    if theirs:
        other = statistics.median(theirs)
        text += f"  {name} {other:7.3f}{unit} ({min(theirs):.3f}-{max(theirs):.3f})  ratio {other / med:5.2f}x"
    return text


def _store(folder: str):
    from bitstore import LocalRaw, Sha1Store

    return Sha1Store(LocalRaw(folder), os.path.join(folder, ""))


def _rclone(*args: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}  # rclone's S3 cannot load one over plain HTTP
    subprocess.run(["rclone", *args, "--transfers", str(WORKERS), "--checkers", str(WORKERS), "-q"], check=True,
                   env=env)


class _Destinations:
    """A new destination folder for each copy (``fresh``, untimed, also writes the disk's dirty pages), never the
    last one removed (deletions make creating files slow here: see the module docstring). The folders go with the
    work folder at the end."""

    def __init__(self, base: str) -> None:
        self.base, self.count, self.path = base, 0, base

    def fresh(self) -> None:
        self.count += 1
        self.path = f"{self.base}-{self.count}"
        os.sync()


#: Microseconds per empty file created below which the disk counts as settled (tmpfs: about 5; this machine's
#: ext4, which has no journal, 200-350 for a minute or two after a mass deletion, while it skips the freed inodes).
SETTLED_CREATE_US = 40.0
#: Seconds at most that a copy to the disk waits for it to settle (``--settle``).
SETTLE_WAIT = 300.0
#: A folder in memory (tmpfs): the local copy is timed there too, the tools' own cost without the disk's.
MEMORY_FOLDER = "/dev/shm"


def settle_disk(work: str, wait: float = SETTLE_WAIT) -> str:
    """Wait (at most ``wait`` seconds) until creating a file in ``work`` costs under ``SETTLED_CREATE_US``; what was
    found, as a line of the report. The probe's files stay (removing them would unsettle the disk again)."""
    start = time.monotonic()
    while True:
        folder = tempfile.mkdtemp(prefix="probe-", dir=work)
        t0 = time.perf_counter()
        for i in range(500):
            os.close(os.open(os.path.join(folder, str(i)), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        cost = (time.perf_counter() - t0) / 500 * 1e6
        waited = time.monotonic() - start
        if cost < SETTLED_CREATE_US or waited >= wait:
            state = "settled" if cost < SETTLED_CREATE_US else "NOT settled"
            return f"  disk {state}: {cost:.0f} µs per file created (waited {waited:.0f} s for it)"
        time.sleep(10)


def replicate_local(work: str, n: int, rounds: int, settle: float | None = SETTLE_WAIT, where: str = "") -> list[str]:
    """The local copy and its rerun in ``work``; ``settle``: seconds at most to wait for the disk (``settle_disk``),
    None for a folder in memory; ``where`` is said after the case's name."""
    import bitstore

    src = os.path.join(work, "src")
    os.makedirs(src, exist_ok=True)
    write_blobs(src, n, 16 * 1024)
    dst = _Destinations(os.path.join(work, "dst"))
    disk = None if settle is None else settle_disk(work, settle)

    def ours() -> None:
        report = bitstore.replicate(_store(src), _store(dst.path), max_workers=WORKERS, progress=False)
        assert report.copied == n, report

    def rerun() -> None:
        report = bitstore.replicate(_store(src), _store(dst.path), max_workers=WORKERS, progress=False)
        assert report.skipped == n and report.copied == 0, report

    has_rclone = shutil.which("rclone") is not None
    out = []
    copy, theirs = _side_by_side(rounds, ours, (lambda: _rclone("copy", src, dst.path)) if has_rclone else None,
                                 dst.fresh)
    out.append(_line(f"replicate {n:,} x 16 KiB local->local{where}", copy, theirs, "rclone copy"))
    out += [disk] if disk else []
    dst.fresh()
    ours()  # the copy the reruns find
    ours_rerun, theirs_rerun = _side_by_side(
        rounds, rerun, (lambda: _rclone("copy", "--size-only", src, dst.path)) if has_rclone else None)
    out.append(_line("  rerun, nothing to do", ours_rerun, theirs_rerun, "rclone --size-only"))
    if not has_rclone:
        out.append("  (rclone is not installed: no comparison)")
    return out


_KEYS = {"aws_access_key_id": "bench", "aws_secret_access_key": "bench-secret", "region_name": "us-east-1"}


def _s3_store(endpoint: str, bucket: str, prefix: str = "blobs/"):
    from bitstore import S3Raw, Sha1Store

    return Sha1Store(S3Raw(dict(_KEYS), endpoint_url=endpoint), f"s3://{bucket}/{prefix}")


def _s3_client(endpoint: str):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, **_KEYS)


def _rclone_env(endpoint: str) -> None:
    os.environ.update({"RCLONE_CONFIG_BENCH_TYPE": "s3", "RCLONE_CONFIG_BENCH_PROVIDER": "Other",
                       "RCLONE_CONFIG_BENCH_ENDPOINT": endpoint, "RCLONE_CONFIG_BENCH_ACCESS_KEY_ID": "bench",
                       "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY": "bench-secret",
                       "RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE": "true", "RCLONE_CONFIG_BENCH_REGION": "us-east-1"})


def replicate_s3(work: str, n: int, rounds: int, list_keys: int, copies: bool = True, shell: bool = True,
                 settle: float = SETTLE_WAIT) -> list[str]:
    """local -> S3 and S3 -> local against the benchmarks' loopback S3 server, and listing beside boto3; without
    ``copies``, the copies are made once, untimed, and only their reruns are measured; with ``shell``, the S3 ->
    local rerun is also timed as the ``bitstore`` command (a process per run)."""
    import bitstore

    from .server import ServerProcess

    src = os.path.join(work, "src")
    down = _Destinations(os.path.join(work, "down"))
    server = ServerProcess()
    out = []
    has_rclone = shutil.which("rclone") is not None
    try:
        _rclone_env(server.endpoint)
        client = _s3_client(server.endpoint)

        def empty_bucket() -> None:
            server.drop("up")
            client.create_bucket(Bucket="up")

        def up() -> None:
            report = bitstore.replicate(_store(src), _s3_store(server.endpoint, "up"), max_workers=WORKERS,
                                        progress=False)
            assert report.copied == n, report

        def up_rerun() -> None:
            report = bitstore.replicate(_store(src), _s3_store(server.endpoint, "up"), max_workers=WORKERS,
                                        progress=False)
            assert report.skipped == n and report.copied == 0, report

        if copies:
            copy = _timed(rounds, empty_bucket, up)
            theirs = _timed(rounds, empty_bucket, lambda: _rclone("copy", src, "bench:up/blobs")) if has_rclone \
                else None
            out.append(_line(f"replicate {n:,} x 16 KiB local->S3", copy, theirs, "rclone copy"))
        else:  # the reruns only: one copy, not timed
            empty_bucket()
            up()
        rerun, theirs = _side_by_side(rounds, up_rerun, (lambda: _rclone("copy", "--size-only", src,
                                                                          "bench:up/blobs")) if has_rclone else None)
        out.append(_line("  rerun local->S3, nothing to do", rerun, theirs, "rclone --size-only"))

        client.create_bucket(Bucket="down")
        server.fill("down", "blobs/", n, 16 * 1024)

        def get() -> None:
            report = bitstore.replicate(_s3_store(server.endpoint, "down"), _store(down.path), max_workers=WORKERS,
                                        progress=False)
            assert report.copied == n, report

        def get_rerun() -> None:
            report = bitstore.replicate(_s3_store(server.endpoint, "down"), _store(down.path), max_workers=WORKERS,
                                        progress=False)
            assert report.skipped == n, report

        if copies:
            disk = settle_disk(work, settle)
            copy = _timed(rounds, down.fresh, get)
            theirs = _timed(rounds, down.fresh, lambda: _rclone("copy", "bench:down/blobs", down.path)) \
                if has_rclone else None
            out.append(_line(f"replicate {n:,} x 16 KiB S3->local", copy, theirs, "rclone copy"))
            out.append(disk)
        else:
            down.fresh()
            get()
        rerun, theirs = _side_by_side(rounds, get_rerun, (lambda: _rclone("copy", "--size-only", "bench:down/blobs",
                                                                           down.path)) if has_rclone else None)
        out.append(_line("  rerun S3->local, nothing to do", rerun, theirs, "rclone --size-only"))
        if shell:
            cpu: dict[str, list[float]] = {"ours": [], "theirs": []}
            rerun, theirs = _side_by_side(
                rounds,
                _child_cpu(cpu["ours"], lambda: _shell_replicate(server.endpoint, "s3://down/blobs/", down.path)),
                _child_cpu(cpu["theirs"], lambda: _rclone("copy", "--size-only", "bench:down/blobs", down.path))
                if has_rclone else None)
            out.append(_line("  the same from the shell (a process each)", rerun, theirs, "rclone --size-only"))
            out.append(_line("    CPU (user + system) of those processes", cpu["ours"], cpu["theirs"] or None,
                             "rclone --size-only"))

        if not list_keys:
            return out
        client.create_bucket(Bucket="many")
        server.fill("many", "blobs/", list_keys, 16)  # 16 random bytes each: every key distinct

        def ours() -> None:
            assert sum(1 for _ in _s3_store(server.endpoint, "many").iter_keys()) == list_keys

        def paginator() -> None:
            pages = _s3_client(server.endpoint).get_paginator("list_objects_v2")
            keys = [o["Key"] for page in pages.paginate(Bucket="many", Prefix="blobs/", Delimiter="/")
                    for o in page.get("Contents", ())]
            assert len(keys) == list_keys

        def sdk() -> None:
            assert sum(1 for _ in _sdk_store(server.endpoint).iter_keys()) == list_keys

        # Round by round, in turns: a loaded machine's swings fall on the three alike.
        times: dict[str, list[float]] = {"auto": [], "sdk": [], "paginator": []}
        for r in range(rounds):
            for name, run in [("auto", ours), ("sdk", sdk), ("paginator", paginator)][:: 1 if r % 2 == 0 else -1]:
                times[name] += _timed(1, lambda: None, run)
        out.append(_line(f"list {list_keys:,} keys from S3 (auto)", times["auto"], times["paginator"],
                         "boto3 paginator"))
        out.append(_line(f"list {list_keys:,} keys from S3 (sdk)", times["sdk"], times["paginator"],
                         "boto3 paginator"))
    finally:
        server.stop()
    return out


def replicate_up(work: str, n: int, rounds: int) -> list[str]:
    """Only the local -> S3 copy (``--only up``): bitstore beside ``rclone copy``, round by round in turns, the
    bucket emptied before each run (untimed), with the client CPU (user + system) per blob of each: this process's
    for bitstore (the S3 server is a child process, not counted), rclone's process for rclone."""
    import resource

    import bitstore

    from .server import ServerProcess

    src = os.path.join(work, "src")
    server = ServerProcess()
    has_rclone = shutil.which("rclone") is not None
    times: dict[str, list[float]] = {"ours": [], "theirs": []}
    cpu: dict[str, list[float]] = {"ours": [], "theirs": []}
    try:
        _rclone_env(server.endpoint)
        client = _s3_client(server.endpoint)

        def ours() -> None:
            report = bitstore.replicate(_store(src), _s3_store(server.endpoint, "up"), max_workers=WORKERS,
                                        progress=False)
            assert report.copied == n, report

        def theirs() -> None:
            _rclone("copy", src, "bench:up/blobs")

        runs = [("ours", ours, resource.RUSAGE_SELF)]
        if has_rclone:
            runs.append(("theirs", theirs, resource.RUSAGE_CHILDREN))
        for r in range(rounds):
            for name, run, who in runs[:: 1 if r % 2 == 0 else -1]:
                server.drop("up")
                client.create_bucket(Bucket="up")
                before = resource.getrusage(who)
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
                after = resource.getrusage(who)
                cpu[name].append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    finally:
        server.stop()
    per_blob = {k: [c / n * 1e3 for c in v] for k, v in cpu.items()}  # ms of CPU per blob
    out = [_line(f"replicate {n:,} x 16 KiB local->S3", times["ours"], times["theirs"] or None, "rclone copy"),
           _line("  client CPU (user + system) per blob", per_blob["ours"], per_blob["theirs"] or None,
                 "rclone copy", unit="ms")]
    if not has_rclone:
        out.append("  (rclone is not installed: no comparison)")
    return out


def _child_cpu(into: list[float], run: Callable[[], None]) -> Callable[[], None]:
    """``run``, adding the CPU seconds (user + system) of the processes it waited for to ``into``."""
    import resource

    def timed() -> None:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        run()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        into.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)

    return timed


def _shell_replicate(endpoint: str, source: str, target: str) -> None:
    """``bitstore replicate --from SOURCE --to TARGET`` in a process of its own, as from the shell: Python's start,
    the imports and the first client are timed with the copy (the S3 keys and endpoint in the environment)."""
    env = {**os.environ, "PYTHONPATH": _REPO, "AWS_ACCESS_KEY_ID": _KEYS["aws_access_key_id"],
           "AWS_SECRET_ACCESS_KEY": _KEYS["aws_secret_access_key"], "AWS_DEFAULT_REGION": _KEYS["region_name"],
           "AWS_ENDPOINT_URL": endpoint}
    done = subprocess.run([sys.executable, "-m", "bitstore.cli", "replicate", "--from", source, "--to", target,
                           "--max-workers", str(WORKERS), "--no-progress"], env=env, capture_output=True, text=True)
    if done.returncode != 0 or "copied 0 " not in done.stderr:
        raise RuntimeError(f"bitstore replicate exited {done.returncode}: {done.stderr.strip()[-500:]}")


def _sdk_store(endpoint: str):
    from bitstore import S3Raw, Sha1Store

    return Sha1Store(S3Raw(dict(_KEYS), endpoint_url=endpoint, transport="sdk"), "s3://many/blobs/")


def scrub_local(work: str, rounds: int) -> list[str]:
    import bitstore

    src = os.path.join(work, "src")

    def ours() -> None:
        assert all(r.status == "ok" for r in bitstore.scrub(_store(src), max_workers=WORKERS, progress=False))

    def theirs() -> None:
        names = sorted(os.listdir(src))
        subprocess.run(["sha1sum", "--", *names], cwd=src, check=True, stdout=subprocess.DEVNULL)

    n = len(os.listdir(src))
    mine, other = _side_by_side(rounds, ours, theirs if shutil.which("sha1sum") else None)
    return [_line(f"scrub {n:,} x 16 KiB local", mine, other, "sha1sum")]


_RSS_CHILD = r"""
import os, sys, time
from bitstore import LocalRaw, Sha1Store, replicate
src, dst, what = sys.argv[1], sys.argv[2], sys.argv[3]
store = lambda f: Sha1Store(LocalRaw(f), os.path.join(f, ""))
start = time.perf_counter()
if what == "list":
    n = sum(1 for _ in store(src).iter_keys())
else:
    report = replicate(store(src), store(dst), max_workers=16, progress=False)
    n = report.copied + report.skipped
# VmHWM: this process's own peak (ru_maxrss keeps the peak of the process it was forked from, across exec)
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(n, time.perf_counter() - start, peak // 1024)
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
    parser.add_argument("--list-keys", type=int, default=100_000, help="keys listed from S3 (100,000; 0: no "
                                                                         "listing case)")
    parser.add_argument("--skip", action="append", default=[],
                        choices=("replicate", "scrub", "s3", "s3-copies", "shell", "rss"),
                        help="leave a case out (s3-copies: time only the S3 reruns and listings; shell: the "
                             "bitstore command's rerun, a process per run)")
    parser.add_argument("--settle", type=float, default=SETTLE_WAIT,
                        help="seconds at most to wait, before a copy to the disk, until creating a file there is "
                             f"cheap again after earlier deletions (default {SETTLE_WAIT:g}; 0: no wait)")
    parser.add_argument("--only", choices=("up", "local"),
                        help="run one case alone (up: replicate local -> S3 beside rclone copy, with client CPU; "
                             "local: the local replicate and scrub, each interleaved with rclone / sha1sum)")
    args = parser.parse_args(argv)
    if args.only == "local":
        args.skip += ["s3", "rss"]
    print(f"load average before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}; "
          f"{os.cpu_count()} CPUs; {WORKERS} workers / rclone --transfers {WORKERS} --checkers {WORKERS}")
    work = tempfile.mkdtemp(prefix="bitstore-bench-operate-")
    try:
        if args.only == "up":
            os.makedirs(os.path.join(work, "src"))
            write_blobs(os.path.join(work, "src"), args.blobs, 16 * 1024)
            for line in replicate_up(work, args.blobs, args.rounds):
                print(line, flush=True)
            print(f"load average after: {os.getloadavg()[0]:.2f}")
            return 0
        if "replicate" not in args.skip:
            for line in replicate_local(work, args.blobs, args.rounds, args.settle):
                print(line, flush=True)
            if os.path.isdir(MEMORY_FOLDER):  # the tools' own cost, without the disk's
                in_memory = tempfile.mkdtemp(prefix="bitstore-bench-operate-", dir=MEMORY_FOLDER)
                try:
                    for line in replicate_local(in_memory, args.blobs, args.rounds, None, " (tmpfs)"):
                        print(line, flush=True)
                finally:
                    shutil.rmtree(in_memory, ignore_errors=True)
        if "scrub" not in args.skip:
            if not os.path.isdir(os.path.join(work, "src")):
                os.makedirs(os.path.join(work, "src"))
                write_blobs(os.path.join(work, "src"), args.blobs, 16 * 1024)
            for line in scrub_local(work, args.rounds):
                print(line, flush=True)
        if "s3" not in args.skip:
            if not os.path.isdir(os.path.join(work, "src")):
                os.makedirs(os.path.join(work, "src"))
                write_blobs(os.path.join(work, "src"), args.blobs, 16 * 1024)
            for line in replicate_s3(work, args.blobs, args.rounds, args.list_keys,
                                     copies="s3-copies" not in args.skip, shell="shell" not in args.skip,
                                     settle=args.settle):
                print(line, flush=True)
        if "rss" not in args.skip:
            for line in peak_rss(work, 1_000_000 if args.million else args.rss_keys):
                print(line, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
