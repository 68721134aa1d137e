"""Does a process that used obstore's async API end cleanly? The exit abort, counted.

Runs a small child process many times per mode, each doing a little work against a local S3-style server
(``benchmarks.server``) and then ending the ordinary way (end of script: atexit handlers, then the interpreter
finalizes), and counts exit statuses and what the aborting runs printed on stderr. Not run by the test suite;
re-run it when obstore (or pyo3-async-runtimes inside it) or Python is upgraded::

    python -m benchmarks.exit_abort --runs 100                 # every mode
    python -m benchmarks.exit_abort --runs 200 --modes engine,engine-pending

Modes (each child fetches ``--keys`` 16 KiB blobs):

- ``engine``: ``get_many(engine="async")`` over every key, then exit.
- ``engine-pending``: as ``engine``, then a second ``get_many(engine="async")`` against a server that answers
  after 30 s, started in a daemon thread; the process exits with those requests in flight.
- ``engine-at-exit``: as ``engine-pending``, against a server that answers after 250 ms, and the process exits
  200-300 ms after starting those requests: answers arrive while it exits.
- ``engine-fork``: the engine in a child forked before obstore ran (the forked child exits normally too), then
  the engine in the parent.
- ``engine-after-fork``: the engine, then a fork whose child ends normally (it may not use obstore: the SDK
  path), and the parent exits.
- ``threads-pending``: ``get_many(engine="threads")`` (obstore's synchronous API on threads), then the same
  request left in flight at exit to the slow server. Not in the default set: the process does not abort, it
  waits at exit for that thread (the thread pool joins its threads) until the request's deadline (300 s) or the
  server answers (30 s), and ``--timeout`` ends it first.
- ``plain-run``: obstore's own ``get_async`` under ``asyncio.run``, 64 in flight (no bitstore code).
- ``plain-pending``: as ``plain-run``, plus requests to the slow server left for ``asyncio.run`` to cancel.
- ``plain-at-exit``: as ``plain-pending`` against the 250 ms server, returning after 200-300 ms.
- ``plain-thread``: obstore's ``get_async`` on a loop in a daemon thread, left running at exit.
- ``sync``: obstore's synchronous ``get`` (the control: its runtime is the same, but no Python object is
  handed to a tokio thread).

An aborting run exits with -6 (SIGABRT) or 134; the report lists, per mode, the exit statuses and the last
line(s) of stderr of the runs that did not exit 0.
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

MODES = ("engine", "engine-pending", "engine-at-exit", "engine-fork", "engine-after-fork", "threads-pending",
         "plain-run", "plain-pending", "plain-at-exit", "plain-thread", "sync")
BUCKET = "bkt"
SLOW_DELAY_MS = 30_000
AT_EXIT_DELAY_MS = 250


# --- the child ------------------------------------------------------------------------------------------------
def _env(endpoint: str) -> None:
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
                      AWS_EC2_METADATA_DISABLED="true")


def _bitstore_store(endpoint: str):
    from bitstore import Sha1Store
    from bitstore.backends.s3 import S3Raw

    return Sha1Store(S3Raw(endpoint_url=endpoint, transport="fast"), f"s3://{BUCKET}/")


def _engine(endpoint: str, keys: list[str], engine: str = "async") -> None:
    results = list(_bitstore_store(endpoint).get_many(keys, engine=engine, max_workers=64, progress=False))
    found = sum(1 for r in results if r.status == "found")
    if found != len(keys):
        raise SystemExit(f"engine: {found} of {len(keys)} found")


def _obstore_store(endpoint: str):
    from obstore.store import S3Store

    return S3Store(BUCKET, endpoint=endpoint, region="us-east-1", access_key_id="bench",
                   secret_access_key="bench", client_options={"allow_http": True})


async def _plain(store, keys: list[str], in_flight: int = 64) -> int:
    import obstore

    pending = iter(keys)
    total = [0]

    async def worker() -> None:
        for key in pending:
            total[0] += len(await (await obstore.get_async(store, key)).bytes_async())

    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return total[0]


def _at_exit_pause() -> float:
    import random

    return (AT_EXIT_DELAY_MS + random.uniform(-50, 50)) / 1000


def child(mode: str, endpoint: str, slow: str, keys: list[str], at_exit: str = "") -> None:
    _env(endpoint)
    if mode == "engine":
        _engine(endpoint, keys)
    elif mode in ("engine-pending", "threads-pending", "engine-at-exit"):
        engine = "threads" if mode == "threads-pending" else "async"
        _engine(endpoint, keys, engine)
        slow_store = _bitstore_store(at_exit if mode == "engine-at-exit" else slow)
        started = threading.Event()

        def fetch() -> None:
            started.set()
            list(slow_store.get_many(keys, engine=engine, max_workers=64, progress=False))

        threading.Thread(target=fetch, daemon=True).start()
        started.wait()
        time.sleep(_at_exit_pause() if mode == "engine-at-exit" else 0.3)  # the requests are in flight
    elif mode == "engine-fork":
        pid = os.fork()
        if pid == 0:
            try:
                _engine(endpoint, keys)
            except BaseException as exc:  # noqa: BLE001 - reported through the exit status
                print(f"forked child: {exc!r}", file=sys.stderr)
                os._exit(3)
            return  # the forked child ends like any script: atexit handlers, then finalization
        _engine(endpoint, keys)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            print(f"forked child exited {code}", file=sys.stderr)
            raise SystemExit(10 if code > 0 else 128 - code)
    elif mode == "engine-after-fork":
        _engine(endpoint, keys)
        pid = os.fork()
        if pid == 0:
            _engine(endpoint, keys[:4])  # obstore is not usable here: the SDK path answers
            return
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            print(f"forked child exited {code}", file=sys.stderr)
            raise SystemExit(10 if code > 0 else 128 - code)
    elif mode == "plain-run":
        asyncio.run(_plain(_obstore_store(endpoint), keys))
    elif mode in ("plain-pending", "plain-at-exit"):
        async def run() -> None:
            await _plain(_obstore_store(endpoint), keys)
            import obstore

            slow_store = _obstore_store(at_exit if mode == "plain-at-exit" else slow)
            for key in keys[:16]:
                asyncio.ensure_future(obstore.get_async(slow_store, key))
            # asyncio.run cancels those still running when this returns
            await asyncio.sleep(_at_exit_pause() if mode == "plain-at-exit" else 0.3)

        asyncio.run(run())
    elif mode == "plain-thread":
        loop = asyncio.new_event_loop()
        threading.Thread(target=loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(_plain(_obstore_store(endpoint), keys), loop).result()
    elif mode == "sync":
        import obstore

        store = _obstore_store(endpoint)
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda k: obstore.get(store, k).bytes(), keys))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


# --- the parent -----------------------------------------------------------------------------------------------
def _one(mode: str, endpoint: str, slow: str, at_exit: str, keys_file: str,
         timeout: float) -> tuple[int | str, str]:
    args = [sys.executable, "-m", "benchmarks.exit_abort", "--child", mode, "--endpoint", endpoint,
            "--slow", slow, "--at-exit", at_exit, "--keys-file", keys_file]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        done = subprocess.run(args, cwd=root, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        return "timeout", err
    return done.returncode, done.stderr


def _signature(stderr: str) -> str:
    """The lines of stderr that say what happened (fatal error, panic, runtime error), else its last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    marks = ("Fatal Python error", "panicked", "fatal runtime error", "Python runtime state", "Error", "abort")
    picked = [line for line in lines if any(m in line for m in marks)]
    return " | ".join((picked or lines[-1:])[:3])[:300] or "(nothing on stderr)"


def parent(modes: list[str], runs: int, n_keys: int, jobs: int, timeout: float, out: str | None) -> dict:
    from .server import ServerProcess

    with ServerProcess() as fast, ServerProcess(delay_ms=SLOW_DELAY_MS) as slow, \
            ServerProcess(delay_ms=AT_EXIT_DELAY_MS) as at_exit:
        keys = fast.fill(BUCKET, "", n_keys, 16 * 1024)
        slow.fill(BUCKET, "", n_keys, 16 * 1024)
        at_exit.fill(BUCKET, "", n_keys, 16 * 1024)
        with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="exit_abort_keys.", delete=False) as f:
            json.dump(keys, f)
            keys_file = f.name
        report: dict = {"python": sys.version.split()[0], "obstore": _version("obstore"), "runs": runs,
                        "keys": n_keys, "modes": {}}
        try:
            for mode in modes:
                started = time.perf_counter()
                with ThreadPoolExecutor(jobs) as pool:
                    outcomes = list(pool.map(_one, [mode] * runs, [fast.endpoint] * runs, [slow.endpoint] * runs,
                                             [at_exit.endpoint] * runs, [keys_file] * runs, [timeout] * runs))
                codes = collections.Counter(str(code) for code, _ in outcomes)
                bad = collections.Counter(_signature(err) for code, err in outcomes if code != 0)
                report["modes"][mode] = {"exit_codes": dict(codes), "not_zero": sum(c for k, c in codes.items()
                                                                                    if k != "0"),
                                         "messages": dict(bad.most_common(5)),
                                         "seconds": round(time.perf_counter() - started, 1)}
                print(f"{mode:18s} {report['modes'][mode]['not_zero']:4d} of {runs} not 0   {dict(codes)}",
                      flush=True)
                for message, count in bad.most_common(5):
                    print(f"{'':18s} {count:4d} x {message}", flush=True)
        finally:
            os.unlink(keys_file)
    if out:
        with open(out, "w") as f:
            json.dump(report, f, indent=2)
    return report


def _version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--modes", default=",".join(m for m in MODES if m != "threads-pending"),
                        help=f"comma-separated, of: {', '.join(MODES)} (default: all but threads-pending, which "
                             "waits for its request's deadline at exit)")
    parser.add_argument("--keys", type=int, default=64)
    parser.add_argument("--jobs", type=int, default=2, help="children run at once")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--out", help="write the report as JSON here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--slow", help=argparse.SUPPRESS)
    parser.add_argument("--at-exit", help=argparse.SUPPRESS)
    parser.add_argument("--keys-file", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        with open(args.keys_file) as f:
            keys = json.load(f)
        child(args.child, args.endpoint, args.slow, keys, args.at_exit)
        return
    modes = [m for m in args.modes.split(",") if m]
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        parser.error(f"unknown modes: {', '.join(unknown)} (known: {', '.join(MODES)})")
    parent(modes, args.runs, args.keys, args.jobs, args.timeout, args.out)


if __name__ == "__main__":
    main()
