"""The README's ``hardening`` section: its ``# runnable`` examples run and print what the README says."""
from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def _blocks() -> list[str]:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"<!-- section: hardening -->(.*?)<!-- /section: hardening -->", text, re.S)
    assert match, "README.md has no hardening section"
    return [b for b in re.findall(r"```python\n(.*?)```", match.group(1), re.S) if b.startswith("# runnable\n")]


def test_the_section_has_runnable_examples():
    assert len(_blocks()) >= 4


@pytest.mark.parametrize("index", range(len(_blocks())))
def test_runnable_example(index, tmp_path, monkeypatch):
    block = _blocks()[index]
    monkeypatch.chdir(tmp_path)
    expected = [line[2:] for line in block.splitlines()[1:] if line.startswith("# ")]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block, f"README hardening block {index}", "exec"), {"__name__": "__readme__"})
    assert out.getvalue().splitlines() == expected
