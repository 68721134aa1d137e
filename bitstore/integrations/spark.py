"""PySpark adapter: a DataFrame gains a blob column (and optional status/source columns), fetched on the executors.

``enrich_dataframe`` checks the options against the DataFrame's schema on the driver, then runs
``df.mapInArrow`` with a function (defined here, so executors import it rather than unpickle its code)
that feeds each task's Arrow batches through ``bitstore.arrow.enrich_batches``. Each executor's Python
worker process builds the store once (``bitstore.integrations.scaleout.StoreRecipe``) and shares it between tasks.

``pip install 'bitstore-tiered[spark]'`` (pyspark and pandas, which ``mapInArrow`` needs); Spark needs Java.
"""
from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any

try:
    import pyspark  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without pyspark
    raise ImportError("bitstore.spark needs pyspark and pandas: pip install 'bitstore-tiered[spark]'") from exc

from ..core.store import DEFAULT_MAX_BYTES_IN_FLIGHT
from ..ground.errors import BitstoreError
from .scaleout import (
    DEFAULT_BATCH_ROWS,
    EnrichOptions,
    StoreLike,
    StoreRecipe,
    default_key_column,
    enrich_stream,
)

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["enrich_dataframe", "local_session", "check_java", "JavaNotFound", "JAVA_INSTALL_HINT", "FETCH_JOB_CONF"]

JAVA_INSTALL_HINT = "apt-get install openjdk-17-jre-headless (or any Java 17+; set JAVA_HOME if it is not on PATH)"
#: The Spark configuration of the local session ``bitstore fetch --engine spark`` starts for itself (not of a
#: running session, nor of ``local_session``): a JVM sized for moving blobs, not for Spark SQL's joins. Spark's
#: default JVM (1 GiB heap, the parallel collector, a heap first sized to 1/64 of the machine's memory) peaked
#: over 1 GiB on a million keys; this one keeps the heap small (512 MiB at most, the least Spark accepts beside
#: its 300 MiB reserve; the serial collector; 32 MiB at start, a 24 MiB young generation, given back after a
#: collection leaves it mostly free), the JIT to its first tier, a smaller code cache and thread stacks. Any key
#: given to ``fetch_job(spark_conf=...)`` (``--spark-conf KEY=VALUE``) replaces the one here.
FETCH_JOB_CONF = {
    "spark.driver.memory": "512m",
    "spark.driver.extraJavaOptions": "-XX:+UseSerialGC -Xms32m -Xmn24m -XX:MinHeapFreeRatio=5 "
                                     "-XX:MaxHeapFreeRatio=20 -XX:TieredStopAtLevel=1 "
                                     "-XX:ReservedCodeCacheSize=32m -Xss512k",
}
#: The largest batch of a 32-bit-offset binary column Arrow can hold.
_MAX_BINARY_BATCH_BYTES = (1 << 31) - 1


class JavaNotFound(BitstoreError, RuntimeError):
    """Spark cannot start: no Java runtime on this machine."""


def check_java() -> str:
    """The path of the ``java`` Spark will run; raises ``JavaNotFound`` saying how to install one."""
    home = os.environ.get("JAVA_HOME")
    candidates = [os.path.join(home, "bin", "java")] if home else []
    candidates.append(shutil.which("java") or "")
    for path in candidates:
        if path and os.access(path, os.X_OK):
            return path
    where = f"JAVA_HOME={home!r} has no bin/java and " if home else ""
    raise JavaNotFound(f"Spark needs Java, but {where}no 'java' is on PATH: {JAVA_INSTALL_HINT}")


def local_session(master: str = "local[*]", *, app_name: str = "bitstore",
                  conf: dict[str, str] | None = None) -> SparkSession:
    """The active Spark session, else a new local one that stays on 127.0.0.1 (no UI, workers on this Python).

    Under ``spark-submit`` or on Databricks the session already exists and is returned as it is.
    """
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    check_java()
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # read by the JVM this call starts
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # workers run this Python, which has bitstore
    builder = (SparkSession.builder.master(master).appName(app_name)
               .config("spark.driver.host", "127.0.0.1")
               .config("spark.driver.bindAddress", "127.0.0.1")
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.log.level", "ERROR"))
    for key, value in (conf or {}).items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def enrich_dataframe(
    df: DataFrame,
    store: StoreLike,
    *,
    key_column: str | None = None,
    blob_column: str = "blob",
    status_column: str | None = None,
    source_column: str | None = None,
    error_column: str | None = None,
    max_workers: int = 64,
    max_bytes_in_flight: int = DEFAULT_MAX_BYTES_IN_FLIGHT,
    batch_size: int = DEFAULT_BATCH_ROWS,
) -> DataFrame:
    """``df`` with a binary blob column appended (null unless the key was found), and the optional status
    (``found | missing | invalid | failed``), source (tier name) and error (why there is no blob: missing,
    invalid or failed) string columns. Lazy, like any transformation.

    ``store`` is a spec (dict, TOML path or ``Spec``; environment references are resolved on the executors) or a
    picklable ``Store``. Every input row and column is kept; a null key is ``invalid``.
    ``key_column`` defaults to the store's key family: ``sha256`` for SHA-256 keys, else ``sha1``. Each task
    fetches with up to ``max_workers`` threads and ``max_bytes_in_flight`` bytes fetched and not yet handed to
    Spark, and hands its rows back ``batch_size`` at a time.
    """
    from pyspark import cloudpickle
    from pyspark.sql.pandas.types import to_arrow_schema
    from pyspark.sql.types import BinaryType, StringType, StructField, StructType

    options = EnrichOptions(default_key_column(key_column, store), blob_column, status_column, source_column,
                            error_column, max_workers, max_bytes_in_flight, batch_size)
    conf = df.sparkSession.conf
    options = replace(options, key_column=_key_field(df, options, conf.get("spark.sql.caseSensitive", "false")))
    recipe = StoreRecipe(store, dumps=cloudpickle.dumps)
    new = [StructField(name, BinaryType() if option == "blob_column" else StringType(), True)
           for name, option in options.new_columns]
    large = conf.get("spark.sql.execution.arrow.useLargeVarTypes", "false").lower() == "true"
    new_types = list(to_arrow_schema(StructType(new), prefers_large_types=large).types)
    return df.mapInArrow(_Enrich(recipe, options, new_types), StructType(df.schema.fields + new))


def _key_field(df: DataFrame, options: EnrichOptions, case_sensitive: str) -> str:
    """The key column's name as the DataFrame spells it, after checking every name and the key's type."""
    from pyspark.sql.types import CharType, NullType, StringType, VarcharType

    from .arrow import ColumnError, ColumnTypeError

    sensitive = case_sensitive.lower() == "true"
    options.check_names(df.columns, case_sensitive=sensitive)
    same = [f for f in df.schema.fields
            if (f.name == options.key_column if sensitive else f.name.lower() == options.key_column.lower())]
    if len(same) > 1:
        raise ColumnError(f"key column {options.key_column!r} appears {len(same)} times in the input")
    field = same[0]
    if not isinstance(field.dataType, (StringType, CharType, VarcharType, NullType)):
        raise ColumnTypeError(options.key_column, field.dataType.simpleString(), df.columns)
    return field.name


class _Enrich:
    """The ``mapInArrow`` function: one task's batches in, the same batches with the new columns out."""

    def __init__(self, recipe: StoreRecipe, options: EnrichOptions, new_types: list[pa.DataType]):
        self.recipe, self.options, self.new_types = recipe, options, new_types

    def __call__(self, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in enrich_stream(batches, self.recipe, self.options):
            yield from _as_spark_types(batch, self.new_types)


def _as_spark_types(batch: pa.RecordBatch, new_types: list[pa.DataType]) -> Iterator[pa.RecordBatch]:
    """``batch`` with its new (last) columns cast to the Arrow types Spark reads; a batch whose blobs exceed what
    32-bit offsets address is split first."""
    import pyarrow as pa
    import pyarrow.compute as pc

    first_new = batch.num_columns - len(new_types)
    blobs = batch.column(first_new)
    if (not pa.types.is_large_binary(new_types[0]) and batch.num_rows > 1
            and (pc.sum(pc.binary_length(blobs)).as_py() or 0) > _MAX_BINARY_BATCH_BYTES):
        half = batch.num_rows // 2
        yield from _as_spark_types(batch.slice(0, half), new_types)
        yield from _as_spark_types(batch.slice(half), new_types)
        return
    columns = batch.columns[:first_new] + [c.cast(t) for c, t in zip(batch.columns[first_new:], new_types)]
    fields = list(batch.schema)[:first_new] + [pa.field(f.name, t) for f, t in
                                               zip(list(batch.schema)[first_new:], new_types)]
    yield pa.RecordBatch.from_arrays(columns, schema=pa.schema(fields))



class _SparkJob:
    """``bitstore fetch --engine spark``, one window of partitions at a time (``fetchjob.fetch_on_engine``)."""

    def __init__(self, spark: SparkSession, spec: StoreLike, fetch_options: dict[str, Any]):
        self.spark, self.spec, self.fetch_options = spark, spec, fetch_options
        self.parallelism = max(1, int(spark.sparkContext.defaultParallelism))

    def run(self, partitions: list[pa.Table]) -> pa.Table:
        """The partitions' keys (``sha1``; one Spark partition each) enriched on the executors, in order, as one
        table of ``sha1``, ``blob``, ``status``, ``source``, ``error``."""
        import pyarrow as pa

        df = self.spark.createDataFrame(pa.concat_tables(partitions))  # one partition per chunk
        return enrich_dataframe(df, self.spec, status_column="status", source_column="source",
                                error_column="error", **self.fetch_options).toArrow()


@contextmanager
def fetch_job(spec: StoreLike, *, spark_conf: dict[str, str] | None = None,
              **fetch_options: Any) -> Iterator[_SparkJob]:
    """The running Spark session, else a local one, stopped at the end, for ``bitstore fetch --engine spark``.
    A local session gets ``FETCH_JOB_CONF`` with ``spark_conf`` over it (a running one keeps its own)."""
    from pyspark.sql import SparkSession

    started = SparkSession.getActiveSession() is None
    spark = local_session(conf={**FETCH_JOB_CONF, **(spark_conf or {})})
    try:
        yield _SparkJob(spark, spec, fetch_options)
    finally:
        if started:
            spark.stop()
