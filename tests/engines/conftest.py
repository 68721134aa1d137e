"""One Spark session and one Ray cluster for the whole test run (each takes seconds to start), both on
127.0.0.1 with 2 CPUs, their workers in separate processes with ``stores.WORKER_ENV``."""
from __future__ import annotations

import contextlib
import os

import pytest

from .stores import WORKER_ENV

# Before any import of Ray in this run: a local Ray node then stays on 127.0.0.1 (bitstore.ray.local_cluster
# also sees to it when Ray was imported first).
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"


@contextlib.contextmanager
def _environment(values: dict[str, str]):
    """``values`` set while a JVM is started (it keeps its own copy of the environment), then restored."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="session")
def spark():
    from bitstore.spark import JavaNotFound, local_session

    with _environment(WORKER_ENV):
        try:
            session = local_session("local[2]", conf={"spark.default.parallelism": "2"})
        except JavaNotFound as exc:
            pytest.fail(str(exc), pytrace=False)
    yield session
    session.stop()


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory):
    from bitstore.ray import local_cluster

    started = local_cluster(num_cpus=2, temp_dir=str(tmp_path_factory.mktemp("ray", numbered=False)),
                            env=WORKER_ENV)
    import ray
    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    if started:
        ray.shutdown()
