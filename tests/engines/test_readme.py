"""The ``engines`` examples (docs/guides/spark-ray.md): its ``# runnable`` Spark and Ray blocks run on the session's
Spark and Ray (the examples' ``local_session()`` / ``local_cluster()`` join them) and print what the page shows."""
from __future__ import annotations

import pytest

from tests.docs_blocks import expected_output, pages, run_block, runnable_blocks


def _blocks() -> dict[str, str]:
    return {"spark" if "bitstore.spark" in b else "ray": b for b in runnable_blocks("engines")}


def test_the_docs_document_every_engine():
    assert set(_blocks()) == {"spark", "ray"}
    docs = "".join(page.read_text("utf-8") for page in pages())
    for text in ("--engine spark", "DaskRunner", "finish_bundle", "FnApiRunner", "DataflowRunner", "FlinkRunner",
                 "openjdk-17-jre-headless", "num_cpus=0.5", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0"):
        assert text in docs, text


@pytest.mark.parametrize("engine", ["spark", "ray"])
def test_runnable_example(engine, request, tmp_path, monkeypatch):
    request.getfixturevalue({"spark": "spark", "ray": "ray_cluster"}[engine])
    block = _blocks()[engine]
    expected = expected_output(block)
    monkeypatch.chdir(tmp_path)
    assert run_block(block, f"docs[engines:{engine}]", {"__name__": "docs_engines"}) == expected
