"""Find the documentation's examples: Python blocks marked ``# runnable`` inside ``<!-- section: NAME -->`` ...
``<!-- /section: NAME -->`` markers on the pages under ``docs/``, run them, and read the output they show.

A section may appear on more than one page (its parts are joined in page order); the comment lines at the left
margin of a runnable block, after the marker, are what it prints.
"""
from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
MARKER = "# runnable\n"


def pages() -> list[Path]:
    """Every Markdown page under docs/, in a stable order."""
    return sorted(DOCS.rglob("*.md"))


def section(name: str) -> str:
    """The text between ``<!-- section: name -->`` and ``<!-- /section: name -->``, over every page."""
    pattern = re.compile(rf"<!-- section: {re.escape(name)} -->(.*?)<!-- /section: {re.escape(name)} -->", re.S)
    parts = [m.group(1) for page in pages() for m in pattern.finditer(page.read_text(encoding="utf-8"))]
    assert parts, f"no page under docs/ has a {name} section"
    return "".join(parts)


def python_blocks(text: str) -> list[str]:
    """The ```python blocks of ``text``."""
    return re.findall(r"```python\n(.*?)```", text, re.S)


def runnable_blocks(name: str) -> list[str]:
    """The section's Python blocks marked ``# runnable`` on their first line."""
    return [b for b in python_blocks(section(name)) if b.startswith(MARKER)]


def runnable_sections() -> dict[str, int]:
    """Section name -> how many runnable blocks it holds, for every section on every page."""
    counts: dict[str, int] = {}
    for page in pages():
        text = page.read_text(encoding="utf-8")
        for m in re.finditer(r"<!-- section: ([\w-]+) -->(.*?)<!-- /section: \1 -->", text, re.S):
            counts[m.group(1)] = counts.get(m.group(1), 0) + sum(
                b.startswith(MARKER) for b in python_blocks(m.group(2)))
    return counts


def runnable_blocks_outside_sections() -> list[tuple[str, str]]:
    """(page, first lines) of runnable blocks that no section holds: no test would run them."""
    found = []
    for page in pages():
        text = re.sub(r"<!-- section: ([\w-]+) -->.*?<!-- /section: \1 -->", "", page.read_text("utf-8"), flags=re.S)
        found += [(str(page.relative_to(ROOT)), b[:80]) for b in python_blocks(text) if b.startswith(MARKER)]
    return found


def run_block(block: str, label: str, namespace: dict | None = None) -> list[str]:
    """The lines ``block`` prints when run as a script (in ``namespace``, if given, to share names)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block, label, "exec"), namespace if namespace is not None else {"__name__": "__docs__"})
    return out.getvalue().splitlines()


def expected_output(block: str) -> list[str]:
    """Comment lines at the left margin (after the ``# runnable`` marker) are the block's output."""
    return [line[2:] for line in block.splitlines()[1:] if line.startswith("# ")]
