"""bitstore.arrow: enrich_table and enrich_batches over MemoryRaw/LocalRaw-backed SHA1 stores."""
from __future__ import annotations

import json
import pickle
import random
import re
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bitstore import LocalRaw, MemoryRaw, NotFoundInStore, Sha1APISource, Sha1Composite, Sha1Store, Store, sha1_hex
from bitstore.arrow import (
    ColumnError,
    ColumnExists,
    ColumnTypeError,
    MissingColumn,
    enrich_batches,
    enrich_table,
)

ROOT = Path(__file__).resolve().parent.parent
BLOBS = [b"", b"a", b"hello world", bytes(range(256)) * 40, b"\x00" * 70_000]
SHAS = [sha1_hex(b) for b in BLOBS]
BY_SHA = dict(zip(SHAS, BLOBS))
ABSENT = [sha1_hex(f"absent {i}".encode()) for i in range(3)]
BROKEN = sha1_hex(b"this key makes the flaky tier fail")


def memory_store() -> Sha1Composite:
    tier = Sha1Store(MemoryRaw(), "mem://blobs/", name="memory")
    for sha, data in BY_SHA.items():
        tier.put(sha, data)
    store = Sha1Composite()
    store.append_source(tier)
    return store


def local_store(root: Path) -> Sha1Composite:
    tier = Sha1Store(LocalRaw(root), "files/", name="disk")
    for sha, data in BY_SHA.items():
        tier.put(sha, data)
    store = Sha1Composite()
    store.append_source(tier)
    return store


class FlakyTier(Store):
    """A user store that fails for one key and knows nothing else."""

    def is_valid(self, uri) -> bool:
        return isinstance(uri, str)

    def get(self, uri) -> bytes:
        if uri == BROKEN:
            raise ConnectionError("tier unreachable")
        raise NotFoundInStore(self, uri)


@pytest.fixture(params=["memory", "local"])
def store(request, tmp_path) -> Sha1Composite:
    return memory_store() if request.param == "memory" else local_store(tmp_path / "blobs")


def expected_status(key) -> str:
    if not isinstance(key, str) or not re.fullmatch(r"(?i:sha1://)?[0-9a-fA-F]{40}", key):
        return "invalid"
    return "found" if key[-40:].lower() in BY_SHA else "missing"


def check_rows(keys, blobs, statuses=None) -> None:
    assert len(blobs) == len(keys)
    for i, key in enumerate(keys):
        status = expected_status(key)
        want = BY_SHA[key[-40:].lower()] if status == "found" else None
        assert blobs[i] == want, f"row {i} key {key!r}"
        if statuses is not None:
            assert statuses[i] == status, f"row {i} key {key!r}"


# --- key column types ----------------------------------------------------------------------------
KEY_TYPES = {
    "string": lambda keys: pa.array(keys, pa.string()),
    "large_string": lambda keys: pa.array(keys, pa.large_string()),
    "dictionary": lambda keys: pa.array(keys, pa.string()).dictionary_encode(),
    "dictionary_large": lambda keys: pa.array(keys, pa.large_string()).cast(
        pa.dictionary(pa.int8(), pa.large_string())),
    "string_view": lambda keys: pa.array(keys, pa.string()).cast(pa.string_view()),
}
MIXED_KEYS = [SHAS[2], None, "not a sha1", ABSENT[0], SHAS[0], SHAS[2].upper(), f"sha1://{SHAS[3]}", SHAS[4], ""]


@pytest.mark.parametrize("kind", sorted(KEY_TYPES))
def test_every_key_column_type(store, kind):
    table = pa.table({"sha1": KEY_TYPES[kind](MIXED_KEYS), "row": list(range(len(MIXED_KEYS)))})
    out = enrich_table(table, store, status_column="status", source_column="source")
    assert out.schema.field("blob").type == pa.large_binary()
    assert out.column("sha1").equals(table.column("sha1"))
    assert out.column("row").to_pylist() == list(range(len(MIXED_KEYS)))
    check_rows(MIXED_KEYS, out.column("blob").to_pylist(), out.column("status").to_pylist())
    sources = out.column("source").to_pylist()
    assert {s for s, k in zip(sources, MIXED_KEYS) if expected_status(k) == "found"} == {store.tier_names[0]}
    assert all(s is None for s, k in zip(sources, MIXED_KEYS) if expected_status(k) != "found")


def test_all_null_key_column_is_invalid(store):
    table = pa.table({"sha1": pa.nulls(3)})
    out = enrich_table(table, store, status_column="status")
    assert out.column("blob").to_pylist() == [None] * 3
    assert out.column("status").to_pylist() == ["invalid"] * 3


def test_null_keys_are_invalid_and_blob_null(store):
    keys = [None, SHAS[1], None]
    out = enrich_table(pa.table({"sha1": keys}), store, status_column="status")
    assert out.column("status").to_pylist() == ["invalid", "found", "invalid"]
    assert out.column("blob").to_pylist() == [None, BLOBS[1], None]
    assert out.column("blob").null_count == 2


def test_duplicates_each_get_the_blob_and_are_fetched_once():
    calls: Counter = Counter()

    class CountingAPI(Sha1APISource):
        def api_get(self, sha1):
            calls[sha1] += 1
            return BY_SHA.get(sha1)

    store = Sha1Composite()
    store.append_source(CountingAPI())
    keys = [SHAS[3], SHAS[3].upper(), f"sha1://{SHAS[3]}", SHAS[1], SHAS[3], SHAS[1]]
    out = enrich_table(pa.table({"sha1": pa.array(keys).dictionary_encode()}), store, max_workers=8)
    check_rows(keys, out.column("blob").to_pylist())
    assert calls == {SHAS[3]: 1, SHAS[1]: 1}


def test_empty_table_keeps_schema(store):
    table = pa.table({"sha1": pa.array([], pa.large_string()), "x": pa.array([], pa.int64())})
    out = enrich_table(table, store, status_column="status", source_column="source")
    assert out.num_rows == 0
    assert out.schema.names == ["sha1", "x", "blob", "status", "source"]
    assert out.schema.field("blob").type == pa.large_binary()
    assert out.schema.field("status").type == pa.string()


def test_mixed_found_missing_invalid_failed_with_a_flaky_user_tier():
    store = memory_store()
    store.append_source(FlakyTier(), cache_result=False)
    keys = [SHAS[1], ABSENT[1], "zz", BROKEN, None, SHAS[2]]
    out = enrich_table(pa.table({"sha1": keys}), store, status_column="st", source_column="src")
    assert out.column("st").to_pylist() == ["found", "missing", "invalid", "failed", "invalid", "found"]
    assert out.column("blob").to_pylist() == [BLOBS[1], None, None, None, None, BLOBS[2]]
    assert out.column("src").to_pylist() == ["memory", None, None, None, None, "memory"]


def test_error_column_says_why_a_blob_is_missing_invalid_or_failed():
    store = memory_store()
    store.append_source(FlakyTier(), cache_result=False)
    keys = [SHAS[1], ABSENT[1], "zz", BROKEN]
    table = pa.table({"sha1": keys})
    out = enrich_table(table, store, error_column="why")
    errors = out.column("why").to_pylist()
    assert out.schema.field("why").type == pa.string()
    assert errors[0] is None and "does not contain" in errors[1]
    assert "'zz' is invalid" in errors[2] and "tier unreachable" in errors[3]
    streamed = enrich_batches(table.to_batches(), store, error_column="why").read_all()
    assert streamed.column("why").to_pylist() == errors
    with pytest.raises(ColumnExists, match="error_column='sha1'"):
        enrich_table(table, store, error_column="sha1")


def test_order_is_preserved_when_fetches_complete_out_of_order():
    rng = random.Random(7)

    class SlowAPI(Sha1APISource):
        def api_get(self, sha1):
            time.sleep(rng.random() / 500)
            return sha1.encode() * 3

    store = Sha1Composite()
    store.append_source(SlowAPI())
    keys = [sha1_hex(str(i).encode()) for i in range(400)]
    batches = [pa.record_batch({"sha1": keys[i:i + 37]}) for i in range(0, len(keys), 37)]
    out = list(enrich_batches(batches, store, max_workers=16))
    assert [b.num_rows for b in out] == [b.num_rows for b in batches]
    blobs = [x for b in out for x in b.column("blob").to_pylist()]
    assert blobs == [k.encode() * 3 for k in keys]


def test_chunked_columns_are_kept_as_they_are(store):
    keys = MIXED_KEYS * 3
    key_col = pa.chunked_array([keys[:4], keys[4:5], [], keys[5:]], pa.string())
    other = pa.chunked_array([list(range(10)), list(range(10, len(keys)))])
    table = pa.table({"id": other, "sha1": key_col})
    out = enrich_table(table, store)
    assert out.column("sha1").num_chunks == key_col.num_chunks and out.column("sha1").equals(key_col)
    assert out.column("id").num_chunks == 2 and out.column("id").equals(other)
    check_rows(keys, out.column("blob").to_pylist())


# --- enrich_batches: input kinds, streaming ------------------------------------------------------
def _batches() -> list[pa.RecordBatch]:
    keys = MIXED_KEYS + [SHAS[1], ABSENT[2]]
    rows = [keys[:3], [], keys[3:9], keys[9:]]
    return [pa.record_batch({"sha1": pa.array(r, pa.string()), "n": pa.array(range(len(r)), pa.int32())})
            for r in rows]


def _input(kind: str, batches: list[pa.RecordBatch], tmp_path: Path):
    schema = batches[0].schema
    if kind == "reader":
        return pa.RecordBatchReader.from_batches(schema, iter(batches))
    if kind == "list":
        return batches
    if kind == "generator":
        return (b for b in batches)
    if kind == "dataset":
        pq.write_table(pa.Table.from_batches(batches), tmp_path / "keys.parquet", row_group_size=4)
        return ds.dataset(tmp_path / "keys.parquet")
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["reader", "list", "generator", "dataset"])
def test_enrich_batches_input_kinds(store, kind, tmp_path):
    batches = _batches()
    reader = enrich_batches(_input(kind, batches, tmp_path), store, status_column="status", batch_size=4)
    assert isinstance(reader, pa.RecordBatchReader)
    assert reader.schema.names == ["sha1", "n", "blob", "status"]
    out = list(reader)
    keys = [k for b in batches for k in b.column("sha1").to_pylist()]
    if kind == "dataset":  # bitstore cut the dataset into batches of batch_size rows
        assert all(b.num_rows <= 4 for b in out)
    else:
        assert [b.num_rows for b in out] == [b.num_rows for b in batches]
        for got, given_batch in zip(out, batches):
            assert got.select(["sha1", "n"]).equals(given_batch)
    table = pa.Table.from_batches(out)
    assert table.column("sha1").to_pylist() == keys
    check_rows(keys, table.column("blob").to_pylist(), table.column("status").to_pylist())


def test_enrich_batches_accepts_a_table_and_a_scanner(store):
    table = pa.table({"sha1": MIXED_KEYS})
    by_table = enrich_batches(table, store, batch_size=2).read_all()
    by_scanner = enrich_batches(ds.dataset(table).scanner(batch_size=3), store).read_all()
    for out in (by_table, by_scanner):
        check_rows(MIXED_KEYS, out.column("blob").to_pylist())


def test_empty_inputs(store):
    schema = pa.schema([("sha1", pa.string())])
    assert enrich_batches([], store, schema=schema).read_all().schema.names == ["sha1", "blob"]
    empty_batches = [pa.record_batch({"sha1": pa.array([], pa.string())})] * 3
    out = list(enrich_batches(empty_batches, store))
    assert [b.num_rows for b in out] == [0, 0, 0]
    with pytest.raises(ValueError, match="schema="):
        enrich_batches(iter([]), store)


def test_enrich_batches_reads_its_input_lazily(store):
    pulled = [0]

    def source():
        for i in range(10_000):
            pulled[0] += 1
            yield pa.record_batch({"sha1": [SHAS[i % len(SHAS)]] * 10})

    reader = enrich_batches(source(), store, max_workers=2)
    first = reader.read_next_batch()
    assert first.column("blob").to_pylist() == [BLOBS[0]] * 10
    assert pulled[0] < 10  # the engine's window is a few dozen keys, not the whole input
    reader.close()


def test_parquet_in_parquet_out_round_trip(store, tmp_path):
    keys = (MIXED_KEYS + SHAS) * 5
    pq.write_table(pa.table({"sha1": keys, "i": range(len(keys))}), tmp_path / "in.parquet", row_group_size=7)
    reader = enrich_batches(ds.dataset(tmp_path / "in.parquet"), store, status_column="status", batch_size=8)
    with pq.ParquetWriter(tmp_path / "out.parquet", reader.schema) as writer:
        for batch in reader:
            writer.write_batch(batch)
    back = pq.read_table(tmp_path / "out.parquet")
    assert back.schema.field("blob").type == pa.large_binary()
    assert back.column("i").to_pylist() == list(range(len(keys)))
    check_rows(keys, back.column("blob").to_pylist(), back.column("status").to_pylist())


def test_streaming_memory_stays_bounded_over_a_dataset_larger_than_the_budget():
    """64 MiB of blobs from a Parquet dataset through a 2 MiB budget, measured in a fresh process by the
    benchmark (tracemalloc peak + Arrow pool peak + peak RSS growth): the peak stays far below the data."""
    command = [sys.executable, "benchmarks/arrow_memory.py", "--json", "--budget-mib", "2", "--factor", "32",
               "--blob-kib", "32", "--batch-rows", "32", "--workers", "4"]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    figures = json.loads(run.stdout)
    data = figures["blob_bytes"]
    assert figures["rows"] == 2048 and data == 2048 * (32 * 1024 // 40) * 40  # every blob went through
    assert figures["python_peak"] + figures["arrow_peak"] < data / 4, figures
    assert figures["rss_growth"] < data * 3 / 4, figures


def test_enrich_table_cuts_its_new_columns_into_chunks_by_bytes(monkeypatch):
    """Blobs are copied into the table a chunk at a time (so they are freed while later ones are fetched):
    each chunk of the new columns ends once it holds ``_CHUNK_BYTES``, a blob of ``_OWN_CHUNK_BYTES`` or more
    is a chunk of its own, and the new columns stay row-aligned."""
    import bitstore.integrations.arrow as arrow_module

    monkeypatch.setattr(arrow_module, "_CHUNK_BYTES", 5_000)
    monkeypatch.setattr(arrow_module, "_OWN_CHUNK_BYTES", 60_000)  # only BLOBS[4] (70,000 bytes) is that large
    keys = [SHAS[3], None, SHAS[1], SHAS[4], ABSENT[0], SHAS[3], SHAS[3], SHAS[0], SHAS[2], SHAS[4], SHAS[4]] * 3
    out = enrich_table(pa.table({"sha1": keys}), memory_store(), status_column="status", max_workers=3)
    blob, status = out.column("blob"), out.column("status")
    check_rows(keys, blob.to_pylist(), status.to_pylist())
    lengths = [len(c) for c in blob.chunks]
    assert lengths == [len(c) for c in status.chunks] and sum(lengths) == len(keys)
    chunks = [c.to_pylist() for c in blob.chunks]
    assert chunks.count([BLOBS[4]]) == keys.count(SHAS[4])  # each large blob alone
    small = [c for c in chunks if c != [BLOBS[4]]]
    assert all(BLOBS[4] not in c for c in small)
    sizes = [sum(len(b) for b in c if b is not None) for c in small]
    for chunk, size in zip(small, sizes):  # a chunk ends at the row that reaches the bound, or before a large blob
        last = chunk[-1]
        assert size - (len(last) if last is not None else 0) < 5_000
    assert len(small) > 3, sizes


def test_enrich_table_wraps_a_large_blob_without_copying_it():
    big = bytes(range(256)) * 8192  # 2 MiB
    raw = MemoryRaw()
    tier = Sha1Store(raw, "mem://b/")
    tier.put(sha1_hex(big), big)
    served = tier.get(sha1_hex(big))
    store = Sha1Composite()
    store.append_source(tier)
    out = enrich_table(pa.table({"sha1": [SHAS[1], sha1_hex(big), SHAS[2]]}), store)
    chunks = out.column("blob").chunks
    assert [c.to_pylist() for c in chunks] == [[None], [big], [None]]
    assert chunks[1].buffers()[2].address == pa.py_buffer(served).address


class ViewTier(Store):
    """A user store that answers with read-only views of its blobs (as the fast transport does for large
    bodies), or with views of a ``bytearray`` it may change later."""

    def __init__(self, blobs: dict[str, bytes | bytearray]):
        self.blobs = blobs

    def is_valid(self, uri):
        return uri in self.blobs or isinstance(uri, str)

    def get(self, uri):
        if uri not in self.blobs:
            raise NotFoundInStore(self, uri)
        return memoryview(self.blobs[uri])


class RecordingCache(Store):
    def __init__(self):
        self.puts = {}

    def is_valid(self, uri):
        return isinstance(uri, str)

    def get(self, uri):
        raise NotFoundInStore(self, uri)

    def put(self, uri, data):
        self.puts[uri] = data


def test_enrich_table_wraps_a_view_from_a_tier_without_copying_it_but_get_many_returns_bytes():
    big = bytes(range(256)) * 8192  # 2 MiB
    tier = ViewTier({sha1_hex(big): big})
    store = Sha1Composite()
    store.append_source(tier)
    out = enrich_table(pa.table({"sha1": [sha1_hex(big)]}), store)
    assert out.column("blob").to_pylist() == [big]
    assert out.column("blob").chunks[0].buffers()[2].address == pa.py_buffer(big).address
    [result] = store.get_many([sha1_hex(big)])
    assert type(result.data) is bytes and result.data == big  # views never leave the Arrow adapter
    assert type(store.get(sha1_hex(big))) is bytes
    assert type(tier.fetch(sha1_hex(big)).data) is bytes


def test_get_many_hands_out_views_only_when_asked():
    big = bytes(range(256)) * 4096  # 1 MiB
    store = Sha1Composite()
    store.append_source(ViewTier({sha1_hex(big): big, SHAS[2]: BLOBS[2]}))
    keys = [sha1_hex(big), SHAS[2], ABSENT[0]]
    lent = list(store.get_many(keys, views=True))
    assert [r.status for r in lent] == ["found", "found", "missing"]
    assert type(lent[0].data) is memoryview and lent[0].data.readonly and lent[0].data.obj is big
    assert bytes(lent[1].data) == BLOBS[2] and lent[2].data is None
    assert [type(r.data) for r in store.get_many(keys)] == [bytes, bytes, type(None)]


def test_a_view_of_a_writable_buffer_is_copied_so_later_changes_do_not_reach_the_table():
    data = bytearray(b"\x01" * (2 << 20))
    sha = sha1_hex(bytes(data))
    store = Sha1Composite()
    store.append_source(ViewTier({sha: data}))
    out = enrich_table(pa.table({"sha1": [sha]}), store)
    data[:4] = b"oops"
    assert out.column("blob").to_pylist() == [b"\x01" * (2 << 20)]


def test_write_back_hands_the_cache_bytes_when_a_source_answers_with_a_view():
    big = b"\x07" * (1 << 20)
    sha = sha1_hex(big)
    cache = RecordingCache()
    store = Sha1Composite()
    store.append_source(ViewTier({sha: big}), cache_result=True)
    store.append_cache(cache)
    out = enrich_table(pa.table({"sha1": [sha]}), store, status_column="status")
    assert out.column("status").to_pylist() == ["found"] and out.column("blob").to_pylist() == [big]
    assert list(cache.puts) == [sha] and type(cache.puts[sha]) is bytes and cache.puts[sha] == big


def test_enrich_table_holds_the_table_plus_one_chunk_not_every_blob_twice():
    """Peak Python memory of enrich_table over 128 MiB of freshly fetched blobs, in a fresh process: the table
    plus about one chunk, not the fetched blobs and the table both (which would be twice the data)."""
    code = textwrap.dedent("""
        import tracemalloc, pyarrow as pa
        from bitstore import Store
        from bitstore.arrow import enrich_table

        class Fresh(Store):
            def is_valid(self, uri):
                return isinstance(uri, str)

            def get(self, uri):
                return bytes(1 << 20)

        table = pa.table({"sha1": [f"k{i}" for i in range(128)]})
        tracemalloc.start()
        out = enrich_table(table, Fresh(), max_workers=4, max_bytes_in_flight=4 << 20)
        _, peak = tracemalloc.get_traced_memory()
        assert out.column("blob").null_count == 0
        print(peak, out.column("blob").nbytes)
    """)
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    peak, data = map(int, run.stdout.split())
    assert data >= 128 << 20
    assert peak < data * 3 / 2, (peak, data)


# --- errors ----------------------------------------------------------------------------------------
def test_missing_key_column_names_it_and_the_available_ones(store):
    table = pa.table({"hash": [SHAS[0]], "n": [1]})
    with pytest.raises(KeyError) as info:
        enrich_table(table, store)
    assert isinstance(info.value, MissingColumn) and isinstance(info.value, ColumnError)
    assert str(info.value) == "key column 'sha1' not found; available columns: 'hash', 'n'"
    with pytest.raises(MissingColumn, match="'hash'"):
        enrich_batches([table.to_batches()[0]], store)


@pytest.mark.parametrize("values", [pa.array([1, 2]), pa.array([b"a", b"b"]), pa.array([1, 2]).dictionary_encode()])
def test_non_string_key_column_is_a_type_error(store, values):
    with pytest.raises(TypeError) as info:
        enrich_table(pa.table({"sha1": values, "other": [0, 0]}), store)
    assert isinstance(info.value, ColumnTypeError)
    assert "'sha1'" in str(info.value) and str(values.type) in str(info.value) and "'other'" in str(info.value)


@pytest.mark.parametrize("options", [
    {"blob_column": "sha1"},
    {"blob_column": "data"},
    {"status_column": "blob"},
    {"status_column": "s", "source_column": "s"},
    {"source_column": "data"},
])
def test_output_column_collisions(store, options):
    table = pa.table({"sha1": [SHAS[0]], "data": [1]})
    with pytest.raises(ValueError) as info:
        enrich_table(table, store, **options)
    assert isinstance(info.value, ColumnExists) and "collides" in str(info.value)
    with pytest.raises(ColumnExists):
        enrich_batches(table, store, **options)


def test_bad_inputs(store):
    with pytest.raises(TypeError, match="RecordBatchReader"):
        enrich_batches(42, store)
    with pytest.raises(TypeError, match="not a pyarrow.RecordBatch"):
        enrich_batches([{"sha1": "x"}], store)
    with pytest.raises(TypeError, match="Store"):
        enrich_table(pa.table({"sha1": ["x"]}), {"not": "a store"})
    with pytest.raises(TypeError, match="pyarrow.Table"):
        enrich_table([pa.record_batch({"sha1": ["x"]})], store)
    with pytest.raises(ValueError, match="max_workers"):
        enrich_batches(pa.table({"sha1": ["x"]}), store, max_workers=0)
    other = pa.record_batch({"sha1": [SHAS[0]], "extra": [1]})
    reader = enrich_batches([pa.record_batch({"sha1": [SHAS[0]]}), other], store)
    with pytest.raises(TypeError, match="batch 1 has schema"):
        reader.read_all()


def test_column_errors_pickle_with_their_message():
    for error in (MissingColumn("k", ["a"]), ColumnTypeError("k", "int64", ["k"]), ColumnExists("b", "x", ["b"])):
        back = pickle.loads(pickle.dumps(error))
        assert type(back) is type(error) and str(back) == str(error)


# --- hypothesis ---------------------------------------------------------------------------------------
key_strategy = st.one_of(
    st.sampled_from(SHAS + ABSENT),
    st.sampled_from(SHAS).map(str.upper),
    st.sampled_from(SHAS).map(lambda s: f"SHA1://{s}"),
    st.none(),
    st.text(max_size=45),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(keys=st.lists(key_strategy, max_size=40), cuts=st.lists(st.integers(0, 40), max_size=4),
       kind=st.sampled_from(sorted(KEY_TYPES)), workers=st.integers(1, 8))
def test_hypothesis_tables(keys, cuts, kind, workers):
    store = memory_store()
    bounds = sorted({0, len(keys), *(c for c in cuts if c <= len(keys))})
    chunks = [KEY_TYPES[kind](keys[a:b]) for a, b in zip(bounds, bounds[1:])]
    column = pa.chunked_array(chunks, type=KEY_TYPES[kind](["x"]).type)
    table = pa.table({"sha1": column})
    out = enrich_table(table, store, status_column="status", max_workers=workers)
    assert out.column("sha1").equals(column)
    check_rows(keys, out.column("blob").to_pylist(), out.column("status").to_pylist())
    streamed = enrich_batches(table.to_batches(), store, max_workers=workers, schema=table.schema).read_all()
    assert streamed.column("blob").to_pylist() == out.column("blob").to_pylist()


# --- packaging ---------------------------------------------------------------------------------
def test_import_bitstore_does_not_import_pyarrow():
    code = "import sys, bitstore; bitstore.Store; assert 'pyarrow' not in sys.modules, 'pyarrow imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_bitstore_arrow_without_pyarrow_names_the_extra():
    code = (
        "import sys; sys.modules['pyarrow'] = None\n"
        "try:\n    import bitstore.arrow\nexcept ImportError as e:\n    print(e)\nelse:\n    print('imported')"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, capture_output=True, text=True)
    assert "pip install 'bitstore-tiered[arrow]'" in out.stdout


def test_sha256_keys_fill_the_sha256_column_by_default():
    """A SHA-256 store: the key column defaults to ``sha256``; a SHA1 there is ``invalid``, never ``missing``."""
    import hashlib

    from bitstore import Sha256Composite, Sha256Store

    data = {hashlib.sha256(b"%d" % i).hexdigest(): b"%d" % i for i in range(5)}
    raw = MemoryRaw()
    for key, blob in data.items():
        raw.put(f"mem://s256/{key}", blob)
    store = Sha256Composite().append_source(Sha256Store(raw, "mem://s256/", verify=True))
    first = next(iter(data))
    keys = [*data, "sha256://" + first.upper(), hashlib.sha1(b"0").hexdigest(), hashlib.sha256(b"no").hexdigest()]
    out = enrich_table(pa.table({"sha256": keys}), store, status_column="status")
    assert out.column_names == ["sha256", "blob", "status"]
    assert out.column("status").to_pylist() == ["found"] * 6 + ["invalid", "missing"]
    assert out.column("blob").to_pylist() == [*data.values(), data[first], None, None]
    with pytest.raises(MissingColumn):
        enrich_table(pa.table({"sha1": keys}), store)
    assert enrich_table(pa.table({"k": keys}), store, key_column="k").column("blob").to_pylist()[0] == data[first]
