"""The CLI's temp files: removed when a command is interrupted (SIGINT) or terminated (SIGTERM), and stale ones
left by a ``kill -9`` removed by age when the CLI next writes the same place."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bitstore import Sha1APISource
from bitstore.core.sha1 import sha1_hex
from tests.test_cli import REPO, bitstore

STALE = time.time() - 2 * 3600


class BlockingAPI(Sha1APISource):
    """Signals that a fetch started (``started`` file), then waits until the ``release`` file exists."""

    def __init__(self, started: str, release: str):
        super().__init__(name="blocking")
        self.started, self.release = started, release

    def api_get(self, sha1: str) -> bytes | None:
        Path(self.started).touch()
        while not os.path.exists(self.release):
            time.sleep(0.01)
        return None


def _wait_for(condition, what: str, limit: float = 60.0) -> None:
    """Poll ``condition`` (a bound on waiting, not a timed assertion)."""
    give_up = time.monotonic() + limit
    while not condition():
        if time.monotonic() > give_up:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.01)


def _temps(folder: Path, name: str) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(f".{name}.") and p.name.endswith(".tmp"))


@pytest.mark.parametrize(("sig", "code", "word"), [(signal.SIGTERM, 143, "terminated"),
                                                   (signal.SIGINT, 130, "interrupted")])
def test_a_signal_during_fetch_removes_the_temp_output(tmp_path, sig, code, word):
    started, release = tmp_path / "started", tmp_path / "release"
    spec = tmp_path / "spec.toml"
    spec.write_text(f'[[tier]]\ntype = "api"\nclass = "tests.test_cli_cleanup:BlockingAPI"\n'
                    f'started = "{started}"\nrelease = "{release}"\n')
    keys = tmp_path / "keys.txt"
    keys.write_text(sha1_hex(b"anything") + "\n")
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "BITSTORE_HOME": str(tmp_path / "home"), "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "bitstore.cli", "--spec", str(spec), "fetch", "-i", str(keys),
                             "-o", str(out / "result.parquet"), "--no-progress"],
                            env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for(started.exists, "the fetch to start")
        assert len(_temps(out, "result.parquet")) == 1
        proc.send_signal(sig)
        _wait_for(lambda: not _temps(out, "result.parquet"), "the temp output to be removed")
    finally:
        release.touch()  # lets the blocked fetch thread end, so the process can exit
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    assert stderr.decode().strip().endswith(f"bitstore: error: {word}")
    assert os.listdir(out) == []


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_ends_the_process_while_a_fetch_thread_hangs(tmp_path, sig, code):
    """The store's call never returns (``release`` is only made after the process is gone): the command unwinds
    and the process exits without waiting for that thread."""
    started, release = tmp_path / "started", tmp_path / "release"
    spec = tmp_path / "spec.toml"
    spec.write_text(f'[[tier]]\ntype = "api"\nclass = "tests.test_cli_cleanup:BlockingAPI"\n'
                    f'started = "{started}"\nrelease = "{release}"\n')
    keys = tmp_path / "keys.txt"
    keys.write_text(sha1_hex(b"anything") + "\n")
    env = {**os.environ, "BITSTORE_HOME": str(tmp_path / "home"), "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "bitstore.cli", "--spec", str(spec), "fetch", "-i", str(keys),
                             "-o", str(tmp_path / "result.parquet"), "--no-progress"],
                            env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for(started.exists, "the fetch to start")
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=60)  # a bound on waiting: a hang fails here
    finally:
        if proc.poll() is None:
            proc.kill()
        release.touch()
    assert proc.returncode == code, stderr
    assert not (tmp_path / "result.parquet").exists()


def test_fetch_removes_stale_temp_outputs_of_the_same_file(tmp_path):
    home = tmp_path / "home"
    out = tmp_path / "out"
    out.mkdir()
    stale, fresh = out / ".result.parquet.k9x2m4q1.tmp", out / ".result.parquet.a1b2c3d4.tmp"
    other = out / ".other.parquet.zz11yy22.tmp"
    for path in (stale, fresh, other):
        path.write_bytes(b"PAR1 half a file")
    for path in (stale, other):
        os.utime(path, (STALE, STALE))
    keys = tmp_path / "keys.txt"
    keys.write_text(sha1_hex(b"x") + "\n")
    done = bitstore("fetch", "-i", keys, "-o", out / "result.parquet", home=home)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted([fresh.name, other.name, "result.parquet"])


def test_put_removes_stale_temp_files_of_the_local_store(tmp_path):
    home = tmp_path / "home"
    blobs = home / "blobs"
    blobs.mkdir(parents=True)
    stale, fresh = blobs / ".bitstore-00aa11bb22cc33dd.tmp", blobs / ".bitstore-44ee55ff66007788.tmp"
    for path in (stale, fresh):
        path.write_bytes(b"half a blob")
    os.utime(stale, (STALE, STALE))
    source = tmp_path / "file.bin"
    source.write_bytes(b"data")
    done = bitstore("put", source, home=home)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in blobs.iterdir()) == sorted([fresh.name, sha1_hex(b"data")])
