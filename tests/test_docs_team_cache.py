"""The runnable examples of docs/guides/team-cache.md (section ``team-cache``) print what the page shows."""
from __future__ import annotations

import pytest

from tests.docs_blocks import expected_output, run_block, runnable_blocks

BLOCKS = runnable_blocks("team-cache")


def test_the_page_has_a_runnable_example():
    assert BLOCKS


@pytest.mark.parametrize("block", BLOCKS)
def test_runnable_blocks_print_what_the_page_shows(block):
    assert run_block(block, "docs/guides/team-cache.md") == expected_output(block)
