"""A run's results: Markdown tables (printed) and ONE results file per run, ``benchmarks/results/<time>.json``.

The results file holds the machine (cores, CPU, Python, platform, load average before and after), the date, the
versions of every package measured, the command, every case in the shape of ``docs/benchmarks/results.json`` (per
contender: the median round, the slowest and fastest, every round, and what it is compared with: ``vs``, the median
of the per-round ratios and their spread), the raw rows and the targets. ``write_results`` also draws one PNG per
case into ``benchmarks/results/<time>/`` (``benchmarks/plots.py``); ``python -m benchmarks.page --add`` publishes
a run's cases to the docs."""
from __future__ import annotations

import json
import os
import re
import statistics
import time
from importlib import metadata

from .measure import Row

__all__ = ["markdown", "write_results", "RESULTS_DIR", "docs_cases", "versions", "case_id"]

#: The packages whose versions a results file records (those measured or measuring).
PACKAGES = ("bitstore-tiered", "obstore", "boto3", "botocore", "google-cloud-storage", "apache-beam", "pyarrow",
            "pyspark", "ray", "ultima", "epic-bitstore", "matplotlib")

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
        f"load average before the run {machine['load_avg_1_5_15']}, after {machine.get('load_avg_after')}.",
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


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def case_id(name: str) -> str:
    """``s3 16 KiB 20ms, 20,000 keys`` -> ``s3-16kib-20ms-20000-keys``."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9]+", "-", name.lower().replace(",", ""))).strip("-")


def _machine_line(machine: dict) -> str:
    load = machine.get("load_avg_1_5_15")
    after = machine.get("load_avg_after")
    text = f"{machine['cores']} cores, {machine['cpu']}, {machine['python']}, {machine['platform']}"
    if load:
        text += f" (load average {' / '.join(map(str, load))} before"
        text += f", {' / '.join(map(str, after))} after)" if after else ")"
    return text


def _vs(row: Row, against: Row | None, label: str) -> dict | None:
    """``row`` over ``against`` round by round (they ran back to back in each round), or their medians."""
    if against is None or not (row.ok and against.ok) or row is against:
        return None
    a = row.extra.get("rounds_blobs_per_s") or [row.blobs_per_s]
    b = against.extra.get("rounds_blobs_per_s") or [against.blobs_per_s]
    if len(a) != len(b):
        a, b = [row.blobs_per_s], [against.blobs_per_s]
    ratios = [x / y for x, y in zip(a, b) if y]
    if not ratios:
        return None
    return {"label": label, "median": round(statistics.median(ratios), 3), "min": round(min(ratios), 3),
            "max": round(max(ratios), 3), "rounds": [round(r, 3) for r in ratios]}


_OURS = ("bitstore", "beam ", "spark ", "ray ", "composite")


def _contender(row: Row, rows: list[Row]) -> dict:
    out: dict = {"name": row.contender, "reference": row.reference}
    if not row.ok:
        out.update(median=None, status=row.status, note=row.note)
        return out
    rounds = row.extra.get("rounds_blobs_per_s") or [round(row.blobs_per_s)]
    out.update(median=round(row.blobs_per_s), min=min(rounds), max=max(rounds), rounds=rounds,
               cpu_ms_per_blob=round(row.cpu_ms_per_blob, 3), mb_per_s=round(row.mb_per_s, 1), n=row.n)
    if row.server_cpu_pct is not None:
        out["server_cpu_percent"] = round(row.server_cpu_pct)
    for key in ("startup_s", "wall_s", "phase", "bundles"):
        if key in row.extra:
            out[key] = row.extra[key]
    against_name = row.extra.get("compare_with")
    against = next((r for r in rows if r.contender == against_name), None) if against_name else \
        next((r for r in rows if r.reference and r.ok), None)
    if against is not None and against is not row:
        ours, theirs = (row, against) if row.contender.startswith(_OURS) else (against, row)
        vs = _vs(ours, theirs, f"{ours.contender} ÷ {theirs.contender}")
        if vs:
            out["vs"] = vs
    return out


def docs_cases(machine: dict, command: str, date: str, cases: list[dict], rows: list[Row]) -> list[dict]:
    """The run's cases in the shape of ``docs/benchmarks/results.json`` (what the plots and the page read)."""
    out = []
    for case in cases:
        case_rows = [r for r in rows if r.case == case["name"]]
        out.append({**case, "id": case.get("id") or case_id(case["name"]), "date": date,
                    "machine": _machine_line(machine), "unit": "blobs/s", "command": command,
                    "contenders": [_contender(r, case_rows) for r in case_rows]})
    return out


def write_results(payload: dict, directory: str = RESULTS_DIR, plots: bool = True) -> str:
    """Write the run's one results file, ``<stamp>.json``, and its charts into ``<stamp>/``; returns the file."""
    os.makedirs(directory, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = os.path.join(directory, f"{stamp}.json")
    with open(path, "w") as f:
        f.write(json.dumps(payload, indent=1, default=str, ensure_ascii=False))
    if plots and payload.get("cases"):
        try:
            from pathlib import Path

            from .plots import plot_case
        except ImportError as exc:  # matplotlib missing: the file is the result; charts can be drawn later
            print(f"no charts ({exc}); draw them with: python benchmarks/plots.py {path} <folder>")
        else:
            charts = Path(directory) / stamp
            charts.mkdir(exist_ok=True)
            for case in payload["cases"]:
                plot_case(case, charts)
    return path
