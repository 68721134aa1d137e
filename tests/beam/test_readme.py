"""The README's ``beam`` section: its ``# runnable`` example runs and prints what the README shows."""
from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def _beam_section() -> str:
    match = re.search(r"<!-- section: beam -->(.*?)<!-- /section: beam -->", README.read_text("utf-8"), re.S)
    assert match, "README.md has no beam section"
    return match.group(1)


def test_runnable_example_prints_what_the_readme_shows(tmp_path, monkeypatch):
    blocks = [b for b in re.findall(r"```python\n(.*?)```", _beam_section(), re.S) if b.startswith("# runnable\n")]
    assert len(blocks) == 1
    expected = [line[2:] for line in blocks[0].splitlines()[1:] if line.startswith("# ")]
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(blocks[0], "README.md[beam]", "exec"), {"__name__": "readme_beam"})
    # PCollections have no order: compare the lines as a multiset.
    assert sorted(out.getvalue().splitlines()) == sorted(expected)


def test_documented_options_exist():
    section = _beam_section()
    for name in ("FetchBlobs", "EnrichWithBlobs", "BitstoreEnrichmentHandler", "--runner=FnApiRunner",
                 "--direct_running_mode=multi_processing", "--extra_package", "--setup_file=./pyproject.toml",
                 "fetch_ms", "cache_write_failures", "hits.<tier name>"):
        assert name in section, name
