"""The ``beam`` example (docs/guides/beam.md): its ``# runnable`` block runs and prints what the page shows."""
from __future__ import annotations

from tests.docs_blocks import expected_output, run_block, runnable_blocks, section


def test_runnable_example_prints_what_the_page_shows(tmp_path, monkeypatch):
    blocks = runnable_blocks("beam")
    assert len(blocks) == 1
    expected = expected_output(blocks[0])
    monkeypatch.chdir(tmp_path)
    printed = run_block(blocks[0], "docs[beam]", {"__name__": "docs_beam"})
    # PCollections have no order: compare the lines as a multiset.
    assert sorted(printed) == sorted(expected)


def test_documented_options_exist():
    text = section("beam")
    for name in ("FetchBlobs", "EnrichWithBlobs", "BitstoreEnrichmentHandler", "--runner=FnApiRunner",
                 "--direct_running_mode=multi_processing", "--extra_package", "--setup_file=./pyproject.toml",
                 "fetch_ms", "cache_write_failures", "hits.<tier name>"):
        assert name in text, name
