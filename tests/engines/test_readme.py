"""The README's ``engines`` section: its ``# runnable`` Spark and Ray examples run on the session's Spark and
Ray (the examples' ``local_session()`` / ``local_cluster()`` join them) and print what the README shows."""
from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def _blocks() -> dict[str, str]:
    match = re.search(r"<!-- section: engines -->(.*?)<!-- /section: engines -->", README.read_text("utf-8"), re.S)
    assert match, "README.md has no engines section"
    blocks = [b for b in re.findall(r"```python\n(.*?)```", match.group(1), re.S) if b.startswith("# runnable\n")]
    return {"spark" if "bitstore.spark" in b else "ray": b for b in blocks}


def test_the_section_documents_every_engine():
    assert set(_blocks()) == {"spark", "ray"}
    section = README.read_text("utf-8")
    for text in ("--engine spark", "DaskRunner", "finish_bundle", "FnApiRunner", "DataflowRunner", "FlinkRunner",
                 "openjdk-17-jre-headless", "num_cpus=0.5", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0"):
        assert text in section, text


@pytest.mark.parametrize("engine", ["spark", "ray"])
def test_runnable_example(engine, request, tmp_path, monkeypatch):
    request.getfixturevalue({"spark": "spark", "ray": "ray_cluster"}[engine])
    block = _blocks()[engine]
    expected = [line[2:] for line in block.splitlines()[1:] if line.startswith("# ")]
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block, f"README.md[engines:{engine}]", "exec"), {"__name__": "readme_engines"})
    assert out.getvalue().splitlines() == expected
