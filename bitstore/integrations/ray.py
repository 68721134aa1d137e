"""Ray Data adapter: a Dataset gains a blob column (and optional status/source columns), fetched by actors.

``enrich_dataset`` checks the options against the Dataset's schema on the driver, then runs
``ds.map_batches`` with a function (defined here, so workers import it) that feeds each whole block through
one ``bitstore.arrow.enrich_batches``, handing rows back ``batch_size`` at a time. It runs as Ray tasks: Ray
keeps its worker processes between tasks and between runs of a dataset, and each process keeps the store it
built (``bitstore.integrations.scaleout.StoreRecipe``), so a second job starts no process and builds no store.
(Ray Data's actor pools start new actor processes for every run; ``compute=ActorPoolStrategy(...)`` still
selects them.) Tasks ask for half a CPU by default: they mostly wait on the network, and on a small machine
whole-CPU tasks would starve the ones that read the input.

``pip install 'bitstore-tiered[ray]'``. Ray is imported when a function here is first called, not with this module,
so ``local_cluster`` can keep a local cluster on 127.0.0.1.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..core.store import DEFAULT_MAX_BYTES_IN_FLIGHT
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
    import ray.data

__all__ = ["enrich_dataset", "local_cluster", "ACTOR_NUM_CPUS", "TASK_NUM_CPUS"]

#: CPUs each enriching task (or actor) reserves (``num_cpus=`` overrides it).
TASK_NUM_CPUS = ACTOR_NUM_CPUS = 0.5
#: How long a local cluster keeps an idle worker process beyond one per CPU (Ray's default is one second): the
#: workers, each with its store, outlive the pause between two jobs instead of being started again.
IDLE_WORKER_KEEP_MS = 10 * 60 * 1000
#: How often Ray Data, in this process, re-reads how many CPUs it may use while a job runs (Ray's default: once a
#: second). Its first read of every job comes back empty, so it starts one task, and the others only at the
#: next read: with the default, every job loses a second of all but one of its tasks.
RESOURCE_REFRESH_S = 0.1


def _ray(data: bool = True):
    """Ray, with Ray Data imported too unless ``data`` is False."""
    try:
        import ray
        if data:
            import ray.data
    except ImportError as exc:
        raise ImportError("bitstore.ray needs Ray Data: pip install 'bitstore-tiered[ray]'") from exc
    return ray


def local_cluster(num_cpus: int | None = None, *, temp_dir: str | None = None,
                  env: dict[str, str] | None = None) -> bool:
    """Connect to Ray: the running cluster if this process already did (or ``RAY_ADDRESS`` names one), else
    start a local one on 127.0.0.1 with ``num_cpus`` CPUs, no dashboard, its files under ``temp_dir`` (an
    absolute path; Ray's default is /tmp/ray) and ``env`` set in its workers. True when a cluster was
    started or joined here (the caller then owns ``ray.shutdown()``), False when one was already connected.
    A local cluster keeps idle worker processes for ten minutes, so later jobs find their stores built."""
    if "ray" not in sys.modules and not os.environ.get("RAY_ADDRESS"):
        _stay_on_loopback()  # before Ray's first import, as Ray expects
    ray = _ray(data=False)
    if ray.is_initialized():
        return False
    runtime_env = {"env_vars": dict(env)} if env else None
    if os.environ.get("RAY_ADDRESS"):
        ray.init(runtime_env=runtime_env)
    else:
        _stay_on_loopback()
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, _node_ip_address="127.0.0.1",
                 _temp_dir=temp_dir, runtime_env=runtime_env, log_to_driver=False, configure_logging=False,
                 _system_config={"idle_worker_killing_time_threshold_ms": IDLE_WORKER_KEEP_MS})
    return True


def _prompt_resource_refresh() -> None:
    """Have Ray Data re-read the CPUs it may use every ``RESOURCE_REFRESH_S``, so all of a job's tasks start
    together rather than all but one a second late. It is Ray's private setting (an asynchronous call to its
    coordinator actor each time): a Ray without it, or with a shorter interval, is left as it is."""
    try:
        from ray.data._internal.execution.resource_manager import ResourceManager
    except ImportError:
        return
    interval = getattr(ResourceManager, "GLOBAL_LIMITS_UPDATE_INTERVAL_S", None)
    if isinstance(interval, (int, float)) and interval > RESOURCE_REFRESH_S:
        ResourceManager.GLOBAL_LIMITS_UPDATE_INTERVAL_S = RESOURCE_REFRESH_S


def _stay_on_loopback() -> None:
    """Keep a local node on 127.0.0.1: unless Ray's "no multi-node cluster" flag is off, Ray turns 127.0.0.1 into
    the machine's external address. Ray reads the flag at import, in this process and in each worker it starts,
    so it is set in the environment (for the workers) and, if Ray is already imported here, in its constants."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    constants = sys.modules.get("ray._private.ray_constants")
    if constants is not None:
        constants.ENABLE_RAY_CLUSTER = False


def enrich_dataset(
    ds: ray.data.Dataset,
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
    **map_batches_options: Any,
) -> ray.data.Dataset:
    """``ds`` with a ``large_binary`` blob column appended (null unless the key was found), and the optional
    status (``found | missing | invalid | failed``), source (tier name) and error (why there is no blob:
    missing, invalid or failed) string columns. Lazy, like any transformation.

    ``store`` is a spec (dict, TOML path or ``Spec``; environment references are resolved on the workers) or a
    picklable ``Store``. Every input row and column is kept; a null key is ``invalid``. ``key_column`` defaults to
    the store's key family: ``sha256`` for SHA-256 keys, else ``sha1``. Each task streams its whole block through
    one ``get_many`` with up to ``max_workers`` threads and ``max_bytes_in_flight`` bytes in flight, and hands
    rows back ``batch_size`` at a time. Other keywords go to ``map_batches`` (e.g. ``num_cpus=1``,
    ``concurrency=4``, or ``compute=ray.data.ActorPoolStrategy(size=4)`` for actors; by default tasks of
    ``num_cpus=0.5``). A task's unit of work is a block: give the dataset at least as many blocks as tasks can
    run at once (``ds.repartition``) so that every worker is busy. Ray Data in this process then re-reads the
    cluster's CPUs every 0.1 s rather than every second, so all of a job's tasks start together.
    """
    ray = _ray()
    options = EnrichOptions(default_key_column(key_column, store), blob_column, status_column, source_column,
                            error_column, max_workers, max_bytes_in_flight, batch_size)
    _check_schema(ds, options)
    _prompt_resource_refresh()
    from ray import cloudpickle

    recipe = StoreRecipe(store, dumps=cloudpickle.dumps)
    map_batches_options.setdefault("num_cpus", TASK_NUM_CPUS)
    kwargs = {"recipe": recipe, "options": options}
    # batch_size=None: one call per block, so one get_many keeps its window full across the whole block.
    if isinstance(map_batches_options.get("compute"), ray.data.ActorPoolStrategy):
        return ds.map_batches(_Enrich, fn_constructor_kwargs=kwargs, batch_format="pyarrow", batch_size=None,
                              **map_batches_options)
    return ds.map_batches(enrich_block, fn_kwargs=kwargs, batch_format="pyarrow", batch_size=None,
                          **map_batches_options)


def _check_schema(ds: ray.data.Dataset, options: EnrichOptions) -> None:
    """The Arrow adapter's checks (key column present and of strings, new names free), on the driver."""
    import pyarrow as pa

    from .arrow import _Plan

    schema = ds.schema()
    if schema is None:  # an empty dataset with no known schema: nothing to check, nothing to fetch
        return
    base = getattr(schema, "base_schema", None)
    if isinstance(base, pa.Schema):
        _Plan(options.key_column, options.blob_column, options.status_column, options.source_column,
              options.error_column).new_fields(base)
    else:  # pandas blocks: the types are numpy's; check the names here, the key type on the workers
        options.check_names(list(schema.names))


def enrich_block(table: pa.Table, *, recipe: StoreRecipe, options: EnrichOptions) -> Iterator[pa.Table]:
    """The ``map_batches`` function: one block in, its rows with the new columns out, ``batch_size`` at a time,
    fetched with this worker process's store."""
    import pyarrow as pa

    for batch in enrich_stream(table.to_batches(), recipe, options):
        yield pa.Table.from_batches([batch])


class _Enrich:
    """The callable class for ``compute=ActorPoolStrategy(...)``: each actor builds the store when it starts."""

    def __init__(self, recipe: StoreRecipe, options: EnrichOptions):
        self.recipe, self.options = recipe, options
        recipe.store()  # built when the actor starts, not on its first block

    def __call__(self, table: pa.Table) -> Iterator[pa.Table]:
        return enrich_block(table, recipe=self.recipe, options=self.options)


class _RayJob:
    """``bitstore fetch --engine ray``, one window of partitions at a time (``fetchjob.fetch_on_engine``): a Ray
    task per partition (``fetch_partition``), the results gathered in order. Plain tasks rather than a Ray Data
    Dataset: neither the driver nor the workers then import Ray Data (with pandas, about 65 MiB a process), and
    nothing but the window is ever in the object store. Tables travel as Arrow IPC streams: Ray's own pickling
    of a sliced table calls Arrow compute, which imports pandas."""

    def __init__(self, spec: StoreLike, fetch_options: dict[str, Any]):
        ray = _ray(data=False)
        from ray import cloudpickle

        options = dict(fetch_options)
        num_cpus = options.pop("num_cpus", TASK_NUM_CPUS)
        key_column = options.pop("key_column", None)
        self.options = EnrichOptions(default_key_column(key_column, spec), "blob", "status", "source", "error",
                                     **options)
        self.recipe = ray.put(StoreRecipe(spec, dumps=cloudpickle.dumps))
        self.task = ray.remote(num_cpus=num_cpus)(fetch_partition)
        cpus = ray.cluster_resources().get("CPU", 1)
        self.parallelism = max(1, int(cpus / num_cpus))

    def run(self, partitions: list[pa.Table]) -> pa.Table:
        """The partitions' keys (``sha1``; one task each) enriched by Ray tasks, in order, as one table of
        ``sha1``, ``blob``, ``status``, ``source``, ``error``."""
        import pyarrow as pa

        ray = _ray(data=False)
        refs = [self.task.remote(_to_ipc(part), recipe=self.recipe, options=self.options) for part in partitions]
        return pa.concat_tables([_from_ipc(done) for done in ray.get(refs)])


def fetch_partition(table: bytes, *, recipe: StoreRecipe, options: EnrichOptions) -> bytes:
    """A Ray task of ``bitstore fetch --engine ray``: one partition's rows with the new columns (Arrow IPC in and
    out)."""
    import pyarrow as pa

    batches = list(enrich_stream(_from_ipc(table).to_batches(), recipe, options))
    return _to_ipc(pa.Table.from_batches(batches))


def _to_ipc(table: pa.Table) -> bytes:
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _from_ipc(data: bytes) -> pa.Table:
    import pyarrow as pa

    return pa.ipc.open_stream(data).read_all()


@contextmanager
def fetch_job(spec: StoreLike, **fetch_options: Any) -> Iterator[_RayJob]:
    """The connected (or ``RAY_ADDRESS``) Ray cluster, else a local one, shut down at the end, for ``bitstore
    fetch --engine ray``; rows keep their order."""
    started = local_cluster()
    try:
        yield _RayJob(spec, fetch_options)
    finally:
        if started:
            _ray(data=False).shutdown()
