"""The README's ``paid-tiers`` section: its ``# runnable`` example runs and prints what the README says."""
from __future__ import annotations

import contextlib
import io
import re

from tests.test_readme_core import _expected_output, section


def _paid_section() -> str:
    return section("paid-tiers")


def test_the_section_names_the_contract():
    for name in ("max_concurrency", "max_rate", "missing_ttl", "Throttled", "stats()", "calls.<tier>",
                 "wait_ms.<tier>", "limit_group", "benchmarks.paid_tier"):
        assert name in _paid_section()


def test_runnable_example():
    blocks = [b for b in re.findall(r"```python\n(.*?)```", _paid_section(), re.S) if b.startswith("# runnable\n")]
    assert len(blocks) == 1
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(blocks[0], "README.md paid tiers example", "exec"), {"__name__": "__readme__"})
    expected = _expected_output(blocks[0])
    assert len(expected) == 5
    assert [line.rstrip() for line in out.getvalue().splitlines()] == [line.rstrip() for line in expected]
