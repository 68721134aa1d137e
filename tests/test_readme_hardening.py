"""The ``hardening`` examples (docs/guarantees.md): its ``# runnable`` blocks run and print what the page says."""
from __future__ import annotations

import pytest

from tests.docs_blocks import expected_output, run_block, runnable_blocks


def _blocks() -> list[str]:
    return runnable_blocks("hardening")


def test_the_section_has_runnable_examples():
    assert len(_blocks()) >= 4


@pytest.mark.parametrize("index", range(len(_blocks())))
def test_runnable_example(index, tmp_path, monkeypatch):
    block = _blocks()[index]
    monkeypatch.chdir(tmp_path)
    expected = expected_output(block)
    assert run_block(block, f"docs hardening block {index}") == expected
