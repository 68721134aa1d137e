"""The runnable examples of the "operating" section (docs/guides/operating.md) print what the page shows."""
from __future__ import annotations

from tests.docs_blocks import expected_output, run_block, runnable_blocks


def test_runnable_blocks_print_what_the_page_shows():
    blocks = runnable_blocks("operating")
    assert blocks
    for n, block in enumerate(blocks):
        assert run_block(block, f"operating[{n}]") == expected_output(block)
