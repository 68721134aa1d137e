"""``LocalRaw(root, max_bytes=...)``: a bounded cache folder, least recently used out, a read counting as use."""
from __future__ import annotations

import hashlib
import logging
import os
import pickle
import re
from collections import OrderedDict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bitstore import BlobTooLarge, InvalidURI, LocalRaw, MemoryRaw, NotFoundInStore, Sha1Cache, Sha1Composite
from bitstore.backends import _lru
from bitstore.spec import from_spec


def files_under(root) -> dict[str, int]:
    """The blobs in the folder (the index's own folder left out) and their sizes, by path below the root."""
    found = {}
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d != _lru.STATE_DIR]
        for name in names:
            path = os.path.join(folder, name)
            found[os.path.relpath(path, root)] = os.path.getsize(path)
    return found


def temp_files(root) -> list[str]:
    folder = os.path.join(root, _lru.STATE_DIR, "tmp")
    return os.listdir(folder) if os.path.isdir(folder) else []


def test_least_recently_used_goes_first_and_a_read_counts_as_use(tmp_path):
    store = LocalRaw(tmp_path, max_bytes=3000)
    for name in "abc":
        store.put(name, name.encode() * 1000)
    assert store.get("a") == b"a" * 1000  # a was written first but read since: b is now the oldest use
    store.put("d", b"d" * 1000)
    assert set(files_under(tmp_path)) == {"a", "c", "d"}
    with pytest.raises(NotFoundInStore):
        store.get("b")
    store.put("e", b"e" * 1000)  # c is next (a's read came after c's write)
    assert set(files_under(tmp_path)) == {"a", "d", "e"}
    assert store.usage().evictions == 2


def test_opening_a_blob_counts_as_use_and_a_head_does_not(tmp_path):
    store = LocalRaw(tmp_path, max_bytes=2000)
    store.put("a", b"a" * 1000)
    store.put("b", b"b" * 1000)
    store.head("a")
    with store.open("a") as f:  # a is now the most recently used
        assert f.read() == b"a" * 1000
    store.put("c", b"c" * 1000)
    assert set(files_under(tmp_path)) == {"a", "c"}


def test_recency_does_not_come_from_access_times(tmp_path):
    """Folders mounted noatime never update atime: the index keeps its own record of use."""
    store = LocalRaw(tmp_path, max_bytes=2000)
    store.put("a", b"a" * 1000)
    store.put("b", b"b" * 1000)
    store.get("a")
    os.utime(tmp_path / "a", (0, 0))  # as if never read (and never written)
    os.utime(tmp_path / "b", (2**31, 2**31))
    store.put("c", b"c" * 1000)
    assert set(files_under(tmp_path)) == {"a", "c"}


def evict_like_the_index(model: OrderedDict[str, int], bound: int) -> None:
    """The eviction policy, on a model (name -> size, least recently used first, the blob just put last): the
    oldest go until the total fits, then up to ``EVICT_AHEAD`` more while the total stays at or above the low
    water mark (``bound`` less 1/``EVICT_SLACK``)."""
    total, low, ahead = sum(model.values()), bound - bound // _lru.EVICT_SLACK, 0
    if total <= bound:
        return
    for name, size in list(model.items())[:-1]:
        if total <= bound:
            if total - size < low or ahead >= _lru.EVICT_AHEAD:
                break
            ahead += 1
        del model[name]
        total -= size


_ops = st.lists(st.one_of(
    st.tuples(st.just("put"), st.integers(0, 11), st.integers(0, 1500)),
    st.tuples(st.just("get"), st.integers(0, 11), st.just(0)),
), max_size=40)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_ops, bound=st.integers(0, 4000))
def test_after_each_put_the_folder_is_within_the_bound_and_holds_what_an_lru_holds(tmp_path_factory, ops, bound):
    root = tmp_path_factory.mktemp("lru")
    store = LocalRaw(root, max_bytes=bound)
    model: OrderedDict[str, int] = OrderedDict()  # name -> size, least recently used first
    for op, n, size in ops:
        name = f"d{n % 3}/k{n}"  # a few folders below the root
        if op == "put":
            if size > bound:
                with pytest.raises(BlobTooLarge):
                    store.put(name, b"x" * size)
                continue
            store.put(name, bytes([n]) * size)
            model.pop(name, None)
            model[name] = size
            evict_like_the_index(model, bound)
            on_disk = files_under(root)
            assert sum(on_disk.values()) <= bound
            assert on_disk == dict(model)
            assert store.usage().bytes_used == sum(on_disk.values())
        elif name in model:
            assert store.get(name) == bytes([n]) * model[name]
            model.move_to_end(name)
        else:
            with pytest.raises(NotFoundInStore):
                store.get(name)
    assert temp_files(root) == []


def test_a_blob_over_the_bound_is_refused_and_nothing_is_written(tmp_path):
    store = LocalRaw(tmp_path, max_bytes="1KiB")
    store.put("small", b"s" * 100)
    with pytest.raises(BlobTooLarge) as info:
        store.put("big", b"b" * 1025)
    assert info.value.size == 1025 and info.value.limit == 1024
    assert files_under(tmp_path) == {"small": 100} and temp_files(tmp_path) == []
    store.put("exact", b"e" * 1024)  # exactly the bound fits (everything else goes)
    assert files_under(tmp_path) == {"exact": 1024}


def test_a_sha1_cache_logs_and_counts_a_blob_too_large(tmp_path, caplog):
    big, small = b"B" * 5000, b"s" * 10
    source = MemoryRaw()
    store = Sha1Composite()
    from bitstore import Sha1Store
    store.append_source(Sha1Store(source, "mem://"), cache_result=True)
    cache = Sha1Cache(LocalRaw(tmp_path, max_bytes=4096), "", name="disk")
    store.append_cache(cache)
    for data in (big, small):
        source.put("mem://" + hashlib.sha1(data).hexdigest(), data)
    with caplog.at_level(logging.INFO, logger="bitstore"):
        assert store.get(hashlib.sha1(big).hexdigest()) == big  # served all the same
        assert store.get(hashlib.sha1(small).hexdigest()) == small
    assert cache.too_large == 1 and cache.write_failures == 1
    assert any("over its bound" in r.getMessage() for r in caplog.records)
    assert set(files_under(tmp_path)) == {hashlib.sha1(small).hexdigest()}


def test_a_read_in_progress_completes_after_its_blob_is_evicted(tmp_path):
    store = LocalRaw(tmp_path, max_bytes=2000)
    data = os.urandom(1500)
    store.put("a", data)
    with store.open("a") as f:
        head = f.read(10)
        store.put("b", b"b" * 1500)  # evicts a while it is being read
        assert not (tmp_path / "a").exists()
        assert head + f.read() == data


def test_the_index_folder_is_not_a_key(tmp_path):
    store = LocalRaw(tmp_path, max_bytes=1000)
    with pytest.raises(InvalidURI):
        store.put(f"{_lru.STATE_DIR}/index.sqlite3", b"x")


def test_processes_share_the_bound_through_the_index(tmp_path):
    """Two stores on one folder (as two processes would have): both see one total, and each put keeps it."""
    one, two = LocalRaw(tmp_path, max_bytes=3000), LocalRaw(tmp_path, max_bytes=3000)
    one.put("a", b"a" * 1000)
    two.put("b", b"b" * 1000)
    one.put("c", b"c" * 1000)
    two.get("a")
    two.put("d", b"d" * 1000)  # two's read of a is written before it evicts: b goes
    assert set(files_under(tmp_path)) == {"a", "c", "d"}
    assert one.usage().bytes_used == two.usage().bytes_used == 3000


def test_reads_are_written_in_batches(tmp_path, monkeypatch):
    store = LocalRaw(tmp_path, max_bytes=10**6)
    other = LocalRaw(tmp_path, max_bytes=10**6)
    for name in "abc":
        store.put(name, b"x")
    monkeypatch.setattr(_lru, "FLUSH_SECONDS", 1e9)
    monkeypatch.setattr(_lru, "FLUSH_READS", 3)
    store.get("a")
    store.get("b")
    assert other._index.order() == ["a", "b", "c"]  # two reads gathered, none written yet
    store.get("a")  # still two distinct blobs
    store.get("a")
    assert other._index.order() == ["a", "b", "c"]
    store.get("c")  # the third: written
    assert other._index.order() == ["b", "a", "c"]


def test_reads_gathered_longer_than_the_interval_are_written(tmp_path, monkeypatch):
    now = [1_700_000_000 * 10**9]
    monkeypatch.setattr(_lru.time, "time_ns", lambda: now[0])
    store, other = LocalRaw(tmp_path, max_bytes=10**6), LocalRaw(tmp_path, max_bytes=10**6)
    for name in "ab":
        store.put(name, b"x")
    store.get("a")
    assert other._index.order() == ["a", "b"]
    now[0] += int(_lru.FLUSH_SECONDS * 1e9)
    store.get("a")
    assert other._index.order() == ["b", "a"]


def test_a_pickled_bounded_store_works_where_it_is_unpickled(tmp_path):
    store = LocalRaw(tmp_path, max_bytes=2000)
    store.put("a", b"a" * 1000)
    copy = pickle.loads(pickle.dumps(store))
    copy.put("b", b"b" * 1000)
    assert copy.max_bytes == 2000 and copy.get("a") == b"a" * 1000
    copy.put("c", b"c" * 1000)
    assert set(files_under(tmp_path)) == {"a", "c"}  # copy's read of a counted


def test_an_unbounded_store_has_no_index_and_no_usage(tmp_path):
    store = LocalRaw(tmp_path)
    store.put("a", b"a")
    assert store.usage() is None and not (tmp_path / _lru.STATE_DIR).exists()


# --- statistics -----------------------------------------------------------------------------------
def _bounded_composite(tmp_path, max_bytes: int = 3000) -> tuple[Sha1Composite, MemoryRaw, list[str]]:
    from bitstore import Sha1Store

    source = MemoryRaw()
    store = Sha1Composite()
    store.append_source(Sha1Store(source, "mem://"), cache_result=True)
    store.append_cache(Sha1Cache(LocalRaw(tmp_path, max_bytes=max_bytes), "", name="disk"))
    keys = []
    for i in range(5):
        data = bytes([i]) * 1000
        keys.append(hashlib.sha1(data).hexdigest())
        source.put("mem://" + keys[-1], data)
    return store, source, keys


def test_stats_show_bytes_used_the_bound_and_evictions(tmp_path):
    store, _, keys = _bounded_composite(tmp_path)
    for key in keys:
        store.get(key)
    disk = store.stats()["disk"]
    assert (disk.bytes_used, disk.max_bytes, disk.evictions) == (3000, 3000, 2)
    assert disk.usage == (3000, 3000, 2)
    line = next(line for line in store.stats().lines() if line.startswith("disk:"))
    assert "2,929 B of 2,929 B" not in line and "2.9 KiB of 2.9 KiB used, 2 evicted" in line
    html = store.stats()._repr_html_()
    assert "<th>bytes used</th>" in html and "<th>max bytes</th>" in html and "<th>evictions</th>" in html
    assert "at most 2.9 KiB" in store._repr_html_()
    row = next(r for r in store.stats().rows() if r["name"] == "disk")
    assert row["evictions"] == 2 and row["max_bytes"] == 3000


def test_drained_stats_count_evictions_since_the_last_drain(tmp_path):
    store, _, keys = _bounded_composite(tmp_path)
    for key in keys[:4]:
        store.get(key)
    assert store.drain_stats()["disk"].evictions == 1
    store.get(keys[4])
    drained = store.drain_stats()["disk"]
    assert drained.evictions == 1 and drained.bytes_used == 3000  # a count and a level


def test_unbounded_tiers_show_no_bound(tmp_path):
    store = Sha1Composite()
    store.append_cache(Sha1Cache(LocalRaw(tmp_path), "", name="disk"))
    store.put(hashlib.sha1(b"x").hexdigest(), b"x")
    snap = store.stats()["disk"]
    assert snap.bytes_used is None and snap.max_bytes is None and snap.usage is None
    assert "bytes used" not in store.stats()._repr_html_()
    assert all("evicted" not in line for line in store.stats().lines())


def test_a_bounded_memory_tier_shows_its_usage():
    store = from_spec({"tier": [{"type": "memory", "role": "cache", "max_bytes": "2KB", "name": "ram"}]})
    for i in range(3):
        data = bytes([i]) * 1000
        store.put(hashlib.sha1(data).hexdigest(), data)
        store.get(hashlib.sha1(data).hexdigest())
    assert store.stats()["ram"].usage == (2000, 2000, 1)


def test_the_cli_summaries_show_a_bounded_cache(tmp_path, capsys):
    from bitstore.cli.main import main

    archive = tmp_path / "archive"
    archive.mkdir()
    keys = []
    for i in range(4):
        data = bytes([i]) * 1000
        keys.append(hashlib.sha1(data).hexdigest())
        (archive / keys[-1]).write_bytes(data)
    spec = tmp_path / "spec.toml"
    spec.write_text(f'[[tier]]\ntype = "local"\nrole = "cache"\nname = "disk"\nprefix = "{tmp_path / "cache"}"\n'
                    f'max_bytes = "2KB"\n\n[[tier]]\ntype = "local"\nprefix = "{archive}"\ncache_result = true\n')
    (tmp_path / "keys.txt").write_text("\n".join(keys) + "\n")
    assert main(["warm", "--spec", str(spec), "-i", str(tmp_path / "keys.txt"), "--no-progress"]) == 0
    assert "disk: 2.0 KiB of 2.0 KiB used, 2 evicted" in capsys.readouterr().err
    assert main(["fetch", "--spec", str(spec), "-i", str(tmp_path / "keys.txt"), "-o", str(tmp_path / "out.parquet"),
                 "--no-progress"]) == 0
    assert re.search(r"disk: .*2\.0 KiB of 2\.0 KiB used, \d+ evicted", capsys.readouterr().err)


def test_a_cache_folder_cleared_by_hand_is_made_again(tmp_path):
    import shutil

    store = LocalRaw(tmp_path / "cache", max_bytes=2000)
    store.put("a", b"a" * 1000)
    shutil.rmtree(tmp_path / "cache")
    store.put("b", b"b" * 1000)
    store.put("c", b"c" * 1000)
    store.put("d", b"d" * 1000)
    assert set(files_under(tmp_path / "cache")) == {"c", "d"} and store.usage().bytes_used == 2000


def test_a_durable_store_keeps_its_index_durable_too(tmp_path):
    store = LocalRaw(tmp_path, max_bytes=2000, fsync=True)
    store.put("a", b"a")
    assert store._index._connect().execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert LocalRaw(tmp_path, max_bytes=2000)._index._connect().execute("PRAGMA synchronous").fetchone()[0] == 1


def test_a_bounded_cache_is_not_read_on_the_event_loop(tmp_path):
    """A bounded read may write its uses to the index (and wait for another process there): never on the loop."""
    from bitstore import LocalRaw

    assert LocalRaw(tmp_path / "plain").reads_on_loop()
    assert not LocalRaw(tmp_path / "bounded", max_bytes=1 << 20).reads_on_loop()
