"""The README's ``hardening`` section: its ``# runnable`` examples run and print what the README says."""
from __future__ import annotations

import pytest

from tests.test_readme_core import _expected_output, run_block, runnable_blocks


def _blocks() -> list[str]:
    return runnable_blocks("hardening")


def test_the_section_has_runnable_examples():
    assert len(_blocks()) >= 4


@pytest.mark.parametrize("index", range(len(_blocks())))
def test_runnable_example(index, tmp_path, monkeypatch):
    block = _blocks()[index]
    monkeypatch.chdir(tmp_path)
    expected = _expected_output(block)
    assert run_block(block, f"README hardening block {index}") == expected
