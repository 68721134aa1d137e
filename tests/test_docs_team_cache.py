"""The runnable examples of docs/guides/team-cache.md print what the page says they print."""
from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[1] / "docs" / "guides" / "team-cache.md"
BLOCKS = [b for b in re.findall(r"```python\n(.*?)```", PAGE.read_text(encoding="utf-8"), re.S)
          if b.startswith("# runnable")]


def test_the_page_has_a_runnable_example():
    assert BLOCKS


@pytest.mark.parametrize("block", BLOCKS)
def test_runnable_blocks_print_their_comments(block):
    expected = [line[2:] for line in block.splitlines() if line.startswith("# ") and line != "# runnable"
                and not line.startswith("#  ")]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block, str(PAGE), "exec"), {"__name__": "__docs__"})
    assert out.getvalue().splitlines() == expected
