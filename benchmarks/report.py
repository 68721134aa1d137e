"""Results as a Markdown table (printed, and written with the JSON to ``benchmarks/results/``)."""
from __future__ import annotations

import json
import os
import time

from .measure import Row

__all__ = ["markdown", "write_results", "RESULTS_DIR"]

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
_HEADER = ("| contender | blobs/s | MB/s | client CPU-ms/blob | bitstore ÷ this | server CPU | n | note |\n"
           "|---|---:|---:|---:|---:|---:|---:|---|")


def _fmt(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def _case_table(rows: list[Row]) -> str:
    ref = next((r for r in rows if r.reference and r.ok), None)
    lines = [_HEADER]
    for r in rows:
        if not r.ok:
            lines.append(f"| {r.contender} | {r.status} | | | | | | {r.note.replace('|', '/')} |")
            continue
        ratio = f"{ref.blobs_per_s / r.blobs_per_s:.2f}x" if ref and r.blobs_per_s else ""
        server = f"{r.server_cpu_pct:.0f}%" if r.server_cpu_pct is not None else ""
        name = f"**{r.contender}**" if r.reference else r.contender
        lines.append(f"| {name} | {_fmt(r.blobs_per_s)} | {_fmt(r.mb_per_s, 1)} | {_fmt(r.cpu_ms_per_blob, 2)} "
                     f"| {ratio} | {server} | {r.n:,} | {r.note.replace('|', '/')} |")
    return "\n".join(lines)


def markdown(machine: dict, command: str, cases: list[dict], rows: list[Row], targets: list[dict],
             extras: dict[str, str]) -> str:
    parts = [
        f"Command: `{command}`",
        "",
        f"Machine: {machine['cores']} cores, {machine['cpu']}, {machine['python']}, {machine['platform']}; "
        f"load average before the run {machine['load_avg_1_5_15']}.",
    ]
    for case in cases:
        parts += ["", f"### {case['title']}", "", _case_table([r for r in rows if r.case == case["name"]])]
    if targets:
        parts += ["", "### Targets", "",
                  "Ratios: the median of the per-round ratios (each round runs the contenders back to back).", "",
                  "| target | measured | per round | threshold | verdict |", "|---|---:|---|---|---|"]
        parts += [f"| {t['target']} | {'' if t['value'] is None else t['value']} "
                  f"| {' / '.join(f'{r:.2f}' for r in t.get('rounds') or [])} | {t['threshold']} "
                  f"| {t['verdict']} |" for t in targets]
    for title, text in extras.items():
        parts += ["", f"### {title}", "", "```", text.rstrip(), "```"]
    return "\n".join(parts) + "\n"


def write_results(payload: dict, text: str, directory: str = RESULTS_DIR) -> tuple[str, str]:
    """Write ``<stamp>.json`` and ``<stamp>.md`` (and ``latest.*`` copies); returns the two paths."""
    os.makedirs(directory, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    paths = []
    for ext, content in (("json", json.dumps(payload, indent=2, default=str)), ("md", text)):
        for name in (stamp, "latest"):
            path = os.path.join(directory, f"{name}.{ext}")
            with open(path, "w") as f:
                f.write(content)
        paths.append(os.path.join(directory, f"{stamp}.{ext}"))
    return paths[0], paths[1]
