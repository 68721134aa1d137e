"""bitstore.spark.enrich_dataframe on a real local[2] Spark (executors' Python workers are separate processes):
every row and column kept, local and S3 (moto) tiers, a failing tier, one store per worker process, and the
checks made on the driver before any job runs."""
from __future__ import annotations

import os
from collections import Counter, defaultdict

import pytest

from bitstore.arrow import ColumnError, ColumnExists, ColumnTypeError, MissingColumn

from .stores import ProcessStore, blobs, failing_spec, local_spec, s3_spec, sha1, write_local

pytest.importorskip("pyspark")
from bitstore.spark import JavaNotFound, check_java, enrich_dataframe  # noqa: E402

SCHEMA = "id long, sha1 string, tag string, score double"


def _rows(spark, keys, partitions=3):
    data = [(i, key, f"t{i % 7}", i / 4) for i, key in enumerate(keys)]
    return spark.createDataFrame(data, SCHEMA).repartition(partitions)


def _by_id(df) -> dict[int, dict]:
    out = {}
    for row in df.collect():
        assert row["id"] not in out, "a row came out twice"
        out[row["id"]] = row.asDict()
    return out


def test_every_row_and_column_kept_with_blob_status_and_source(spark, tmp_path):
    found = blobs(1500)
    write_local(tmp_path / "disk", found)
    keys = [*found, sha1(b"absent 1"), "SHA1://" + next(iter(found)).upper(), "not a sha1", None]
    out = enrich_dataframe(_rows(spark, keys), local_spec(tmp_path / "disk"), status_column="status",
                           source_column="source", max_workers=8, batch_size=200)
    assert out.columns == ["id", "sha1", "tag", "score", "blob", "status", "source"]
    assert [f.dataType.simpleString() for f in out.schema.fields[-3:]] == ["binary", "string", "string"]
    rows = _by_id(out)
    assert sorted(rows) == list(range(len(keys)))
    for i, key in enumerate(keys):
        row = rows[i]
        assert (row["sha1"], row["tag"], row["score"]) == (key, f"t{i % 7}", i / 4)
        if i < len(found):
            assert (bytes(row["blob"]), row["status"], row["source"]) == (found[key], "found", "disk")
    assert [rows[len(found) + j]["status"] for j in range(4)] == ["missing", "found", "invalid", "invalid"]
    assert bytes(rows[len(found) + 1]["blob"]) == next(iter(found.values()))
    assert rows[len(keys) - 1]["blob"] is None and rows[len(keys) - 1]["source"] is None


def test_s3_through_moto_with_credentials_resolved_on_the_workers(spark, s3):
    stored = blobs(400, seed=1)
    s3.create_bucket("engines")
    for key, data in stored.items():
        s3.put("engines", f"blobs/{key}", data)
    absent = [sha1(f"absent {i}".encode()) for i in range(50)]
    out = enrich_dataframe(_rows(spark, [*stored, *absent], partitions=4), s3_spec(s3.endpoint_url, "engines"),
                           status_column="status", source_column="source", max_workers=16)
    rows = _by_id(out)
    assert len(rows) == len(stored) + len(absent)
    got = {r["sha1"]: r for r in rows.values()}
    assert all(bytes(got[k]["blob"]) == v and got[k]["source"] == "moto" for k, v in stored.items())
    assert Counter(got[k]["status"] for k in absent) == {"missing": len(absent)}


def test_a_failing_tier_accounts_for_every_input_once(spark, tmp_path):
    present = blobs(300, seed=2)
    write_local(tmp_path / "disk", present)
    elsewhere = [sha1(f"only elsewhere {i}".encode()) for i in range(200)]
    keys = [*present, *elsewhere, "junk"]
    out = enrich_dataframe(_rows(spark, keys, partitions=4), failing_spec(tmp_path / "disk"),
                           status_column="status", source_column="source", error_column="error", max_workers=16)
    rows = _by_id(out)
    assert sorted(rows) == list(range(len(keys)))
    statuses = Counter(r["status"] for r in rows.values())
    assert statuses == {"found": len(present), "failed": len(elsewhere), "invalid": 1}
    for row in rows.values():
        if row["status"] == "failed":
            assert row["blob"] is None and "dead-s3" in row["error"] and row["sha1"] in row["error"]
        elif row["status"] == "invalid":
            assert "'junk' is invalid" in row["error"]
        else:
            assert row["error"] is None


def test_the_store_is_built_once_per_worker_process(spark):
    out = enrich_dataframe(_rows(spark, [f"k{i}" for i in range(2000)], partitions=8), ProcessStore(),
                           status_column="status", batch_size=100)
    served = Counter(bytes(r["blob"]).decode() for r in out.select("blob").collect())
    stores_by_pid = defaultdict(set)
    for served_by in served:
        pid, store_id = served_by.split(":")
        stores_by_pid[int(pid)].add(store_id)
    assert sum(served.values()) == 2000
    assert os.getpid() not in stores_by_pid, "blobs were fetched in the driver, not in Spark's Python workers"
    assert all(len(ids) == 1 for ids in stores_by_pid.values()), stores_by_pid  # 8 tasks, one store per process


def test_empty_dataframe(spark, tmp_path):
    out = enrich_dataframe(spark.createDataFrame([], SCHEMA), local_spec(tmp_path), status_column="status")
    assert out.count() == 0 and out.columns[-2:] == ["blob", "status"]


def test_bad_options_fail_on_the_driver_with_typed_errors(spark, tmp_path):
    spec = local_spec(tmp_path)
    numbers = spark.createDataFrame([(1, 2)], "sha1 long, other long")
    with pytest.raises(ColumnTypeError, match="'sha1' has type bigint; expected string"):
        enrich_dataframe(numbers, spec)
    with pytest.raises(MissingColumn, match="'key' not found"):
        enrich_dataframe(numbers, spec, key_column="key")
    with pytest.raises(ColumnExists, match="blob_column='OTHER'"):  # Spark's names are case-insensitive
        enrich_dataframe(numbers.selectExpr("cast(sha1 as string) sha1", "other"), spec, blob_column="OTHER")
    with pytest.raises(ColumnError, match="status_column must be a non-empty string"):
        enrich_dataframe(numbers.selectExpr("cast(sha1 as string) sha1"), spec, status_column="")
    with pytest.raises(ValueError, match="max_workers must be a positive int"):
        enrich_dataframe(numbers, spec, max_workers=0)
    with pytest.raises(TypeError, match="store must be a spec"):
        enrich_dataframe(numbers.selectExpr("cast(sha1 as string) sha1"), 42)


def test_java_missing_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(JavaNotFound, match="apt-get install openjdk-17-jre-headless"):
        check_java()
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    with pytest.raises(JavaNotFound, match="JAVA_HOME=.* has no bin/java"):
        check_java()


def test_the_session_stays_on_loopback(spark):
    conf = spark.sparkContext.getConf()
    assert conf.get("spark.driver.host") == conf.get("spark.driver.bindAddress") == "127.0.0.1"
    assert conf.get("spark.ui.enabled") == "false"


def test_batches_are_cast_to_sparks_types_and_split_where_32_bit_offsets_would_overflow(monkeypatch):
    import pyarrow as pa

    import bitstore.integrations.spark as adapter

    blobs = [b"x" * 6, None, b"y" * 6, b"z" * 6, b""]
    batch = pa.record_batch({"sha1": ["a", "b", "c", "d", "e"], "blob": pa.array(blobs, pa.large_binary()),
                             "status": ["found", "missing", "found", "found", "found"]})
    monkeypatch.setattr(adapter, "_MAX_BINARY_BATCH_BYTES", 11)  # as if each blob were 1 GiB
    out = list(adapter._as_spark_types(batch, [pa.binary(), pa.string()]))
    assert [b.num_rows for b in out] == [2, 1, 2]  # halves until each fits: 18 -> 6 + 12 -> 6 + 6 + 6
    assert all(b.schema.field("blob").type == pa.binary() for b in out)
    assert pa.Table.from_batches(out).column("blob").to_pylist() == blobs
    whole = list(adapter._as_spark_types(batch, [pa.large_binary(), pa.large_string()]))  # large types: never split
    assert len(whole) == 1 and whole[0].schema.field("status").type == pa.large_string()
