"""Beam test setup: worker processes must import ``tests.beam.helpers``, so the repo root goes on PYTHONPATH."""
from __future__ import annotations

import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
#: The local Python runner, two worker processes: never the Prism download that plain DirectRunner tries.
MULTI_PROCESS = ["--runner=FnApiRunner", "--direct_running_mode=multi_processing", "--direct_num_workers=2"]


@pytest.fixture(scope="session", autouse=True)
def _workers_import_tests():
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([ROOT, before] if before else [ROOT])
    yield
    if before is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = before


def counters(result, namespace: str = "bitstore") -> dict[str, int]:
    """Committed counter values of a finished pipeline, summed over steps."""
    from apache_beam.metrics.metric import MetricsFilter

    out: dict[str, int] = {}
    for counter in result.metrics().query(MetricsFilter().with_namespace(namespace))["counters"]:
        out[counter.key.metric.name] = out.get(counter.key.metric.name, 0) + counter.committed
    return out


def distribution(result, name: str, namespace: str = "bitstore"):
    from apache_beam.metrics.metric import MetricsFilter

    found = result.metrics().query(MetricsFilter().with_namespace(namespace).with_name(name))["distributions"]
    assert len(found) == 1, found
    return found[0].committed
