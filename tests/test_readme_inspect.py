"""The ``inspect`` examples (docs/guides/inspect.md): its ``# runnable`` blocks run and print what the page says."""
from __future__ import annotations

import tempfile

import pytest

from tests.docs_blocks import expected_output, run_block, runnable_blocks


def _blocks() -> list[str]:
    return runnable_blocks("inspect")


def test_the_section_has_a_runnable_example():
    assert _blocks()


@pytest.mark.parametrize("index", range(len(_blocks())))
def test_runnable_example(index, tmp_path, monkeypatch):
    block = _blocks()[index]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    printed = run_block(block, f"docs inspect example {index + 1}")
    expected = expected_output(block)
    assert expected and printed == expected
