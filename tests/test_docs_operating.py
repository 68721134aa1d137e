"""The runnable examples of docs/guides/operating.md print what the page shows."""
from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

PAGE = Path(__file__).resolve().parent.parent / "docs" / "guides" / "operating.md"


def test_runnable_blocks_print_what_the_page_shows():
    blocks = [b for b in re.findall(r"```python\n(.*?)```", PAGE.read_text("utf-8"), re.S)
              if b.startswith("# runnable\n")]
    assert blocks
    for block in blocks:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(block, str(PAGE), "exec"), {"__name__": "__docs__"})
        expected = [line[2:] for line in block.splitlines()[1:] if line.startswith("# ")]
        assert out.getvalue().splitlines() == expected
