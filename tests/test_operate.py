"""Listing, scrubbing and replicating on local and memory stores, composites, and the CLI (``ls``, ``scrub``,
``replicate``). Cloud rows are in ``tests/conformance/test_listing.py``."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bitstore
from bitstore import (
    FetchFailed,
    LocalRaw,
    MemoryRaw,
    Sha1APISource,
    Sha1Cache,
    Sha1Composite,
    Sha1Store,
    StoreNotAvailable,
)
from bitstore.cli.main import main
from tests.core_helpers import BrokenListing

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def blobs(n: int, tag: str = "") -> dict[str, bytes]:
    out = {}
    for i in range(n):
        data = f"{tag}blob {i}".encode()
        out[sha1(data)] = data
    return out


def local(folder) -> Sha1Store:
    return Sha1Store(LocalRaw(folder), os.path.join(str(folder), ""))


def filled(store, items: dict[str, bytes]):
    store.prepare_writes()
    for key, data in items.items():
        store.put(key, data)
    return store


# --- listing ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("page", [3, 1000])
def test_local_listing_ascending_in_ranges_non_keys_skipped(tmp_path, page):
    items = blobs(40)
    store = filled(local(tmp_path / "b"), items)
    for name in ("README", ".bitstore-0123abcd.tmp", next(iter(items)).upper(), "0" * 39):
        (tmp_path / "b" / name).write_bytes(b"x")
    (tmp_path / "b" / ("a" * 40)).mkdir()  # a folder named like a key
    store.base_store.list_page_names = page  # 3: a scan per range of names
    assert list(store.iter_keys()) == sorted(items)
    ordered = sorted(items)
    assert list(store.iter_keys(start_after=ordered[16])) == ordered[17:]
    assert list(store.iter_keys(start_after=ordered[-1])) == []


def test_local_listing_missing_root_is_unavailable_missing_folder_is_empty(tmp_path):
    with pytest.raises(StoreNotAvailable):
        list(local(tmp_path / "nope").iter_keys())
    (tmp_path / "root").mkdir()
    assert list(Sha1Store(LocalRaw(tmp_path / "root"), f"{tmp_path}/root/sub/").iter_keys()) == []


def test_memory_listing_and_delete():
    items = blobs(12)
    store = filled(Sha1Store(MemoryRaw(), "mem://b/"), items)
    store.base_store.put("mem://b/sub/" + "a" * 40, b"nested")
    store.base_store.put("mem://other/" + "b" * 40, b"elsewhere")
    assert list(store.iter_keys()) == sorted(items)
    gone = sorted(items)[3]
    store.delete(gone)
    store.delete(gone)  # idempotent
    assert gone not in list(store.iter_keys())


def test_local_delete_is_idempotent(tmp_path):
    items = blobs(2)
    store = filled(local(tmp_path), items)
    key = next(iter(items))
    store.delete(key)
    store.delete(key)
    assert list(store.iter_keys()) == sorted(set(items) - {key})


class Api(Sha1APISource):
    def api_get(self, sha1):
        return None


def test_a_tier_that_cannot_list_makes_the_composite_refuse(tmp_path):
    composite = Sha1Composite()
    composite.append_source(local(tmp_path))
    composite.append_source(Api(name="paid-api"))
    with pytest.raises(NotImplementedError, match="paid-api"):
        composite.iter_keys()
    with pytest.raises(NotImplementedError, match="paid-api"):
        bitstore.scrub(composite)


tiers_strategy = st.lists(st.sets(st.integers(0, 60), max_size=30), min_size=1, max_size=4)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tiers=tiers_strategy, start=st.none() | st.integers(0, 60))
def test_composite_lists_the_sorted_union_each_once(tiers, start):
    keys = [sha1(str(i).encode()) for i in range(61)]
    composite = Sha1Composite()
    for n, members in enumerate(tiers):
        raw = MemoryRaw()
        raw.list_page_size = 2
        composite.append_source(filled(Sha1Store(raw, f"mem://t{n}/"), {keys[i]: str(i).encode() for i in members}))
    union = sorted({keys[i] for members in tiers for i in members})
    after = None if start is None else keys[start]
    assert list(composite.iter_keys(start_after=after)) == [k for k in union if after is None or k > after]


# --- scrub ----------------------------------------------------------------------------------------------
def test_scrub_streams_reports_and_deletes(tmp_path):
    items = blobs(20)
    store = filled(local(tmp_path), items)
    bad = sorted(items)[5]
    (tmp_path / bad).write_bytes(b"rotten")
    results = list(bitstore.scrub(store, max_workers=4, progress=False))
    assert [r.key for r in results] == sorted(items)
    assert [(r.key, r.status) for r in results if r.status != "ok"] == [(bad, "corrupt")]
    assert all(r.size == len(items[r.key]) for r in results if r.status == "ok")
    again = list(bitstore.scrub(store, delete_corrupt=True, start_after=sorted(items)[4], progress=False))
    assert again[0].key == bad and "removed" in again[0].error
    assert not (tmp_path / bad).exists()


class NoWholeReads(Sha1Store):
    """A store whose ``get`` must not be used (a blob larger than memory is read with ``open``)."""

    def get(self, sha1):
        raise AssertionError("held whole")


def test_scrub_and_replicate_of_a_large_blob_stream(tmp_path):
    data = os.urandom(3 << 20)
    store = NoWholeReads(LocalRaw(tmp_path / "a"), f"{tmp_path}/a/")
    filled(Sha1Store(LocalRaw(tmp_path / "a"), f"{tmp_path}/a/"), {sha1(data): data})
    assert [r.status for r in bitstore.scrub(store, progress=False)] == ["ok"]
    report = bitstore.replicate(store, local(tmp_path / "b"), max_bytes_in_flight=1 << 20, progress=False)
    assert (report.copied, report.bytes) == (1, len(data))
    assert (tmp_path / "b" / sha1(data)).read_bytes() == data


def test_scrub_raises_when_the_listing_fails_midway():
    items = blobs(12)
    store = filled(Sha1Store(BrokenListing(), "mem://b/"), items)
    seen = []
    with pytest.raises(FetchFailed):
        for result in bitstore.scrub(store, progress=False):
            seen.append(result.key)
    assert seen == sorted(items)[:5]


# --- replicate ------------------------------------------------------------------------------------------
def test_replicate_copies_the_difference_and_never_a_corrupt_copy(tmp_path):
    items = blobs(30)
    src = filled(local(tmp_path / "src"), items)
    bad = sorted(items)[15]
    (tmp_path / "src" / bad).write_bytes(b"rotten")
    dst = filled(local(tmp_path / "dst"), {k: items[k] for k in sorted(items)[:10]})
    report = bitstore.replicate(src, dst, max_workers=4, progress=False)
    assert (report.copied, report.skipped, report.corrupt, report.failed) == (19, 10, 1, 0)
    assert report.problems[0][:2] == (bad, "corrupt") and report.last_key == max(items)
    assert not (tmp_path / "dst" / bad).exists()
    rerun = bitstore.replicate(src, dst, progress=False)
    assert (rerun.copied, rerun.skipped, rerun.corrupt) == (0, 29, 1)


def test_replicate_to_a_store_that_cannot_list_asks_per_key(tmp_path):
    items = blobs(10)
    src = filled(Sha1Store(MemoryRaw(), "mem://s/"), items)

    class NoList(LocalRaw):
        list_names = bitstore.Store.list_names

    dst = Sha1Cache(NoList(tmp_path), f"{tmp_path}/")
    dst.put(sorted(items)[0], items[sorted(items)[0]])
    report = bitstore.replicate(src, dst, progress=False)
    assert (report.copied, report.skipped) == (9, 1)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(src_ids=st.sets(st.integers(0, 40), max_size=25), dst_ids=st.sets(st.integers(0, 40), max_size=25),
       corrupt=st.sets(st.integers(0, 40), max_size=5))
def test_replicate_property(src_ids, dst_ids, corrupt):
    data = {i: f"value {i}".encode() for i in range(41)}
    key = {i: sha1(data[i]) for i in data}
    src_raw, dst_raw = MemoryRaw(), MemoryRaw()
    src, dst = Sha1Store(src_raw, "mem://s/"), Sha1Store(dst_raw, "mem://d/")
    for i in src_ids:
        src_raw.put(f"mem://s/{key[i]}", b"bad" if i in corrupt else data[i])
    for i in dst_ids:
        dst.put(key[i], data[i])
    report = bitstore.replicate(src, dst, max_workers=3, progress=False)
    good = {key[i] for i in src_ids - corrupt}
    assert good | {key[i] for i in dst_ids} == set(dst.iter_keys())
    assert all(sha1(dst.get(k)) == k for k in dst.iter_keys())  # nothing corrupt was copied
    assert report.corrupt == len({key[i] for i in src_ids & corrupt} - {key[i] for i in dst_ids})
    assert report.copied == len(good - {key[i] for i in dst_ids})


class Remote(Sha1Store):
    """A source whose reads wait on a service, as far as replicate can tell (a subclass: ``reads_on_loop()`` is
    False). Kept: the keys asked of its ``get_many``, and those read with ``get`` on the thread that made it."""

    def __init__(self, *args, **kwargs):
        import threading

        super().__init__(*args, **kwargs)
        self.batched, self.singly, self.home = [], [], threading.get_ident()

    def get_many(self, keys, **options):
        keys = list(keys)
        self.batched += keys
        return super().get_many(keys, **options)

    def get(self, sha1):
        import threading

        if threading.get_ident() == self.home:  # not one of get_many's threads
            self.singly.append(sha1)
        return super().get(sha1)


class Vanishing(MemoryRaw):
    """Lists ``gone`` as well (10 bytes each): keys listed, then not found (removed meanwhile)."""

    gone: tuple[str, ...] = ()

    def list_names(self, prefix, *, start_after=None):
        from bitstore.core.listed import Listed

        names = {entry.name: entry for entry in super().list_names(prefix, start_after=start_after)}
        names.update((key, Listed(key, 10)) for key in self.gone if start_after is None or key > start_after)
        yield from (names[name] for name in sorted(names))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(small=st.sets(st.integers(0, 30), max_size=15), large=st.sets(st.integers(31, 40), max_size=4),
       dst_ids=st.sets(st.integers(0, 40), max_size=10), corrupt=st.sets(st.integers(0, 40), max_size=4),
       gone=st.sets(st.integers(41, 45), max_size=2))
def test_replicate_from_a_remote_source_into_a_local_folder(tmp_path_factory, monkeypatch, small, large, dst_ids,
                                                            corrupt, gone):
    """Small blobs come through the source's ``get_many`` and are checked and written on the caller's thread; a
    blob over ``max_bytes_in_flight`` streams; a corrupt copy is never written; a key listed and then gone
    fails; the rest is as any other replicate."""
    import threading

    from bitstore.core import replicate as replicate_module

    folder = tmp_path_factory.mktemp("dst")
    data = {i: (f"value {i} " * (30 if i > 30 else 1)).encode() for i in range(46)}  # > 64 bytes from 31 on
    key = {i: sha1(data[i]) for i in data}
    raw = Vanishing()
    raw.gone = tuple(key[i] for i in gone)
    stored = {i: b"bad" if i in corrupt else data[i] for i in small | large}
    for i, blob in stored.items():
        raw.put(f"mem://s/{key[i]}", blob)
    src = Remote(raw, "mem://s/")
    dst = filled(local(folder), {key[i]: data[i] for i in dst_ids})
    writers = set()
    checked = replicate_module._checked
    monkeypatch.setattr(replicate_module, "_checked",
                        lambda *args: (writers.add(threading.get_ident()), checked(*args))[1])
    report = bitstore.replicate(src, dst, max_workers=4, max_bytes_in_flight=64, progress=False)

    there = {key[i] for i in dst_ids}
    good = {key[i] for i in (small | large) - corrupt}
    assert set(dst.iter_keys()) == good | there and all(sha1(dst.get(k)) == k for k in dst.iter_keys())
    assert report.copied == len(good - there)
    assert report.corrupt == len({key[i] for i in (small | large) & corrupt} - there)
    assert report.failed == len({key[i] for i in gone} - there)
    assert all(status == "failed" and "not found" in error for k, status, error in report.problems
               if k in {key[i] for i in gone})
    fetched = {key[i] for i, blob in stored.items() if len(blob) <= 64} | {key[i] for i in gone}
    assert set(src.batched) == fetched - there  # every blob within the bound asked for in one get_many
    assert set(src.singly) == {key[i] for i in gone} - there  # only those get_many did not find, asked again
    assert writers <= {threading.get_ident()}


def test_replicate_from_a_verifying_remote_source_reports_corrupt(tmp_path):
    items = blobs(6)
    raw = MemoryRaw()
    for k, v in items.items():
        raw.put(f"mem://s/{k}", v)
    bad = sorted(items)[2]
    raw.put(f"mem://s/{bad}", b"rotten")
    report = bitstore.replicate(Remote(raw, "mem://s/", verify=True), local(tmp_path), progress=False)
    assert (report.copied, report.corrupt, report.failed) == (5, 1, 0)
    assert report.problems[0][:2] == (bad, "corrupt") and not (tmp_path / bad).exists()


def test_replicate_from_a_remote_source_a_failed_write_is_that_keys_failure(tmp_path, monkeypatch):
    from bitstore.core import replicate as replicate_module

    items = blobs(5)
    src = filled(Remote(MemoryRaw(), "mem://s/"), items)
    refused = sorted(items)[1]
    put = replicate_module._put

    def failing(dst, key, data):
        if key == refused:
            raise OSError(28, "No space left on device")
        return put(dst, key, data)

    monkeypatch.setattr(replicate_module, "_put", failing)
    report = bitstore.replicate(src, local(tmp_path), progress=False)
    assert (report.copied, report.failed) == (4, 1)
    assert report.problems[0][0] == refused and "No space left" in report.problems[0][2]


def test_a_killed_replicate_rerun_copies_only_the_rest(tmp_path):
    items = blobs(3000, "k")
    filled(local(tmp_path / "src"), items)
    env = {**os.environ, "PYTHONPATH": REPO}
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from bitstore.cli.main import main; sys.exit(main())",
                             "replicate", "--from", str(tmp_path / "src"), "--to", str(tmp_path / "dst"),
                             "--max-workers", "2", "--no-progress"], env=env, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(os.listdir(tmp_path / "dst") if (tmp_path / "dst").exists()
                                                  else []) < 200:
            time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    dst = local(tmp_path / "dst")
    before = list(dst.iter_keys())  # temp files left by the kill are not keys
    assert before and set(before) <= set(items)
    report = bitstore.replicate(local(tmp_path / "src"), dst, progress=False)
    assert (report.copied, report.skipped, report.failed) == (3000 - len(before), len(before), 0)
    assert list(dst.iter_keys()) == sorted(items)


# --- the command line ---------------------------------------------------------------------------------
@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("BITSTORE_HOME", str(tmp_path / "home"))
    store = filled(local(tmp_path / "home" / "blobs"), blobs(6))
    return store, tmp_path / "home" / "blobs"


def test_cli_ls(home, capsys):
    store, _ = home
    assert main(["ls"]) == 0
    keys = capsys.readouterr().out.split()
    assert keys == list(store.iter_keys())
    assert main(["ls", "--tier", "1", "--start-after", keys[2]]) == 0
    assert capsys.readouterr().out.split() == keys[3:]
    assert main(["ls", "--tier", "nope"]) == 2


def test_cli_scrub_exit_codes_and_resume(home, capsys):
    store, folder = home
    keys = list(store.iter_keys())
    assert main(["scrub", "--no-progress"]) == 0
    assert f"last key checked: {keys[-1]}" in capsys.readouterr().err
    (folder / keys[1]).write_bytes(b"rotten")
    assert main(["scrub", "--json", "--no-progress"]) == 1
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[0]["key"] == keys[1] and lines[0]["status"] == "corrupt"
    assert lines[-1]["corrupt"] == 1 and lines[-1]["last_key"] == keys[-1]
    assert main(["scrub", "--start-after", keys[1], "--no-progress"]) == 0
    assert main(["scrub", "--delete-corrupt", "--no-progress"]) == 1
    assert main(["scrub", "--no-progress"]) == 0
    (folder / keys[0]).unlink()
    (folder / keys[0]).mkdir()  # listed? no: a folder is not a blob
    assert main(["scrub", "--no-progress"]) == 0


def test_cli_scrub_failed_read_exits_3(home, capsys):
    store, folder = home
    key = list(store.iter_keys())[0]
    (folder / key).unlink()
    os.mkfifo(folder / key)  # listed (not a folder), refused when read: a failed read, not a corrupt blob
    assert main(["scrub", "--no-progress"]) == 3
    assert f"{key}  failed" in capsys.readouterr().out


def test_cli_replicate_exit_codes(home, tmp_path, capsys):
    store, folder = home
    assert main(["replicate", "--from", "1", "--to", str(tmp_path / "copy"), "--no-progress"]) == 0
    assert "copied 6" in capsys.readouterr().err
    assert main(["replicate", "--from", "1", "--to", str(tmp_path / "copy"), "--no-progress"]) == 0
    assert "skipped 6" in capsys.readouterr().err
    bad = list(store.iter_keys())[2]
    (folder / bad).write_bytes(b"rotten")
    assert main(["replicate", "--from", "local", "--to", str(tmp_path / "other"), "--no-progress"]) == 1
    assert f"{bad}  corrupt" in capsys.readouterr().out
    (folder / bad).unlink()
    new = blobs(2, "new")
    filled(local(folder), new)
    (tmp_path / "copy" / min(new)).mkdir()  # in the way of one copy: that write fails
    assert main(["replicate", "--from", "1", "--to", str(tmp_path / "copy"), "--no-progress"]) == 3
    out = capsys.readouterr()
    assert f"{min(new)}  failed" in out.out and "copied 1" in out.err
    assert main(["replicate", "--from", "1", "--to", "s3://nowhere/x/", "--no-progress"]) in (2, 3)


def test_sha256_stores_list_scrub_and_replicate(tmp_path):
    from bitstore import Sha256Store

    items = {hashlib.sha256(f"v{i}".encode()).hexdigest(): f"v{i}".encode() for i in range(12)}
    src = filled(Sha256Store(LocalRaw(tmp_path / "a"), f"{tmp_path}/a/"), items)
    (tmp_path / "a" / sha1(b"x")).write_bytes(b"x")  # a SHA1 name is no SHA-256 key
    bad = sorted(items)[4]
    (tmp_path / "a" / bad).write_bytes(b"rotten")
    assert list(src.iter_keys()) == sorted(items)
    assert {r.key for r in bitstore.scrub(src, progress=False) if r.status == "corrupt"} == {bad}
    dst = Sha256Store(MemoryRaw(), "mem://b/")
    report = bitstore.replicate(src, dst, progress=False)
    assert (report.copied, report.corrupt) == (11, 1)
    with pytest.raises(ValueError, match="different hashes"):
        bitstore.replicate(src, Sha1Store(MemoryRaw(), "mem://c/"), progress=False)
