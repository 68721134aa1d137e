"""``benchmarks.paid_tier`` runs end to end (tiny N). No timing assertions: the speeds are in its report."""
from __future__ import annotations

import json

from benchmarks.paid_tier import main, run_cases


def test_cases_run_and_the_limited_case_stays_within_the_quota():
    cases = run_cases(n=40, quota=4, latency=0.002)
    assert [c.case for c in cases][0] == "bitstore, max_concurrency=4" and len(cases) == 4
    limited = cases[0]
    assert limited.errors == 0 and limited.answered_429 == 0 and limited.peak_at_once <= 4 and limited.calls == 40
    for case in cases[1:3]:  # bitstore without the concurrency limit still answers every key (429s retried)
        assert case.errors == 0 and case.calls == 40 + case.answered_429
    assert all(c.keys == 40 and c.keys_per_s > 0 for c in cases)


def test_main_writes_its_report(tmp_path, capsys):
    assert main(["--n", "16", "--quota", "2", "--latency", "0.001", "--output-dir", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "paid_tier.json").read_text())
    assert report["quota"] == 2 and len(report["cases"]) == 4
    assert "x quota" in capsys.readouterr().out
