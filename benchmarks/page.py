"""The benchmarks page, written from the results file: docs/benchmarks.md from docs/benchmarks/results.json.

    python -m benchmarks.page                     # rewrite the page's generated parts from the committed results
    python -m benchmarks.page --check             # exit 1 if the page is not what the results make (a test runs it)
    python -m benchmarks.page --add benchmarks/results/<run>.json [--ids a,b]   # publish a run's cases

The page is prose written by hand around parts that are generated: each case sits between
``<!-- generated: <case id> -->`` and ``<!-- /generated -->``, and is rewritten from the results (its title, the
machine, load and date, the command, a table, its chart). In a table every figure is the median round with the
slowest and fastest round in brackets, and every ratio says what it divides by what, like for like (the same keys,
server and round), as the median of its per-round ratios with their spread. ``--add`` copies a run's cases
(``make bench`` writes one results file per run, see ``benchmarks.report``) into the committed results, replacing
those of the same id, copies their charts and rewrites the page; a case the page does not place yet is listed, to
be placed by hand (a ``generated`` marker pair where it belongs).
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import sys
from pathlib import Path

__all__ = ["render_case", "render_page", "ratio_cell", "main"]

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGE = DOCS / "benchmarks.md"
RESULTS = DOCS / "benchmarks" / "results.json"
REGION = re.compile(r"<!-- generated: (?P<id>[\w.-]+) -->\n.*?<!-- /generated -->", re.S)
#: Rows that are bitstore's own (a ratio puts them first: "ours ÷ theirs").
OURS = ("bitstore", "get_many", "beam ", "spark ", "ray ", "composite", "FetchBlobs", "EnrichWithBlobs")


def _num(value: float | None, unit: str = "") -> str:
    if value is None:
        return ""
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:,.1f}"
    else:
        text = f"{value:,.2f}"
    return text + unit


def _spread(values: list[float] | None, unit: str = "") -> str:
    if not values or len(values) < 2:
        return ""
    return f" [{_num(min(values), unit)}-{_num(max(values), unit)}]"


def _ours(name: str) -> bool:
    return name.startswith(OURS)


def ratio_cell(row: dict, against: dict | None) -> str:
    """What this row is compared with, as ``A ÷ B: median [min-max]`` (ours over theirs), from the rounds when both
    rows have one per round (measured side by side), else from their medians (said so)."""
    given = row.get("vs")
    if given:  # computed when the run was made (a pair the case names)
        return f"{given['label']}: {_num(given['median'], 'x')}{_spread(given.get('rounds'), 'x')}"
    if against is None or against is row or row.get("median") is None or against.get("median") is None:
        return ""
    top, bottom = (row, against) if _ours(row["name"]) or not _ours(against["name"]) else (against, row)
    if _ours(row["name"]) and _ours(against["name"]):
        top, bottom = row, against
    label = f"{top['name']} ÷ {bottom['name']}"
    a, b = top.get("rounds") or [], bottom.get("rounds") or []
    if len(a) == len(b) and len(a) > 1:
        ratios = [x / y for x, y in zip(a, b) if y]
        return f"{label}: {_num(statistics.median(ratios), 'x')}{_spread(ratios, 'x')}"
    if not bottom["median"]:
        return ""
    return f"{label}: {_num(top['median'] / bottom['median'], 'x')} (medians; rounds not paired)"


def _rows_table(case: dict) -> list[str]:
    unit = case["unit"]
    rows = case["contenders"]
    reference = next((r for r in rows if r.get("reference")), None)
    has_cpu = any(r.get("cpu_ms_per_blob") is not None for r in rows)
    has_ratio = any(r.get("vs") for r in rows) or reference is not None
    head = ["contender", f"{unit}: median [slowest-fastest round]"]
    head += ["compared like for like (same keys, server, round): median of per-round ratios [spread]"] * has_ratio
    head += ["client CPU-ms per blob"] * has_cpu + ["rounds"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 2) + "---|"]
    for r in rows:
        name = f"**{r['name']}**" if r.get("reference") else r["name"]
        if r.get("median") is None:
            cells = [name, r.get("status", "not measured")] + [""] * has_ratio + [""] * has_cpu + [r.get("note", "")]
        else:
            value = _num(r["median"]) + _spread(r.get("rounds"))
            cells = [name, value]
            if has_ratio:
                cells.append("reference" if r is reference and not r.get("vs") else ratio_cell(r, reference))
            if has_cpu:
                cells.append(_num(r.get("cpu_ms_per_blob")))
            cells.append(str(len(r["rounds"])) if r.get("rounds") else "1")
        lines.append("| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |")
    return lines


def render_case(case: dict) -> str:
    """The generated part of one case: heading line, where and when, the table and the chart."""
    parts = [f"**{case['title']}**", "",
             f"Measured {case['date']} on {case['machine']}."
             + (f" Command: `{case['command']}`." if case.get("command") else "")]
    if case.get("summary"):
        parts += ["", case["summary"]]
    parts += [""] + _rows_table(case) + ["", f"![{case['id']}](benchmarks/{case['id']}.png)"]
    return "\n".join(parts)


def render_page(page: str, cases: list[dict]) -> str:
    """``page`` with every generated part rewritten from ``cases`` (a part naming no case is an error)."""
    by_id = {c["id"]: c for c in cases}

    def one(match: re.Match) -> str:
        case = by_id.get(match["id"])
        if case is None:
            raise SystemExit(f"the page places case {match['id']!r}, which the results do not have")
        return f"<!-- generated: {case['id']} -->\n{render_case(case)}\n<!-- /generated -->"

    return REGION.sub(one, page)


def placed(page: str) -> set[str]:
    return {m["id"] for m in REGION.finditer(page)}


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def add(results_file: Path, ids: list[str] | None) -> list[str]:
    """Copy a run's cases (and their charts, from the folder beside the file) into the committed results."""
    run = _load(results_file)
    committed = _load(RESULTS)
    chosen = [c for c in run["cases"] if not ids or c["id"] in ids]
    keep = {c["id"] for c in chosen}
    committed["cases"] = [c for c in committed["cases"] if c["id"] not in keep] + [
        {k: v for k, v in c.items() if k not in ("name", "kind")} for c in chosen]
    committed.setdefault("runs", [])
    committed["runs"] = [r for r in committed["runs"] if r.get("file") != results_file.name] + [{
        "file": results_file.name, "date": run.get("date"), "machine": run.get("machine"),
        "versions": run.get("versions"), "command": run.get("command"), "cases": sorted(keep)}]
    RESULTS.write_text(json.dumps(committed, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    charts = results_file.with_suffix("")
    for case_id in keep:
        chart = charts / f"{case_id}.png"
        if chart.exists():
            shutil.copyfile(chart, DOCS / "benchmarks" / chart.name)
    return sorted(keep)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.page", description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="exit 1 if the page differs from what the results make")
    p.add_argument("--add", type=Path, help="a results file of `make bench` whose cases to publish")
    p.add_argument("--ids", default="", help="with --add: only these case ids (comma separated)")
    args = p.parse_args(argv)
    if args.add:
        added = add(args.add, [x for x in args.ids.split(",") if x] or None)
        print(f"published {len(added)} cases: {', '.join(added)}")
    cases = _load(RESULTS)["cases"]
    page = PAGE.read_text(encoding="utf-8")
    new = render_page(page, cases)
    missing = sorted({c["id"] for c in cases} - placed(new))
    if args.check:
        if new != page:
            print("docs/benchmarks.md is not what docs/benchmarks/results.json makes: run python -m benchmarks.page")
            return 1
        if missing:
            print(f"cases not placed on the page: {', '.join(missing)}")
            return 1
        return 0
    if new != page:
        PAGE.write_text(new, encoding="utf-8")
        print(f"rewrote {PAGE.relative_to(ROOT)}")
    if missing:
        print(f"place these cases on the page (a `<!-- generated: id -->` / `<!-- /generated -->` pair): "
              f"{', '.join(missing)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
