"""The README's ``inspect`` section: its ``# runnable`` examples run and print what the README says they print."""
from __future__ import annotations

import contextlib
import io
import re
import tempfile
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def _blocks() -> list[str]:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"<!-- section: inspect -->(.*?)<!-- /section: inspect -->", text, re.S)
    assert match, "README.md has no inspect section"
    return [b for b in re.findall(r"```python\n(.*?)```", match.group(1), re.S) if b.startswith("# runnable\n")]


def test_the_section_has_a_runnable_example():
    assert _blocks()


@pytest.mark.parametrize("index", range(len(_blocks())))
def test_runnable_example(index, tmp_path, monkeypatch):
    block = _blocks()[index]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block, f"README.md inspect example {index + 1}", "exec"), {"__name__": "__readme__"})
    expected = [line[2:] for line in block.splitlines()[1:] if line.startswith("# ")]
    assert expected and out.getvalue().splitlines() == expected
