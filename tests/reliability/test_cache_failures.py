"""Cache write-back failures never fail a read; they are counted and logged once per cause, not once per blob."""
from __future__ import annotations

import errno
import logging
import os
import subprocess
import uuid

import pytest

from bitstore import (
    LocalRaw,
    MemoryRaw,
    NotFoundInStore,
    Sha1APISource,
    Sha1Cache,
    Sha1Composite,
    Sha1Store,
    Store,
    sha1_hex,
)

N = 60


def make_blobs(n: int = N, size: int = 300) -> dict[str, bytes]:
    out = {}
    for i in range(n):
        data = os.urandom(size) + i.to_bytes(4, "big")
        out[sha1_hex(data)] = data
    return out


class FailingRaw(Store):
    """A raw store that reads nothing and fails every write with ``error_for(uri)``."""

    def __init__(self, error_for):
        self.error_for = error_for
        self.attempts = 0

    def is_valid(self, uri) -> bool:
        return isinstance(uri, str)

    def get(self, uri) -> bytes:
        raise NotFoundInStore(self, uri)

    def put(self, uri, data: bytes) -> None:
        self.attempts += 1
        raise self.error_for(uri)


class DictAPI(Sha1APISource):
    def __init__(self, blobs: dict[str, bytes]):
        super().__init__(name="api")
        self.blobs = blobs

    def api_get(self, sha1: str) -> bytes | None:
        return self.blobs.get(sha1)


def warnings_from(caplog, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING and text in r.getMessage()]


def tiered(cache_raw: Store, blobs: dict[str, bytes], read: bool = True) -> tuple[Sha1Composite, Sha1Cache]:
    store = Sha1Composite(name="tiered")
    cache = Sha1Cache(cache_raw, "cache/" if isinstance(cache_raw, FailingRaw) else "", name="cache")
    store.append_cache(cache, read=read)
    store.append_source(DictAPI(blobs))
    return store, cache


def test_disk_full_cache_never_fails_a_read_and_logs_once(caplog):
    blobs = make_blobs()
    raw = FailingRaw(lambda uri: OSError(errno.ENOSPC, "No space left on device", uri))
    store, cache = tiered(raw, blobs)
    keys = list(blobs) + ["f" * 40]
    with caplog.at_level(logging.DEBUG, logger="bitstore"):
        results = list(store.get_many(keys, max_workers=8, progress=False))
    assert [r.status for r in results] == ["found"] * N + ["missing"]
    assert all(r.data == blobs[r.key] for r in results[:N])
    assert all(r.cached is False for r in results[:N])
    assert raw.attempts == N
    assert cache.write_failures == N
    assert store.cache_write_failures == N
    assert store.cache_writes == 0
    logged = warnings_from(caplog, "No space left on device")
    assert len(logged) == 1, [r.getMessage() for r in logged]


def test_each_distinct_cause_is_logged_once(caplog):
    blobs = make_blobs()
    causes = [PermissionError(errno.EACCES, "Permission denied"), OSError(errno.ENOSPC, "No space left on device"),
              OSError(errno.EROFS, "Read-only file system")]
    raw = FailingRaw(lambda uri: causes[int(uri[-1], 16) % 3])
    store, cache = tiered(raw, blobs)
    with caplog.at_level(logging.WARNING, logger="bitstore"):
        results = list(store.get_many(blobs, max_workers=8, progress=False))
    assert all(r.status == "found" and r.data == blobs[r.key] for r in results)
    assert cache.write_failures == N == store.cache_write_failures
    for text in ("Permission denied", "No space left", "Read-only file system"):
        assert len(warnings_from(caplog, text)) == 1, text
    assert len(warnings_from(caplog, "not caching")) == 3


def test_plain_store_as_cache_failing_is_counted_and_logged_once(caplog):
    """A cache that is not a Sha1Cache (its put raises): the composite counts and logs, the read succeeds."""
    blobs = make_blobs()

    class ReadOnlyBucket(Sha1Store):
        def put(self, sha1, data):
            raise PermissionError(f"AccessDenied writing {sha1}")

    store = Sha1Composite()
    store.append_cache(ReadOnlyBucket(MemoryRaw(), "mem://c/", name="ro-bucket"))
    store.append_source(DictAPI(blobs))
    with caplog.at_level(logging.WARNING, logger="bitstore"):
        results = list(store.get_many(list(blobs) * 2, max_workers=8, progress=False))
    assert all(r.status == "found" for r in results)
    # Each distinct key is fetched once per window; duplicates may share a fetch, so count at least N.
    assert store.cache_write_failures.value >= N
    assert store.cache_writes == 0
    assert len(warnings_from(caplog, "AccessDenied")) == 1


def test_local_cache_under_a_regular_file(tmp_path, caplog):
    """The cache folder cannot exist (its parent is a file): every write fails, every read still works."""
    blocker = tmp_path / "blocker"
    blocker.write_bytes(b"a file, not a folder")
    blobs = make_blobs()
    store, cache = tiered(LocalRaw(blocker / "cache"), blobs)
    with caplog.at_level(logging.WARNING, logger="bitstore"):
        first = list(store.get_many(blobs, max_workers=8, progress=False))
        again = list(store.get_many(blobs, max_workers=8, progress=False))
    for results in (first, again):
        assert all(r.status == "found" and r.data == blobs[r.key] and r.source == "api" for r in results)
    assert cache.write_failures == 2 * N == store.cache_write_failures
    # a cache whose root cannot exist is unavailable, not empty: its reads fail (and are counted), the API serves
    assert store.cache_read_failures == 2 * N
    assert len(warnings_from(caplog, "not caching")) == 1


def test_failing_cache_reads_never_hide_a_hit_and_count_in_a_miss(caplog):
    blobs = make_blobs(10)

    class BrokenCache(Sha1Cache):
        def get(self, sha1):
            raise ConnectionResetError("cache node went away")

    store = Sha1Composite()
    store.append_cache(BrokenCache(MemoryRaw(), "mem://c/", name="broken"))
    store.append_source(DictAPI(blobs))
    missing = ["0" * 40, "1" * 40]
    with caplog.at_level(logging.WARNING, logger="bitstore"):
        results = list(store.get_many(list(blobs) + missing, max_workers=4, progress=False))
    # the API tier still serves every present blob; where no tier has it, the cache's failure means nobody can
    # say the blob is absent (it may be in the cache): failed, not missing
    assert [r.status for r in results] == ["found"] * 10 + ["failed"] * 2
    assert all("cache node went away" in r.error for r in results[10:])
    assert store.cache_read_failures == 12
    assert len(warnings_from(caplog, "cache node went away")) == 1


def test_corrupt_cached_copy_is_refetched_and_healed(tmp_path):
    blobs = make_blobs(5)
    cache_raw = LocalRaw(tmp_path / "cache")
    store, cache = tiered(cache_raw, blobs)
    victim = next(iter(blobs))
    cache_raw.put(victim, b"bit rot")
    result = store.fetch(victim)
    assert result.status == "found" and result.data == blobs[victim] and result.source == "api"
    assert (tmp_path / "cache" / victim).read_bytes() == blobs[victim]
    assert store.fetch(victim).source == "cache"


def test_lying_source_is_never_cached(tmp_path, caplog):
    """Bytes from an API source are checked against their SHA1 before write-back, by default."""
    blobs = make_blobs(20)
    lies = {k: b"not the blob " + k.encode() for k in list(blobs)[:10]}
    store, cache = tiered(LocalRaw(tmp_path / "cache"), {**blobs, **lies})
    with caplog.at_level(logging.WARNING, logger="bitstore"):
        results = list(store.get_many(blobs, max_workers=4, progress=False))
    cached = {p.name: p.read_bytes() for p in (tmp_path / "cache").iterdir()} if (tmp_path / "cache").exists() else {}
    assert set(cached) == set(blobs) - set(lies)
    assert all(sha1_hex(data) == name for name, data in cached.items())
    assert store.cache_write_failures == 10 and store.cache_writes == 10
    assert [r.cached for r in results] == [False] * 10 + [True] * 10
    assert len(warnings_from(caplog, "do not match")) == 1


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 64 KiB tmpfs (a disk that fills up), when this machine lets us mount one."""
    mountpoint = tmp_path / f"tmpfs-{uuid.uuid4().hex[:8]}"
    mountpoint.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mountpoint)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()[:100]}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", str(mountpoint)], check=False)


def test_real_disk_full_on_a_tiny_tmpfs(tiny_tmpfs, caplog):
    blobs = make_blobs(40, size=8 * 1024)  # 320 KiB in all, five times the disk
    store, cache = tiered(LocalRaw(tiny_tmpfs), blobs)
    with caplog.at_level(logging.WARNING, logger="bitstore"):
        results = list(store.get_many(blobs, max_workers=4, progress=False))
    assert all(r.status == "found" and r.data == blobs[r.key] for r in results)
    written = sum(r.cached is True for r in results)
    assert 0 < written < 40
    assert cache.write_failures == 40 - written == store.cache_write_failures
    for path in tiny_tmpfs.iterdir():  # what did land is whole: atomic writes leave no partial blob
        assert not path.name.startswith(".bitstore-")
        assert sha1_hex(path.read_bytes()) == path.name
    assert len(warnings_from(caplog, "No space left")) == 1
