"""The ``core`` examples (docs/getting-started.md): its ``# runnable`` blocks run and print what the page says."""
from __future__ import annotations

import tempfile

import pytest

from tests.docs_blocks import expected_output, run_block, runnable_blocks, section


def _core_section() -> str:
    return section("core")


def _runnable_blocks() -> list[str]:
    return runnable_blocks("core")


def test_the_core_section_has_runnable_examples():
    assert len(_runnable_blocks()) >= 2
    assert "Sha1APISource" in _core_section() and "append_store" in _core_section()


@pytest.mark.parametrize("index", range(len(_runnable_blocks())))
def test_runnable_example(index, tmp_path, monkeypatch):
    block = _runnable_blocks()[index]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # what the example creates stays in tmp_path
    printed = run_block(block, f"docs core example {index + 1}")
    expected = expected_output(block)
    assert expected, "a runnable example should show its output"
    assert [line.rstrip() for line in printed] == [line.rstrip() for line in expected]
