"""The README's ``core`` section: its ``# runnable`` examples run, and print what the README says they print."""
from __future__ import annotations

import contextlib
import io
import re
import tempfile
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def section(name: str) -> str:
    """The README text between ``<!-- section: name -->`` and ``<!-- /section: name -->``."""
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"<!-- section: {name} -->(.*?)<!-- /section: {name} -->", text, re.S)
    assert match, f"README.md has no {name} section"
    return match.group(1)


def runnable_blocks(name: str) -> list[str]:
    """The section's Python blocks marked ``# runnable`` on their first line."""
    blocks = re.findall(r"```python\n(.*?)```", section(name), re.S)
    return [b for b in blocks if b.startswith("# runnable\n")]


def run_block(block: str, label: str) -> list[str]:
    """The lines ``block`` prints when run as a script."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block, label, "exec"), {"__name__": "__readme__"})
    return out.getvalue().splitlines()


def _core_section() -> str:
    return section("core")


def _runnable_blocks() -> list[str]:
    return runnable_blocks("core")


def _expected_output(block: str) -> list[str]:
    """Comment lines at the left margin (after the ``# runnable`` marker) are the block's output."""
    return [line[2:] for line in block.splitlines()[1:] if line.startswith("# ")]


def test_the_core_section_has_runnable_examples():
    assert len(_runnable_blocks()) >= 2
    assert "Sha1APISource" in _core_section() and "append_store" in _core_section()


@pytest.mark.parametrize("index", range(len(_runnable_blocks())))
def test_runnable_example(index, tmp_path, monkeypatch):
    block = _runnable_blocks()[index]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # what the example creates stays in tmp_path
    printed = run_block(block, f"README.md core example {index + 1}")
    expected = _expected_output(block)
    assert expected, "a runnable example should show its output"
    assert [line.rstrip() for line in printed] == [line.rstrip() for line in expected]
