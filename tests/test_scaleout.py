"""bitstore.integrations.scaleout, what the Spark and Ray adapters share, without an engine: the store recipe
(checked on the driver, one store per process and recipe), the options' checks,
and the re-batching of a task's stream."""
from __future__ import annotations

import pickle
import threading

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bitstore import MemoryRaw, Sha1Composite, Sha1Store, SpecError, sha1_hex
from bitstore.arrow import ColumnError, ColumnExists, MissingColumn
from bitstore.integrations.scaleout import EnrichOptions, StoreRecipe, enrich_stream, rebatched


def _spec(tmp_path, name="disk") -> dict:
    return {"keys": "sha1", "tier": [{"type": "local", "prefix": f"{tmp_path}/", "name": name}]}


def test_a_spec_is_checked_on_the_driver_and_built_once_per_process(tmp_path):
    with pytest.raises(SpecError):
        StoreRecipe({"keys": "sha1", "tier": [{"type": "nope"}]})
    recipe = StoreRecipe(_spec(tmp_path))
    again = pickle.loads(pickle.dumps(recipe))  # as a worker receives it, once per task
    assert again.token == recipe.token == StoreRecipe(_spec(tmp_path)).token
    assert StoreRecipe(_spec(tmp_path, name="other")).token != recipe.token
    built = []
    threads = [threading.Thread(target=lambda: built.append(again.store())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(store) for store in built}) == 1 and built[0] is recipe.store()


def test_a_store_travels_by_pickle_and_is_kept_per_process():
    store = Sha1Composite()
    store.append_source(Sha1Store(MemoryRaw(), "mem://x/", name="mem"))
    recipe = StoreRecipe(store)
    first, second = pickle.loads(pickle.dumps(recipe)), pickle.loads(pickle.dumps(recipe))
    assert first.store() is second.store()  # two unpickled copies, one store in this process
    assert repr(recipe) == "StoreRecipe(store='Sha1Composite')"


def test_a_store_that_does_not_pickle_or_anything_else_is_refused_on_the_driver():
    class Local(Sha1Composite):
        def __reduce__(self):
            raise TypeError("holds a lock")

    with pytest.raises(TypeError, match="does not pickle .*holds a lock.*pass a spec"):
        StoreRecipe(Local())
    with pytest.raises(TypeError, match="store must be a spec"):
        StoreRecipe(42)


def test_options_are_checked():
    with pytest.raises(ValueError, match="max_bytes_in_flight must be a positive int"):
        EnrichOptions(max_bytes_in_flight=0)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        EnrichOptions(batch_size=True)
    options = EnrichOptions(status_column="Status", error_column="why")
    assert options.new_columns == [("blob", "blob_column"), ("Status", "status_column"), ("why", "error_column")]
    options.check_names(["sha1", "status"])  # case-sensitive: no clash
    with pytest.raises(ColumnExists):
        options.check_names(["sha1", "status"], case_sensitive=False)
    with pytest.raises(MissingColumn):
        options.check_names(["SHA1"])
    with pytest.raises(ColumnError, match="blob_column must be a non-empty string"):
        EnrichOptions(blob_column="").check_names(["sha1"])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 40), max_size=8), st.integers(1, 17))
def test_rebatching_keeps_every_row_in_order(sizes, rows):
    counter = iter(range(10**6))
    batches = [pa.record_batch({"i": [next(counter) for _ in range(n)]}) for n in sizes]
    out = list(rebatched(batches, rows))
    assert all(0 < b.num_rows <= rows for b in out)
    assert [v for b in out for v in b.column(0).to_pylist()] == list(range(sum(sizes)))


def test_enrich_stream_fetches_a_task_in_this_processes_store(tmp_path):
    data = [b"one", b"two", b""]
    for blob in data:
        (tmp_path / sha1_hex(blob)).write_bytes(blob)
    keys = [sha1_hex(b) for b in data] + [sha1_hex(b"absent"), None]
    batch = pa.record_batch({"sha1": pa.array(keys, pa.string()), "n": list(range(5))})
    recipe = StoreRecipe(_spec(tmp_path))
    out = list(enrich_stream([batch], recipe, EnrichOptions(status_column="status", batch_size=2)))
    assert [b.num_rows for b in out] == [2, 2, 1]
    table = pa.Table.from_batches(out)
    assert table.column("blob").to_pylist() == [*data, None, None]
    assert table.column("status").to_pylist() == ["found"] * 3 + ["missing", "invalid"]
    assert table.column("n").to_pylist() == list(range(5))
    assert list(enrich_stream([], recipe, EnrichOptions())) == []
    assert recipe.store() is pickle.loads(pickle.dumps(recipe)).store()
