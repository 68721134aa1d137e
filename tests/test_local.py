"""``LocalRaw``: paths and file:// URIs, atomic writes, root confinement, size limit."""
from __future__ import annotations

import os
import pickle
import threading
from pathlib import Path

import pytest

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
