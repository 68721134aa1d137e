"""The engine's event loop at interpreter exit (bitstore.engine.loop): a process that used the async engine ends the
ordinary way with status 0, its own atexit handlers run, and nothing aborts, also with requests in flight.

Without the exit handling, such a process aborted (SIGABRT) in about 3 runs in 100 while the interpreter
finalized: a tokio thread of obstore's runtime, settling the last future, was still in Python code (the GIL
released in a socket send) and re-took the GIL after finalization began. That is a race, so these few runs
only guard it by chance (benchmarks/exit_abort.py counts it over hundreds of runs). The second test makes the
settling slow on purpose, so exit has to wait for it: with the engine's wait switched off (``EXIT_WAIT = 0``)
every child of it aborts.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
import time

import pytest

_SCRIPT = """
    import atexit, socket, sys, threading
    from bitstore import Sha1Store
    from bitstore.backends.s3 import S3Raw

    held = {held!r}
    atexit.register(print, "user atexit ran", flush=True)  # registered before the engine's: runs after it
    if not held:  # runs after the engine's handler too, when its loop is stopped: no hang (threads, if any)

        def late():
            try:
                print("late", *[r.status for r in store.get_many(keys[:2], engine="async")], flush=True)
            except RuntimeError:  # concurrent.futures starts no thread at interpreter exit
                print("late", "no threads at exit", flush=True)

        atexit.register(late)
    store = Sha1Store(S3Raw(endpoint_url={endpoint!r}, transport="fast"), "s3://bkt/blobs/")
    keys = {keys!r}
    statuses = [r.status for r in store.get_many(keys, engine="async", max_workers=8, progress=False)]
    assert statuses == ["found"] * len(keys), statuses
    print("work done", flush=True)
    if held:  # requests in flight at exit, settled slowly while the interpreter exits
        import asyncio.selector_events

        settling = threading.Semaphore(0)
        loop_class = asyncio.selector_events.BaseSelectorEventLoop
        write_to_self = loop_class._write_to_self

        def slow_write_to_self(loop):
            if threading.get_ident() not in {{t.ident for t in threading.enumerate()}}:
                # A tokio thread settling a future takes a while here, in Python code with the GIL released (as
                # in the socket send it makes): the window in which an interpreter that exits aborts, held open.
                settling.release()
                a, b = socket.socketpair()
                a.settimeout(0.3)
                try:
                    a.recv(1)
                except OSError:
                    pass
                a.close()
                b.close()
            write_to_self(loop)

        loop_class._write_to_self = slow_write_to_self
        stuck = Sha1Store(S3Raw(endpoint_url=held, transport="fast"), "s3://bkt/blobs/")
        answers = []
        fetch = lambda: answers.extend(stuck.get_many(keys, engine="async", max_workers=8, progress=False))
        threading.Thread(target=fetch, daemon=True).start()
        sys.stdin.readline()  # the test says when the proxy holds every request

        def exiting():  # registered after the engine's handler: runs before it
            print("exiting", flush=True)
            sys.stdin.readline()  # the test has the proxy answer the requests
            settling.acquire()  # a request is being settled (those answered meanwhile join its wake-up)

        atexit.register(exiting)
"""
RUNS = 4


def _blobs(s3) -> list[str]:
    s3.create_bucket("bkt")
    keys = []
    for i in range(6):
        data = hashlib.sha256(str(i).encode()).digest() * (1 + i)
        key = hashlib.sha1(data).hexdigest()
        s3.put("bkt", f"blobs/{key}", data)
        keys.append(key)
    return keys


@pytest.fixture
def children():
    """The child processes a test starts: any still running when the test ends (a failed check, a timeout) is
    killed, so none outlives the test waiting on its stdin."""
    started: list[subprocess.Popen] = []
    yield started
    for run in started:
        if run.poll() is None:
            run.kill()
        run.communicate(timeout=30)


def _child(children: list, s3, keys, held) -> subprocess.Popen:
    code = textwrap.dedent(_SCRIPT.format(endpoint=s3.endpoint_url, keys=keys, held=held and held.url))
    run = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    children.append(run)
    return run


def _check(run: subprocess.Popen, lines: list[str], expected: list[str]) -> None:
    out, err = run.communicate(timeout=90)
    assert run.returncode == 0, f"exit status {run.returncode}: {err[-2000:]}"
    assert lines + out.splitlines() == expected, (lines, out, err[-2000:])
    assert "Fatal Python error" not in err and "Traceback" not in err, err[-2000:]


def test_a_process_that_used_the_async_engine_exits_cleanly(s3, children):
    keys = _blobs(s3)
    for run in [_child(children, s3, keys, None) for _ in range(RUNS)]:
        _check(run, [], ["work done", "late no threads at exit", "user atexit ran"])


def test_requests_settled_at_exit_do_not_abort_the_interpreter(s3, fault_proxy, children):
    """Each child has requests in flight when it exits; its proxy answers them from the child's first atexit
    handler on, and the tokio threads that settle them spend 0.3 s in Python code with the GIL released. Exit
    has to wait for them (or cancel what is not answered yet) before the interpreter finalizes."""
    keys = _blobs(s3)
    # object GETs are held; the access check (ListBuckets) passes at once
    proxies = [fault_proxy(s3.endpoint_url, rate=1.0, faults=("hold",), match="/bkt/blobs/") for _ in range(RUNS)]
    runs = [_child(children, s3, keys, proxy) for proxy in proxies]
    _wait_for(lambda: all(p.stats["hold"] == len(keys) for p in proxies))
    for run, proxy in zip(runs, proxies):
        _say(run, "go")
        lines = _read_until(run, "exiting")
        proxy.release()
        _say(run, "released")
        _check(run, lines, ["work done", "exiting", "user atexit ran"])


def _say(run: subprocess.Popen, line: str) -> None:
    run.stdin.write(line + "\n")
    run.stdin.flush()


def _read_until(run: subprocess.Popen, last: str) -> list[str]:
    lines: list[str] = []
    while not lines or lines[-1] != last:
        line = run.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
    return lines


def _wait_for(condition) -> None:
    """Wait for ``condition()`` (what is awaited is a condition, not a time; 60 s only bounds a broken run)."""
    give_up = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < give_up, "the condition never came true"
        time.sleep(0.01)
