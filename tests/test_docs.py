"""The documentation site: it builds with ``mkdocs build --strict`` without a warning, every page is in the nav,
every runnable example is run by some test, the README stays short and runnable, no page carries work-tracking
references, and the benchmark charts can be drawn again from their data."""
from __future__ import annotations

import os
import re
import struct
import subprocess
import sys

import pytest

from tests.docs_blocks import (
    DOCS,
    ROOT,
    expected_output,
    pages,
    python_blocks,
    run_block,
    runnable_blocks,
    runnable_blocks_outside_sections,
    runnable_sections,
    section,
)

README = ROOT / "README.md"
WORK_TRACKING = re.compile(r"\(issue \d+\)|issue \d+\b", re.I)

#: Sections holding runnable examples -> the test that runs them.
RUNNERS = {
    "core": "tests/test_readme_core.py",
    "hardening": "tests/test_readme_hardening.py",
    "inspect": "tests/test_readme_inspect.py",
    "paid-tiers": "tests/test_readme_paid.py",
    "beam": "tests/beam/test_readme.py",
    "engines": "tests/engines/test_readme.py",
    "arrow": "tests/test_docs.py::test_arrow_examples_run",
    "urls": "tests/test_docs.py::test_url_and_http_examples_run",
    "http": "tests/test_docs.py::test_url_and_http_examples_run",
    "team-cache": "tests/test_docs_team_cache.py",
    "sha256": "tests/test_sha256.py::test_the_guides_example_runs",
    "azure": "tests/backends/test_azure.py::test_docs_examples_run",
    "operating": "tests/test_docs_operating.py",
    "async": "tests/test_docs_async.py",
}


# --- the site ----------------------------------------------------------------------------------------
def test_mkdocs_build_is_strict_clean(tmp_path):
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    output = done.stdout + done.stderr
    warnings = [line for line in output.splitlines() if re.match(r"\s*(WARNING|ERROR)\b", line)]
    assert done.returncode == 0 and not warnings, output
    assert (tmp_path / "site" / "reference" / "stores" / "index.html").is_file()


def _nav_pages() -> set[str]:
    text = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    nav = text[text.index("\nnav:"):]
    return set(re.findall(r"^\s*-\s*(?:[^:\n]+:\s*)?([\w./-]+\.md)\s*$", nav, re.M))


def test_every_page_is_in_the_nav():
    on_disk = {str(p.relative_to(DOCS)) for p in pages()}
    assert on_disk - _nav_pages() == set(), "pages missing from mkdocs.yml's nav"
    assert _nav_pages() - on_disk == set(), "nav entries with no page"


def test_the_api_reference_names_only_public_paths():
    for page in (DOCS / "reference").glob("*.md"):
        for ref in re.findall(r"^::: ([\w.]+)", page.read_text(encoding="utf-8"), re.M):
            assert not any(part.startswith("_") for part in ref.split(".")), ref
            top = ref.split(".")
            assert top[0] in ("bitstore", "beam_transforms"), ref
            if top[0] == "bitstore" and len(top) > 2:
                assert top[1] in ("arrow", "spark", "ray", "spec", "exc", "aws", "gcp"), ref


# --- runnable examples -------------------------------------------------------------------------------
def test_every_runnable_example_is_run_by_a_test():
    assert runnable_blocks_outside_sections() == []
    sections = {name for name, count in runnable_sections().items() if count}
    assert sections <= set(RUNNERS), f"sections with runnable examples no test runs: {sections - set(RUNNERS)}"


def test_arrow_examples_run(tmp_path, monkeypatch):
    blocks = runnable_blocks("arrow")
    assert len(blocks) >= 5
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "docs_arrow"}
    for index, block in enumerate(blocks):
        run_block(block, f"docs arrow example {index + 1}", namespace)  # each block asserts its own result


@pytest.mark.parametrize("name", ["urls", "http"])
def test_url_and_http_examples_run(name, tmp_path, monkeypatch):
    blocks = runnable_blocks(name)
    assert blocks
    monkeypatch.chdir(tmp_path)
    for index, block in enumerate(blocks):
        assert run_block(block, f"docs {name} example {index + 1}") == expected_output(block)


def test_the_spec_key_table_is_the_declarations():
    from tests.test_fields import key_table

    found = re.search(r"<!-- spec-keys -->\n(.*?)\n<!-- /spec-keys -->",
                      (DOCS / "guides" / "specs.md").read_text(encoding="utf-8"), re.S)
    expected = key_table()
    assert found, "docs/guides/specs.md needs the tier key table between <!-- spec-keys --> markers"
    assert found.group(1) == expected, "docs/guides/specs.md's key table is out of date; it should read:\n" + expected


# --- the README --------------------------------------------------------------------------------------
def test_readme_is_short():
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 250


def test_readme_links_into_the_docs_resolve():
    text = README.read_text(encoding="utf-8")
    links = re.findall(r"\]\(((?:docs/|CHANGELOG|CONTRIBUTING)[^)#]*)", text)
    assert len(links) >= 10
    for link in links:
        assert (ROOT / link).exists(), link


def test_readme_quick_start_runs(tmp_path, monkeypatch):
    text = re.sub(r"<!-- section: ([\w-]+) -->.*?<!-- /section: \1 -->", "", README.read_text("utf-8"), flags=re.S)
    blocks = [b for b in python_blocks(text) if b.startswith("# runnable\n")]
    assert blocks
    monkeypatch.chdir(tmp_path)
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    for index, block in enumerate(blocks):
        printed = run_block(block, f"README.md example {index + 1}")
        assert [line.rstrip() for line in printed] == [line.rstrip() for line in expected_output(block)]


# --- no work-tracking references -----------------------------------------------------------------------
def test_no_work_tracking_references_in_the_docs_or_readme():
    found = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
             for path in [README, *pages()]
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if WORK_TRACKING.search(line)]
    assert found == []


# --- benchmark charts ----------------------------------------------------------------------------------
def _png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", f"{path.name} is not a PNG"
    return struct.unpack(">II", data[16:24])


def test_benchmark_plots_are_drawn_from_the_committed_results(tmp_path):
    import json

    pytest.importorskip("matplotlib")
    results = DOCS / "benchmarks" / "results.json"
    cases = json.loads(results.read_text(encoding="utf-8"))["cases"]
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "plots.py"), str(results), str(tmp_path)],
                          capture_output=True, text=True, timeout=300, env=dict(os.environ, MPLBACKEND="Agg"))
    assert done.returncode == 0, done.stderr
    for case in cases:
        width, height = _png_size(tmp_path / f"{case['id']}.png")
        assert width > 100 and height > 100
        assert (DOCS / "benchmarks" / f"{case['id']}.png").is_file(), f"chart of {case['id']} not committed"
        assert f"benchmarks/{case['id']}.png" in (DOCS / "benchmarks.md").read_text(encoding="utf-8")
    assert sorted(p.name for p in tmp_path.glob("*.png")) == sorted(f"{c['id']}.png" for c in cases)


def test_benchmark_cases_say_where_and_when():
    import json

    for case in json.loads((DOCS / "benchmarks" / "results.json").read_text(encoding="utf-8"))["cases"]:
        assert case["machine"] and case["date"] and case["contenders"], case["id"]


def test_section_helper_finds_every_runner_section():
    for name in RUNNERS:
        assert section(name)


def test_benchmarks_page_is_what_the_committed_results_make():
    """docs/benchmarks.md's tables are generated from docs/benchmarks/results.json (``python -m benchmarks.page``):
    the committed page is exactly what the committed results make, and places every case."""
    done = subprocess.run([sys.executable, "-m", "benchmarks.page", "--check"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_benchmarks_page_cells_say_what_they_compare():
    """Every ratio cell names both sides (``A ÷ B``) and gives the spread of its rounds, or says it has none."""
    import json

    from benchmarks.page import ratio_cell

    for case in json.loads((DOCS / "benchmarks" / "results.json").read_text(encoding="utf-8"))["cases"]:
        reference = next((r for r in case["contenders"] if r.get("reference")), None)
        for row in case["contenders"]:
            cell = ratio_cell(row, reference)
            if not cell:
                continue
            assert " ÷ " in cell, (case["id"], cell)
            paired = row.get("vs") or (reference and len(row.get("rounds") or []) == len(reference.get("rounds") or [])
                                       and len(row.get("rounds") or []) > 1)
            assert ("[" in cell) if paired else ("medians; rounds not paired" in cell), (case["id"], cell)
