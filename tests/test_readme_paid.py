"""The ``paid-tiers`` example (docs/guides/paid-tiers.md): its ``# runnable`` block runs and prints what the page
says, and the page names the whole contract."""
from __future__ import annotations

from tests.docs_blocks import expected_output, run_block, runnable_blocks, section


def _paid_section() -> str:
    return section("paid-tiers")


def test_the_section_names_the_contract():
    for name in ("max_concurrency", "max_rate", "missing_ttl", "Throttled", "stats()", "calls.<tier>",
                 "wait_ms.<tier>", "limit_group", "benchmarks.paid_tier"):
        assert name in _paid_section()


def test_runnable_example():
    blocks = runnable_blocks("paid-tiers")
    assert len(blocks) == 1
    printed = run_block(blocks[0], "docs paid tiers example")
    expected = expected_output(blocks[0])
    assert len(expected) == 5
    assert [line.rstrip() for line in printed] == [line.rstrip() for line in expected]
