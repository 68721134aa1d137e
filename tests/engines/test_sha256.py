"""SHA-256 keys on the other engines: Spark (``enrich_dataframe``) and Ray (``enrich_dataset``) read the ``sha256``
column by default for a ``keys = "sha256"`` spec, fetch by SHA-256 and answer a SHA1 ``invalid``; and
``bitstore fetch --engine spark`` writes the same ``sha256`` output table as the local job."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa
import pytest

from .stores import write_local


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _world(root: Path) -> tuple[dict, list, list, dict]:
    """A ``keys = "sha256"`` spec over a local tier of 40 blobs; the keys asked, the
    expected statuses and the blobs."""
    found = {sha256(b"blob %d" % i): b"blob %d" % i * (i + 1) for i in range(40)}
    found = {sha256(data): data for data in found.values()}
    write_local(root, found)
    first = next(iter(found))
    keys = [*found, "SHA256://" + first.upper(), hashlib.sha1(found[first]).hexdigest(), sha256(b"absent"), None]
    statuses = ["found"] * (len(found) + 1) + ["invalid", "missing", "invalid"]
    spec = {"keys": "sha256", "tier": [{"type": "local", "prefix": f"{root}/", "name": "disk"}]}
    return spec, keys, statuses, found


def _check(rows: list[dict], keys: list, statuses: list, found: dict) -> None:
    assert [r["sha256"] for r in rows] == keys
    assert [r["status"] for r in rows] == statuses
    for row in rows:
        canonical = row["sha256"].lower().removeprefix("sha256://") if row["status"] == "found" else None
        assert (None if row["blob"] is None else bytes(row["blob"])) == found.get(canonical)


def test_spark_enriches_a_sha256_column(spark, tmp_path):
    pytest.importorskip("pyspark")
    from bitstore.spark import enrich_dataframe

    spec, keys, statuses, found = _world(tmp_path / "disk")
    df = spark.createDataFrame([(i, k) for i, k in enumerate(keys)], "id long, sha256 string").repartition(2)
    out = enrich_dataframe(df, spec, status_column="status", max_workers=4, batch_size=16)
    assert out.columns == ["id", "sha256", "blob", "status"]
    rows = sorted((r.asDict() for r in out.collect()), key=lambda r: r["id"])
    _check(rows, keys, statuses, found)


def test_ray_enriches_a_sha256_column(ray_cluster, tmp_path):
    from bitstore.ray import enrich_dataset

    spec, keys, statuses, found = _world(tmp_path / "disk")
    table = pa.table({"id": list(range(len(keys))), "sha256": pa.array(keys, pa.string())})
    ds = ray_cluster.data.from_arrow([table.slice(0, 20), table.slice(20)])
    out = enrich_dataset(ds, spec, status_column="status", max_workers=4, batch_size=16)
    rows = sorted(out.take_all(), key=lambda r: r["id"])
    _check(rows, keys, statuses, found)
