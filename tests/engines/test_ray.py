"""bitstore.ray.enrich_dataset on a real local Ray cluster (2 CPUs, actors of half a CPU in their own processes):
every row and column kept, local and S3 (moto) tiers, a failing tier, one store per actor process, and the
checks made on the driver before any job runs."""
from __future__ import annotations

import os
from collections import Counter, defaultdict

import pyarrow as pa
import pytest

from bitstore.arrow import ColumnExists, ColumnTypeError, MissingColumn

from .stores import ProcessStore, blobs, failing_spec, local_spec, s3_spec, sha1, write_local

pytest.importorskip("ray")
from bitstore.ray import enrich_dataset  # noqa: E402


def _dataset(ray, keys, blocks=3):
    n = len(keys)
    table = pa.table({"id": pa.array(range(n), pa.int64()), "sha1": pa.array(keys, pa.string()),
                      "tag": [f"t{i % 7}" for i in range(n)], "score": [i / 4 for i in range(n)]})
    step = -(-n // blocks) or 1
    return ray.data.from_arrow([table.slice(o, step) for o in range(0, max(n, 1), step)])


def _by_id(ds) -> dict[int, dict]:
    out = {}
    for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
        for row in batch.to_pylist():
            assert row["id"] not in out, "a row came out twice"
            out[row["id"]] = row
    return out


def test_every_row_and_column_kept_with_blob_status_and_source(ray_cluster, tmp_path):
    found = blobs(1500)
    write_local(tmp_path / "disk", found)
    keys = [*found, sha1(b"absent 1"), "SHA1://" + next(iter(found)).upper(), "not a sha1", None]
    out = enrich_dataset(_dataset(ray_cluster, keys), local_spec(tmp_path / "disk"), status_column="status",
                         source_column="source", max_workers=8, batch_size=200)
    rows = _by_id(out)
    assert sorted(rows) == list(range(len(keys)))
    assert list(rows[0]) == ["id", "sha1", "tag", "score", "blob", "status", "source"]
    for i, key in enumerate(keys):
        row = rows[i]
        assert (row["sha1"], row["tag"], row["score"]) == (key, f"t{i % 7}", i / 4)
        if i < len(found):
            assert (row["blob"], row["status"], row["source"]) == (found[key], "found", "disk")
    assert [rows[len(found) + j]["status"] for j in range(4)] == ["missing", "found", "invalid", "invalid"]
    assert out.schema().base_schema.field("blob").type == pa.large_binary()


def test_s3_through_moto_with_credentials_resolved_on_the_workers(ray_cluster, s3):
    stored = blobs(400, seed=1)
    s3.create_bucket("engines")
    for key, data in stored.items():
        s3.put("engines", f"blobs/{key}", data)
    absent = [sha1(f"absent {i}".encode()) for i in range(50)]
    out = enrich_dataset(_dataset(ray_cluster, [*stored, *absent], blocks=4), s3_spec(s3.endpoint_url, "engines"),
                         status_column="status", source_column="source", max_workers=16)
    rows = _by_id(out)
    assert len(rows) == len(stored) + len(absent)
    got = {r["sha1"]: r for r in rows.values()}
    assert all(got[k]["blob"] == v and got[k]["source"] == "moto" for k, v in stored.items())
    assert Counter(got[k]["status"] for k in absent) == {"missing": len(absent)}


def test_a_failing_tier_accounts_for_every_input_once(ray_cluster, tmp_path):
    present = blobs(300, seed=2)
    write_local(tmp_path / "disk", present)
    elsewhere = [sha1(f"only elsewhere {i}".encode()) for i in range(200)]
    keys = [*present, *elsewhere, "junk"]
    out = enrich_dataset(_dataset(ray_cluster, keys, blocks=4), failing_spec(tmp_path / "disk"),
                         status_column="status", error_column="error", max_workers=16)
    rows = _by_id(out)
    assert sorted(rows) == list(range(len(keys)))
    statuses = Counter(r["status"] for r in rows.values())
    assert statuses == {"found": len(present), "failed": len(elsewhere), "invalid": 1}
    assert all("dead-s3" in r["error"] and r["blob"] is None for r in rows.values() if r["status"] == "failed")


def test_the_store_is_built_once_per_actor_process(ray_cluster):
    out = enrich_dataset(_dataset(ray_cluster, [f"k{i}" for i in range(2000)], blocks=8), ProcessStore(),
                         batch_size=100)
    served = Counter(row["blob"].decode() for row in _by_id(out).values())
    stores_by_pid = defaultdict(set)
    for served_by in served:
        pid, store_id = served_by.split(":")
        stores_by_pid[int(pid)].add(store_id)
    assert sum(served.values()) == 2000
    assert os.getpid() not in stores_by_pid, "blobs were fetched in the driver, not in Ray's actors"
    assert all(len(ids) == 1 for ids in stores_by_pid.values()), stores_by_pid  # 20 batches, one store per actor


def test_bad_options_fail_on_the_driver_with_typed_errors(ray_cluster, tmp_path):
    spec = local_spec(tmp_path)
    numbers = ray_cluster.data.from_arrow(pa.table({"sha1": [1, 2], "other": [3, 4]}))
    with pytest.raises(ColumnTypeError, match="'sha1' has type int64; expected string"):
        enrich_dataset(numbers, spec)
    with pytest.raises(MissingColumn, match="'key' not found"):
        enrich_dataset(numbers, spec, key_column="key")
    strings = ray_cluster.data.from_arrow(pa.table({"sha1": ["a"], "other": [3]}))
    with pytest.raises(ColumnExists, match="status_column='other'"):
        enrich_dataset(strings, spec, status_column="other")
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        enrich_dataset(strings, spec, batch_size=0)


def test_the_cluster_stays_on_loopback(ray_cluster):
    assert {node["NodeManagerAddress"] for node in ray_cluster.nodes()} == {"127.0.0.1"}
    assert ray_cluster.cluster_resources()["CPU"] == 2



def test_ray_data_rereads_the_cpus_often_enough_for_tasks_to_start_together(ray_cluster, tmp_path):
    """Ray Data's first read of the cluster's CPUs in every job comes back empty: until it reads again only one
    task runs. ``enrich_dataset`` has it read every 0.1 s, not every second; a shorter interval is kept."""
    from ray.data._internal.execution.resource_manager import ResourceManager

    from bitstore.integrations.ray import RESOURCE_REFRESH_S

    ds = ray_cluster.data.from_arrow(pa.table({"sha1": ["a"]}))
    try:
        ResourceManager.GLOBAL_LIMITS_UPDATE_INTERVAL_S = 1  # Ray's default
        enrich_dataset(ds, local_spec(tmp_path))
        assert ResourceManager.GLOBAL_LIMITS_UPDATE_INTERVAL_S == RESOURCE_REFRESH_S == 0.1
        ResourceManager.GLOBAL_LIMITS_UPDATE_INTERVAL_S = 0.01
        enrich_dataset(ds, local_spec(tmp_path))
        assert ResourceManager.GLOBAL_LIMITS_UPDATE_INTERVAL_S == 0.01
    finally:
        ResourceManager.GLOBAL_LIMITS_UPDATE_INTERVAL_S = RESOURCE_REFRESH_S
