"""``bitstore fetch --engine spark|ray|beam`` writes the file ``--engine local`` writes (Spark and Ray: the same
rows in the same order; Beam: the same rows in any order), and reports the same counts and exit code."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bitstore.cli import main

from .stores import KEY_ID_VAR, SECRET_VAR, blobs, failing_spec, sha1, write_local


@pytest.fixture
def job(tmp_path):
    """A TOML spec over a local tier and a dead S3 tier, and keys that are found, failed (the dead tier fails every
    key it is asked for: none is missing), invalid, upper-case ``sha1://``, and a blank line."""
    found = blobs(120, seed=3)
    write_local(tmp_path / "disk", found)
    spec = failing_spec(tmp_path / "disk")
    local, dead = spec["tier"]
    retry = ", ".join(f"{k} = {v}" for k, v in spec["retry"].items())
    creds = ", ".join(f'{k} = "{v}"' for k, v in dead["credentials_env"].items())
    (tmp_path / "spec.toml").write_text(f"""keys = "sha1"
retry = {{ {retry} }}
[[tier]]
type = "local"
name = "disk"
prefix = "{local['prefix']}"
[[tier]]
type = "s3"
name = "dead-s3"
prefix = "{dead['prefix']}"
endpoint_url = "{dead['endpoint_url']}"
credentials_env = {{ {creds} }}
""")
    keys = [*found, sha1(b"nowhere 1"), "not a sha1", "", "SHA1://" + next(iter(found)).upper(), sha1(b"nowhere 2")]
    (tmp_path / "keys.txt").write_text("\n".join(keys) + "\n")
    return tmp_path


def _fetch(job, engine: str, keys: str = "keys.txt", *extra: str) -> tuple[int, pa.Table]:
    out = job / f"out-{engine}.parquet"
    code = main(["fetch", "--spec", str(job / "spec.toml"), "-i", str(job / keys), "-o", str(out),
                 "--engine", engine, "--max-workers", "8", *extra])
    return code, pq.read_table(out)


def _sorted(table: pa.Table) -> list[dict]:
    return sorted(table.to_pylist(), key=lambda r: (r["sha1"] or "", r["status"]))


@pytest.mark.parametrize("engine", ["spark", "ray", "beam"])
def test_the_engine_writes_what_local_writes(engine, job, request, capsys, monkeypatch):
    monkeypatch.setenv(KEY_ID_VAR, "testing")  # for the local run and Beam's workers; Spark's and Ray's have theirs
    monkeypatch.setenv(SECRET_VAR, "testing")
    if engine != "beam":
        request.getfixturevalue({"spark": "spark", "ray": "ray_cluster"}[engine])
    local_code, local = _fetch(job, "local")
    local_err = capsys.readouterr().err
    code, table = _fetch(job, engine)
    err = capsys.readouterr().err
    assert local_code == code == 3  # some keys failed
    assert local.num_rows == 124 and table.schema == local.schema  # the blank line is no key
    assert sorted(local["status"].to_pylist()) == sorted(["found"] * 121 + ["failed"] * 2 + ["invalid"])
    if engine == "beam":
        assert _sorted(table) == _sorted(local)
    else:
        assert table.equals(local)
        assert "found 121, missing 0, invalid 1, failed 2" in err
        causes = [[line for line in text.splitlines() if line.lstrip().startswith("failed: ")]
                  for text in (local_err, err)]
        assert causes[0] == causes[1] and len(causes[1]) == 1 and "dead-s3" in causes[1][0]  # keys masked, grouped


@pytest.mark.parametrize("engine", ["local", "spark", "ray"])
def test_a_key_column_that_is_not_strings_is_refused_before_any_engine_starts(engine, job, capsys):
    pq.write_table(pa.table({"sha1": pa.array([42, None, 7], pa.int64())}), job / "ints.parquet")
    assert main(["fetch", "-i", str(job / "ints.parquet"), "-o", str(job / "out.parquet"), "--engine", engine]) == 2
    assert "not strings" in capsys.readouterr().err and not (job / "out.parquet").exists()


def test_no_keys_start_no_engine(job, capsys):
    (job / "empty.txt").write_text("")
    code, table = _fetch(job, "spark", "empty.txt")
    assert code == 0 and table.num_rows == 0
    assert "0 keys" in capsys.readouterr().err


def test_beam_reads_files_not_stdin(job, capsys):
    assert main(["fetch", "-i", "-", "-o", str(job / "x.parquet"), "--engine", "beam"]) == 2
    assert "--engine beam reads its keys from a file" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--engine", "ray", "--spark-conf", "spark.driver.memory=2g"], "--spark-conf is for --engine spark"),
    (["--engine", "beam", "--spark-conf", "a=b"], "--spark-conf is for --engine spark"),
    (["--engine", "spark", "--spark-conf", "no-equals-sign"], "expected KEY=VALUE"),
])
def test_spark_conf_is_for_spark_and_key_value(job, capsys, args, message):
    assert main(["fetch", "-i", str(job / "keys.txt"), "-o", str(job / "o.parquet"), *args]) == 2
    assert message in capsys.readouterr().err
    assert not (job / "o.parquet").exists()


def test_a_local_spark_session_for_the_job_gets_the_small_jvm_conf_with_the_users_over_it(monkeypatch):
    from pyspark.sql import SparkSession

    from bitstore.integrations import spark

    seen, stopped = [], []

    class Session:
        class sparkContext:  # noqa: N801 - the attribute Spark's session has
            defaultParallelism = 3

        def stop(self):
            stopped.append(True)

    def local_session(conf=None):
        seen.append(conf)
        return Session()

    monkeypatch.setattr(SparkSession, "getActiveSession", staticmethod(lambda: None))
    monkeypatch.setattr(spark, "local_session", local_session)
    with spark.fetch_job({"keys": "sha1"}, spark_conf={"spark.driver.memory": "2g", "spark.x": "y"}) as job:
        assert job.parallelism == 3
    assert seen == [{**spark.FETCH_JOB_CONF, "spark.driver.memory": "2g", "spark.x": "y"}]
    assert spark.FETCH_JOB_CONF["spark.driver.memory"] == "512m" and stopped == [True]
