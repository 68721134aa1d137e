"""A bounded folder shared by processes: writers killed at the worst moments leave nothing that holds space for
good, and four processes churning one folder never read a partial or wrong blob and leave it within its bound."""
from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from bitstore import LocalRaw, NotFoundInStore
from bitstore.backends import _lru

from .test_bounded import files_under, temp_files

ROOT = Path(__file__).resolve().parents[1]
DIED = 7


def _run(code: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], env=env, timeout=timeout,
                          capture_output=True, text=True)


_DYING_WRITER = """
    import os, sys
    from bitstore import LocalRaw
    from bitstore.backends import local
    root, moment = sys.argv[1], sys.argv[2]
    store = LocalRaw(root, max_bytes=10**6)
    if moment == "mid-write":  # half the bytes in the temp file, then killed
        def dying(fd, data):
            os.write(fd, bytes(data[: len(data) // 2]))
            os._exit(7)
        local._write_all = dying
    elif moment == "after-admit":  # the index has the row, the temp file is whole, the rename never happens
        def dying(*args, **kwargs):
            os._exit(7)
        os.rename = dying
    elif moment == "mid-eviction":  # one victim's file removed, its row not yet deleted (rolled back)
        remove = store._index._remove
        def dying(name):
            remove(name)
            os._exit(7)
        store._index._remove = dying
    store.put("lost", b"L" * 600_000)
    os._exit(0)
"""


def _die(root: Path, moment: str) -> None:
    done = _run(_DYING_WRITER, str(root), moment)
    assert done.returncode == DIED, done.stderr


@pytest.mark.parametrize("moment", ["mid-write", "after-admit"])
def test_a_writer_killed_during_a_put_leaves_nothing_that_holds_space(tmp_path, moment):
    LocalRaw(tmp_path, max_bytes=10**6).put("kept", b"k" * 1000)
    _die(tmp_path, moment)
    assert len(temp_files(tmp_path)) == 1  # the dead writer's temp file
    if moment == "after-admit":
        assert LocalRaw(tmp_path, max_bytes=10**6).usage().bytes_used == 601_000  # and its row
    store = LocalRaw(tmp_path, max_bytes=10**6)  # a new process opening the folder
    store.put("next", b"n" * 500_000)  # would not fit beside a 600,000-byte record: nothing is evicted for it
    assert temp_files(tmp_path) == []
    assert files_under(tmp_path) == {"kept": 1000, "next": 500_000}
    assert store.usage().bytes_used == 501_000 and store.usage().evictions == 0
    with pytest.raises(NotFoundInStore):
        store.get("lost")


def test_a_writer_killed_while_rewriting_a_blob_leaves_the_old_copy_counted(tmp_path):
    LocalRaw(tmp_path, max_bytes=10**6).put("lost", b"o" * 300)
    _die(tmp_path, "after-admit")
    store = LocalRaw(tmp_path, max_bytes=10**6)
    store.put("next", b"n")
    assert files_under(tmp_path) == {"lost": 300, "next": 1} and store.usage().bytes_used == 301
    assert store.get("lost") == b"o" * 300


def test_an_evictor_killed_mid_eviction_leaves_a_record_that_goes_first(tmp_path):
    first = LocalRaw(tmp_path, max_bytes=10**6)
    first.put("old", b"o" * 500_000)
    first.put("newer", b"n" * 300_000)
    _die(tmp_path, "mid-eviction")  # removed old's file; its row came back with the rollback
    assert files_under(tmp_path) == {"newer": 300_000} and temp_files(tmp_path)
    store = LocalRaw(tmp_path, max_bytes=10**6)
    assert store.usage().bytes_used == 800_000  # counted, not on disk: the bound is only stricter for now
    store.put("next", b"x" * 400_000)  # old's record is the least recently used: it goes first, newer stays
    assert files_under(tmp_path) == {"newer": 300_000, "next": 400_000}
    assert store.usage().bytes_used == 700_000 and temp_files(tmp_path) == []


def test_a_temp_file_being_written_is_never_swept(tmp_path):
    """A sweep takes only temp files nobody holds: a live writer's is left alone."""
    store = LocalRaw(tmp_path, max_bytes=10**6)
    fd, name, folder = store._locked_temp(store._index)
    try:
        assert store._index.sweep() == [] and temp_files(tmp_path) == [name]
    finally:
        os.close(fd)
    assert store._index.sweep() == [name] and temp_files(tmp_path) == []


# --- the acceptance test: four processes, one bounded folder ------------------------------------------------
BOUND = 256 * 1024
SECONDS = 3.0


def churn(root: str, seed: int, seconds: float, out: str) -> None:
    """Write and read random SHA1-named blobs in ``root`` for ``seconds``, checking every read against its key."""
    rng = random.Random(seed)
    store = LocalRaw(root, max_bytes=BOUND)
    folder = os.path.join(root, "blobs")
    known: list[str] = []
    counts = {"writes": 0, "reads": 0, "misses": 0, "wrong": 0, "errors": 0, "bytes_written": 0}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        roll = rng.random()
        if roll < 0.15 or not known:
            data = rng.randbytes(rng.randint(1, 24 * 1024))
            key = hashlib.sha1(data).hexdigest()
            store.put(f"blobs/{key}", data)
            known.append(key)
            counts["writes"] += 1
            counts["bytes_written"] += len(data)
            continue
        if roll < 0.20:
            known = sorted(set(known[-20:]) | set(os.listdir(folder)))  # the others' blobs too
            continue
        key = rng.choice(known)
        try:
            if roll < 0.80:
                data = store.get(f"blobs/{key}")
            else:
                with store.open(f"blobs/{key}") as f:  # streamed in pieces, as a large read would be
                    data = b"".join(iter(lambda: f.read(4096), b""))
        except NotFoundInStore:  # evicted (by this process or another)
            counts["misses"] += 1
            known.remove(key)
            continue
        except Exception:  # noqa: BLE001 - counted: the test requires none
            counts["errors"] += 1
            continue
        counts["reads"] += 1
        counts["wrong"] += hashlib.sha1(data).hexdigest() != key
    counts["evictions"] = store.usage().evictions
    Path(out).write_text(json.dumps(counts))


def test_four_processes_churning_one_bounded_folder(tmp_path):
    root = tmp_path / "cache"
    code = "import sys; from tests.test_bounded_processes import churn; churn(sys.argv[1], int(sys.argv[2]), " \
           "float(sys.argv[3]), sys.argv[4])"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    workers = [subprocess.Popen([sys.executable, "-c", code, str(root), str(seed), str(SECONDS),
                                 str(tmp_path / f"{seed}.json")], env=env, cwd=ROOT, stderr=subprocess.PIPE)
               for seed in range(4)]
    for worker in workers:
        _, err = worker.communicate(timeout=60)
        assert worker.returncode == 0, err.decode()
    results = [json.loads((tmp_path / f"{seed}.json").read_text()) for seed in range(4)]
    total = {key: sum(r[key] for r in results) for key in results[0]}
    assert total["wrong"] == 0 and total["errors"] == 0
    assert total["reads"] > 100 and total["misses"] > 0  # reads raced evictions
    assert total["bytes_written"] > 4 * BOUND and total["evictions"] > 0
    on_disk = files_under(root)
    assert sum(on_disk.values()) <= BOUND
    assert LocalRaw(root, max_bytes=BOUND).usage().bytes_used == sum(on_disk.values())  # nothing lost count
    assert temp_files(root) == []
    assert all(hashlib.sha1((root / name).read_bytes()).hexdigest() == name.split("/")[-1] for name in on_disk)
    print(total)


def test_state_folder_name_is_the_indexs():
    assert _lru.STATE_DIR == ".bitstore-lru"
