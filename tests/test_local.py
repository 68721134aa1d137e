"""``LocalRaw``: paths and file:// URIs, atomic writes, root confinement, size limit."""
from __future__ import annotations

import contextlib
import os
import pickle
import sys
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bitstore import BlobTooLarge, FetchFailed, InvalidURI, LocalRaw, NotFoundInStore


@pytest.fixture
def root(tmp_path) -> Path:
    path = tmp_path / "root"
    path.mkdir()
    return path


@pytest.fixture
def outside(tmp_path) -> Path:
    path = tmp_path / "outside"
    path.mkdir()
    (path / "secret.txt").write_bytes(b"outside secret")
    return path


def test_relative_paths_resolve_against_root(root):
    store = LocalRaw(root)
    store.put("a/b/c.bin", b"abc")
    assert (root / "a" / "b" / "c.bin").read_bytes() == b"abc"
    assert store.get("a/b/c.bin") == b"abc"
    assert store.get("./a/../a/b/c.bin") == b"abc"  # `..` that stays inside is fine


def test_absolute_paths_and_file_uris(root):
    store = LocalRaw(root)
    target = root / "x.bin"
    store.put(str(target), b"x")
    assert store.get(target.as_uri()) == b"x"
    assert store.get(f"file://{target}") == b"x"
    assert store.get(f"file://localhost{target}") == b"x"
    store.put((root / "sp ace.bin").as_uri(), b"quoted")  # %20 in the uri
    assert (root / "sp ace.bin").read_bytes() == b"quoted"


def test_without_root_relative_paths_use_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = LocalRaw()
    store.put("rel/file.bin", b"cwd")
    assert (tmp_path / "rel" / "file.bin").read_bytes() == b"cwd"
    assert store.get(str(tmp_path / "rel" / "file.bin")) == b"cwd"
    assert store.name == "local"


def test_missing_file_is_not_found(root):
    store = LocalRaw(root)
    for uri in ["nope.bin", "dir/nope.bin", (root / "nope").as_uri()]:
        with pytest.raises(NotFoundInStore):
            store.get(uri)
    (root / "adir").mkdir()
    with pytest.raises(NotFoundInStore):
        store.get("adir")
    (root / "afile").write_bytes(b"")
    with pytest.raises(NotFoundInStore):
        store.get("afile/child")


@pytest.mark.parametrize("uri", ["", None, 3, b"bytes", "s3://bucket/key", "file:relative", "file://otherhost/x",
                                 "a\x00b", "file://"])
def test_invalid_uris(root, uri):
    store = LocalRaw(root)
    assert not store.is_valid(uri)
    with pytest.raises(InvalidURI):
        store.get(uri)
    with pytest.raises(InvalidURI):
        store.put(uri, b"x")


def _escapes(root: Path, outside: Path) -> list[str]:
    (root / "link_file").symlink_to(outside / "secret.txt")
    (root / "link_dir").symlink_to(outside)
    (root / "sub").mkdir()
    (root / "sub" / "deep_link").symlink_to("../../outside")
    return [
        "../outside/secret.txt",
        "sub/../../outside/secret.txt",
        str(outside / "secret.txt"),
        (outside / "secret.txt").as_uri(),
        f"file://{root}/../outside/secret.txt",
        "link_file",
        "link_dir/secret.txt",
        "sub/deep_link/secret.txt",
        "/etc/passwd",
        f"{root}/../outside/new.bin",
        "link_dir/new.bin",
    ]


def test_root_confinement_for_get_and_put(root, outside):
    store = LocalRaw(root)
    for uri in _escapes(root, outside):
        assert not store.is_valid(uri), uri
        with pytest.raises(InvalidURI):
            store.get(uri)
        with pytest.raises(InvalidURI):
            store.put(uri, b"overwritten")
    assert (outside / "secret.txt").read_bytes() == b"outside secret"
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    [result] = store.get_many(["link_file"])
    assert result.status == "invalid" and result.data is None


def test_root_prefix_sibling_is_outside(tmp_path):
    """``/x/root`` must not accept ``/x/root2``: a string-prefix check would."""
    (tmp_path / "root").mkdir()
    (tmp_path / "root2").mkdir()
    (tmp_path / "root2" / "f").write_bytes(b"sibling")
    store = LocalRaw(tmp_path / "root")
    with pytest.raises(InvalidURI):
        store.get(str(tmp_path / "root2" / "f"))


def test_symlinks_inside_root_are_followed(root):
    (root / "real").mkdir()
    (root / "real" / "f").write_bytes(b"inside")
    (root / "alias").symlink_to(root / "real")
    assert LocalRaw(root).get("alias/f") == b"inside"


def test_put_creates_parents_and_replaces_atomically(root):
    store = LocalRaw(root)
    store.put("p/q/r/blob", b"one")
    store.put("p/q/r/blob", b"two")
    assert store.get("p/q/r/blob") == b"two"
    assert os.listdir(root / "p" / "q" / "r") == ["blob"]  # no temp file left behind


def test_no_partial_file_is_ever_visible(root, monkeypatch):
    """A write that dies half way leaves neither a partial target nor a temp file."""
    store = LocalRaw(root)
    store.put("blob", b"old contents")

    from bitstore.backends import local

    real_write = os.write

    def write(fd, data):
        real_write(fd, data[: len(data) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(local.os, "write", write)
    with pytest.raises(FetchFailed, match="No space left"):
        store.put("blob", b"new contents that will not fit")
    with pytest.raises(FetchFailed):
        store.put("fresh/blob", b"new")
    monkeypatch.undo()
    assert store.get("blob") == b"old contents"
    assert not (root / "fresh" / "blob").exists()
    leftovers = [p for p in root.rglob("*") if p.is_file() and p.name != "blob"]
    assert leftovers == []


def test_readers_see_a_whole_old_or_whole_new_blob_during_rewrites(root):
    store = LocalRaw(root)
    versions = [bytes([i]) * 300_000 for i in range(4)]
    store.put("hot", versions[0])
    stop = threading.Event()
    seen: list[bytes] = []

    def reader():
        while not stop.is_set():
            seen.append(store.get("hot"))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(1, 40):
            store.put("hot", versions[i % 4])
    finally:
        stop.set()
        thread.join()
    assert seen
    assert all(data in versions for data in seen)
    assert sorted(p.name for p in root.iterdir()) == ["hot"]


def test_put_onto_the_root_or_a_folder_is_refused_not_missing(root, tmp_path):
    store = LocalRaw(root)
    (root / "adir").mkdir()
    for uri in [".", str(root), root.as_uri()]:
        with pytest.raises(InvalidURI):
            store.put(uri, b"x")
    with pytest.raises(FetchFailed) as info:
        store.put("adir", b"x")
    assert not isinstance(info.value, NotFoundInStore)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["root"]  # nothing written next to the root
    assert [p.name for p in root.iterdir()] == ["adir"]


def test_max_blob_bytes(root):
    store = LocalRaw(root, max_blob_bytes=10)
    store.put("small", b"0123456789")
    store.put("big", b"0123456789X")
    assert store.get("small") == b"0123456789"
    with pytest.raises(BlobTooLarge) as info:
        store.get("big")
    assert isinstance(info.value, FetchFailed)
    assert (info.value.size, info.value.limit) == (11, 10)
    [result] = store.get_many(["big"])
    assert result.status == "failed"


def test_permission_denied_is_unavailable_not_missing(root):
    if os.geteuid() == 0:
        pytest.skip("root ignores file permissions")
    from bitstore import StoreNotAvailable

    (root / "locked").write_bytes(b"x")
    (root / "locked").chmod(0)
    with pytest.raises(StoreNotAvailable):
        LocalRaw(root).get("locked")


def test_permission_error_maps_to_unavailable_without_the_full_path(root, monkeypatch):
    """The same mapping, provoked through ``os.open`` so it also runs as root (which ignores file modes)."""
    from bitstore import StoreNotAvailable
    from bitstore.backends import local

    def denied(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    (root / "private").mkdir()
    (root / "private" / "blob").write_bytes(b"x")
    store = LocalRaw(root)
    monkeypatch.setattr(local.os, "open", denied)
    with pytest.raises(StoreNotAvailable) as info:
        store.get("private/blob")
    assert "permission denied for 'blob'" in str(info.value)
    assert "private/blob" not in str(info.value)


def test_name_and_pickle(root):
    store = LocalRaw(root, max_blob_bytes=5)
    assert store.name == f"local:{os.path.realpath(root)}"
    assert LocalRaw(root, name="archive").name == "archive"
    store.put("k", b"v")
    back = pickle.loads(pickle.dumps(store))
    assert (back.root, back.max_blob_bytes, back.name) == (store.root, 5, store.name)
    assert back.get("k") == b"v"


def test_put_files_get_umask_mode_not_0600(tmp_path):
    import os
    import stat

    from bitstore import LocalRaw

    store = LocalRaw(root=tmp_path)
    store.put("a/b.bin", b"x")
    mode = stat.S_IMODE(os.stat(tmp_path / "a" / "b.bin").st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask


def test_get_reads_what_put_wrote_through_a_symlink_and_dotdot(tmp_path):
    from bitstore import LocalRaw

    (tmp_path / "sub" / "deep").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "sub" / "deep")
    store = LocalRaw(root=tmp_path)
    store.put("link/../x", b"through the link")
    assert (tmp_path / "sub" / "x").read_bytes() == b"through the link"
    assert store.get("link/../x") == b"through the link"


@pytest.mark.parametrize("limit", [0, 1, 4095, 4096, 4097, 10_240, 10_241, 20_000])
def test_read_at_most_reads_up_to_the_limit_or_the_end(tmp_path, limit):
    import os

    from bitstore.backends.local import read_at_most

    data = bytes(range(256)) * 40  # 10,240 bytes
    (tmp_path / "f").write_bytes(data)
    fd = os.open(tmp_path / "f", os.O_RDONLY)
    try:
        assert read_at_most(fd, limit) == data[:limit]
    finally:
        os.close(fd)


def test_a_file_of_the_size_fstat_gave_is_read_in_one_call(tmp_path, monkeypatch):
    from bitstore.backends import local

    data = bytes(range(256)) * 64
    (tmp_path / "f").write_bytes(data)
    (tmp_path / "g").write_bytes(data + b"more")
    real_read, reads = os.read, []

    def counted(fd, n):
        chunk = real_read(fd, n)
        reads.append(len(chunk))
        return chunk

    monkeypatch.setattr(local.os, "read", counted)
    fd = os.open(tmp_path / "f", os.O_RDONLY)
    try:
        assert local.read_at_most(fd, len(data) + 1, len(data)) == data and reads == [len(data)]
    finally:
        os.close(fd)
    reads.clear()
    fd = os.open(tmp_path / "g", os.O_RDONLY)
    try:  # more than expected: the limit's extra byte shows it
        assert local.read_at_most(fd, len(data) + 1, len(data)) == (data + b"m")
    finally:
        os.close(fd)
    reads.clear()
    assert LocalRaw(tmp_path).get("f") == data and reads == [len(data)]


# --- hardening: races, special files, size caps, temp files, fsync -------------------------------------
def _outside_files(outside: Path) -> list[str]:
    return sorted(str(p.relative_to(outside)) for p in outside.rglob("*") if p.name != "secret.txt")


def test_a_folder_swapped_for_a_symlink_after_the_check_is_not_followed(root, outside, monkeypatch):
    """The swap lands exactly between the path check (realpath) and the write: the write is refused."""
    from bitstore.backends import local

    (root / "d").mkdir()
    store = LocalRaw(root)
    real_realpath = os.path.realpath

    def realpath_then_swap(path, *args, **kwargs):
        resolved = real_realpath(path, *args, **kwargs)
        if (root / "d").is_dir() and not (root / "d").is_symlink():
            (root / "d").rename(root / "d_saved")
            (root / "d").symlink_to(outside)
        return resolved

    monkeypatch.setattr(local.os.path, "realpath", realpath_then_swap)
    for uri in ["d/x.bin", "d/sub/y.bin"]:
        with pytest.raises(FetchFailed, match="not a folder"):
            store.put(uri, b"escaped?")
        (root / "d").unlink()
        (root / "d_saved").rename(root / "d")
    assert _outside_files(outside) == []


def test_racing_symlink_swaps_never_place_a_byte_outside_the_root(root, outside):
    """A thread swaps a folder inside the root for a symlink pointing out of it while puts run (the code
    before descriptor-based writes let 3 to 19 of 2,000 to 8,000 such puts land outside)."""
    import time

    (root / "d").mkdir()
    store = LocalRaw(root)
    stop = threading.Event()
    swaps = [0]

    def attacker():
        n = 0
        while not stop.is_set():
            n += 1
            with contextlib.suppress(OSError):
                (root / "d").rename(root / f"old{n}")
            (root / "lnk").symlink_to(outside)
            try:
                (root / "lnk").rename(root / "d")
            except OSError:  # a put recreated "d" as a folder in between
                (root / "lnk").unlink()
                continue
            (root / "d").unlink()
            with contextlib.suppress(OSError):
                (root / "d").mkdir()
            swaps[0] += 1

    thread = threading.Thread(target=attacker, daemon=True)
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # interleave the two threads finely, so swaps land inside puts
    thread.start()
    outcomes: dict[str, int] = {}
    give_up = time.monotonic() + 8  # a bound on the work, not a timed assertion
    try:
        for i in range(6000):
            try:
                store.put(f"d/f{i % 50}" if i % 2 else f"d/sub/g{i % 50}", b"payload")
                outcome = "written"
            except (InvalidURI, FetchFailed) as exc:
                outcome = type(exc).__name__
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            if time.monotonic() > give_up:
                break
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(switch)
    assert swaps[0] > 100 and outcomes.get("written", 0) > 100, (swaps, outcomes)
    assert _outside_files(outside) == []
    assert (outside / "secret.txt").read_bytes() == b"outside secret"


def test_a_fifo_is_refused_without_blocking(root):
    os.mkfifo(root / "pipe")
    store = LocalRaw(root)
    with pytest.raises(FetchFailed, match="not a regular file.*FIFO"):
        store.get("pipe")
    [result] = store.get_many(["pipe"])
    assert result.status == "failed" and "FIFO" in result.error


@pytest.mark.parametrize("max_blob_bytes", [None, 1 << 20])
def test_devices_are_refused(max_blob_bytes):
    store = LocalRaw(max_blob_bytes=max_blob_bytes)
    with pytest.raises(FetchFailed, match="character device"):
        store.get("/dev/zero")


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
@pytest.mark.parametrize("max_blob_bytes", [None, 16])
def test_proc_files_are_refused_whatever_their_stated_size(max_blob_bytes):
    """/proc files say they hold 0 bytes and then yield more: never read past the cap, and refused."""
    assert os.stat("/proc/self/status").st_size == 0
    store = LocalRaw(max_blob_bytes=max_blob_bytes)
    with pytest.raises(FetchFailed, match="not an ordinary file|over the limit"):
        store.get("/proc/self/status")


def test_reads_never_ask_for_more_than_the_cap_plus_one(root, monkeypatch):
    """Whatever fstat says (here: a lie of 0 bytes), no read asks for more than max_blob_bytes + 1."""
    from bitstore.backends import local

    (root / "big").write_bytes(b"x" * 5000)
    asked: list[int] = []
    real_read, real_fstat = os.read, os.fstat

    def read(fd, n):
        asked.append(n)
        return real_read(fd, n)

    def fstat_saying_zero(fd):
        st = real_fstat(fd)
        return os.stat_result((st.st_mode, st.st_ino, st.st_dev, st.st_nlink, st.st_uid, st.st_gid, 0,
                               st.st_atime, st.st_mtime, st.st_ctime))

    monkeypatch.setattr(local.os, "read", read)
    monkeypatch.setattr(local.os, "fstat", fstat_saying_zero)
    with pytest.raises(FetchFailed):
        LocalRaw(root, max_blob_bytes=100).get("big")
    assert asked and sum(asked) <= 101
    monkeypatch.setattr(local.os, "fstat", real_fstat)
    asked.clear()
    with pytest.raises(BlobTooLarge):
        LocalRaw(root, max_blob_bytes=100).get("big")
    assert asked == []  # refused from its size, before any read


def test_a_file_that_changes_size_while_read_is_refused(root, monkeypatch):
    from bitstore.backends import local

    (root / "f").write_bytes(b"0123456789")
    real_fstat = os.fstat

    def fstat_then_grow(fd):
        st = real_fstat(fd)
        with open(root / "f", "ab") as f:
            f.write(b"more")
        return st

    monkeypatch.setattr(local.os, "fstat", fstat_then_grow)
    with pytest.raises(FetchFailed, match="changed while it was read"):
        LocalRaw(root).get("f")


@given(data=st.binary(max_size=3000), cap=st.one_of(st.none(), st.integers(0, 4000)))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_get_returns_the_file_or_refuses_it_by_the_cap(tmp_path, data, cap):
    path = tmp_path / "blob"
    path.write_bytes(data)
    store = LocalRaw(tmp_path, max_blob_bytes=cap)
    if cap is not None and len(data) > cap:
        with pytest.raises(BlobTooLarge):
            store.get("blob")
    else:
        assert store.get("blob") == data


def test_stale_temp_files_are_removed_when_the_folder_is_next_written(root):
    import time

    (root / "a").mkdir()
    old = root / "a" / ".bitstore-0123456789abcdef.tmp"
    fresh = root / "a" / ".bitstore-fedcba9876543210.tmp"
    other_old = root / "a" / "keep.tmp"
    other_folder = root / "b" / ".bitstore-00000000000000aa.tmp"
    other_folder.parent.mkdir()
    for path in (old, fresh, other_old, other_folder):
        path.write_bytes(b"partial")
    past = time.time() - LocalRaw.STALE_TEMP_SECONDS - 60
    for path in (old, other_old, other_folder):
        os.utime(path, (past, past))
    LocalRaw(root).put("a/blob", b"x")
    assert sorted(p.name for p in (root / "a").iterdir()) == sorted(["blob", fresh.name, "keep.tmp"])
    assert other_folder.exists()  # only the folder written is swept


def test_fsync_true_flushes_file_and_folder(root, monkeypatch):
    from bitstore.backends import local

    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(local.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    LocalRaw(root).put("x/a", b"1")
    assert synced == []
    store = LocalRaw(root, fsync=True)
    store.put("y/z/b", b"2")  # two new folders: each parent synced, then the file, then its folder
    assert len(synced) == 4 and store.get("y/z/b") == b"2"
    assert pickle.loads(pickle.dumps(store)).fsync is True


def test_put_creates_a_missing_root(tmp_path):
    store = LocalRaw(tmp_path / "not" / "yet")
    store.put("a/b", b"x")
    assert (tmp_path / "not" / "yet" / "a" / "b").read_bytes() == b"x"
