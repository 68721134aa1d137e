"""Fork safety: a process forked while its threads fetch through the fast transport never hangs.

The hazard: a forked child that frees obstore objects inherited from its parent (dropping the
store, or the cyclic GC collecting it at any line) can wait forever on a runtime lock a parent thread held at
the fork. Here, per backend, the parent keeps threads fetching through a ``transport="fast"`` store while it
forks ``ROUNDS`` times; each child drops the inherited store and runs ``gc.collect()``, and every
``FETCH_EVERY`` rounds first fetches a blob through the inherited store (which must work in the child). Each
round is bounded: the parent polls ``waitpid`` until ``ROUND_TIMEOUT``, then kills the child and fails.
(A parent thread caught inside ``get`` at the fork keeps its frame's references alive in the child, as CPython
does not clear other threads' frames after a fork; the child's fetch, which rebuilds the store's per-process
state and so drops the inherited obstore objects, is what exercises the hazard in that case.)
"""
from __future__ import annotations

import gc
import os
import signal
import threading
import time

import pytest

from ._rows import blob

pytestmark = [pytest.mark.timeout(120),
              pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is not available on this platform")]

ROUNDS = 150
FETCH_EVERY = 25  # a child fetch builds an SDK client (boto3 loads its models): ~0.3 s idle, seconds under load
ROUND_TIMEOUT = 15.0
PARENT_THREADS = 4

_STORE = None  # the store the children inherit (module global, so a child can drop the last reference)


def _child(uri: str, data: bytes, fetch: bool) -> None:
    """Runs in the forked child; never returns."""
    global _STORE
    code = 0
    try:
        if fetch:
            code = 0 if bytes(_STORE.get(uri)) == data else 3
        _STORE = None
        gc.collect()
    except BaseException:  # noqa: BLE001 - any failure is reported by the exit code
        code = 4
    finally:
        os._exit(code)


def _wait(pid: int) -> int | None:
    """The child's exit code, or None when it did not exit within ROUND_TIMEOUT (it is then killed)."""
    deadline = time.monotonic() + ROUND_TIMEOUT
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return None
        time.sleep(0.001)


def _fork_rounds(make_store, uri: str, data: bytes) -> None:
    """``make_store()`` is called after ``gc.freeze()``: everything older is left out of the children's
    collections (fast rounds), the store and all it builds are not. Only the module global refers to the
    store, so a child that drops it leaves the store to be freed (or to the cyclic GC)."""
    global _STORE
    gc.collect()
    gc.freeze()
    _STORE = make_store()
    assert bytes(_STORE.get(uri)) == data  # obstore's runtime is running in the parent before the first fork
    stop = threading.Event()
    parent = {"ok": 0, "bad": []}

    def fetch_loop() -> None:
        while not stop.is_set():
            try:
                got = _STORE.get(uri)
                if bytes(got) == data:
                    parent["ok"] += 1
                else:
                    parent["bad"].append("wrong bytes")
            except Exception as exc:  # noqa: BLE001 - reported below
                parent["bad"].append(repr(exc))

    threads = [threading.Thread(target=fetch_loop, daemon=True) for _ in range(PARENT_THREADS)]
    for t in threads:
        t.start()
    failures: list[str] = []
    try:
        for i in range(ROUNDS):
            pid = os.fork()
            if pid == 0:
                _child(uri, data, fetch=i % FETCH_EVERY == 0)
            code = _wait(pid)
            if code is None:
                failures.append(f"round {i}: the child hung for {ROUND_TIMEOUT:.0f}s and was killed")
                break
            if code != 0:
                failures.append(f"round {i}: the child exited with {code}")
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        _STORE = None
        gc.unfreeze()
    assert failures == []
    assert parent["bad"] == [] and parent["ok"] > 0, parent


def test_fork_while_fetching_s3(s3):
    data = blob(4096, seed=5)
    s3.create_bucket("fork-bucket")
    uri = s3.put("fork-bucket", "blob", data)
    _fork_rounds(lambda: s3.raw(transport="fast"), uri, data)


def test_fork_while_fetching_gcs(gcs):
    data = blob(4096, seed=6)
    gcs.create_bucket("fork-bucket")
    uri = gcs.put("fork-bucket", "blob", data)
    _fork_rounds(lambda: gcs.raw(transport="fast"), uri, data)


def test_fork_while_fetching_azure(azure_blob):
    from bitstore.backends.azure import AZRaw

    data = blob(4096, seed=7)
    azure_blob.create_container("fork-container")
    uri = azure_blob.put("fork-container", "blob", data)
    server = azure_blob.server
    _fork_rounds(lambda: AZRaw(server.account_name, account_key=server.account_key, endpoint_url=server.endpoint_url,
                               transport="fast"), uri, data)
