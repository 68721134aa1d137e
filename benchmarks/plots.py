"""One PNG per benchmark case from a results JSON file (``docs/benchmarks/results.json``'s shape).

    python benchmarks/plots.py docs/benchmarks/results.json docs/benchmarks/

Each case is drawn as horizontal bars of its contenders' medians, with a line from the slowest to the fastest
round where rounds were measured; the reference row (bitstore ``get_many``) is drawn darker. The title names the
case, the machine and the date of the measurement. Writes ``<case id>.png`` per case and prints their paths.
"""
from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

REFERENCE_COLOUR = "#1f4e79"
OTHER_COLOUR = "#8fb3d9"


def load(path: str | Path) -> list[dict]:
    """The cases of a results file: a list of cases, or an object with a ``cases`` list."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    cases = data["cases"] if isinstance(data, dict) else data
    for case in cases:
        for key in ("id", "title", "unit", "contenders", "machine", "date"):
            if key not in case:
                raise ValueError(f"case {case.get('id', '?')!r} has no {key!r}")
    return cases


def plot_case(case: dict, out_dir: Path) -> Path:
    """Draw one case into ``out_dir/<id>.png``; returns the path."""
    rows = [c for c in case["contenders"] if c.get("median") is not None]
    names = ["\n".join(textwrap.wrap(c["name"], 42)) for c in rows]
    medians = [c["median"] for c in rows]
    height = 1.6 + 0.45 * max(len(rows), 1) + 0.25 * sum(n.count("\n") for n in names)
    fig, ax = plt.subplots(figsize=(9, height), dpi=100)
    ys = range(len(rows))
    colours = [REFERENCE_COLOUR if c.get("reference") else OTHER_COLOUR for c in rows]
    ax.barh(list(ys), medians, color=colours)
    for y, c in zip(ys, rows):
        if c.get("min") is not None and c.get("max") is not None:
            ax.plot([c["min"], c["max"]], [y, y], color="black", linewidth=1)
        label_at = max(c["median"], c.get("max") or 0)
        ax.annotate(f"{c['median']:,.4g}", (label_at, y), xytext=(3, 0), textcoords="offset points",
                    va="center", fontsize=8)
    ax.set_yticks(list(ys), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(case["unit"] + ("  (bar: median; line: slowest to fastest round)"
                                  if any(c.get("rounds") for c in rows) else ""))
    if case.get("threshold") is not None:
        ax.axvline(case["threshold"], color="grey", linestyle="--", linewidth=1)
    title = textwrap.wrap(case["title"], 80) + textwrap.wrap(f"{case['machine']}, {case['date']}", 80)
    ax.set_title("\n".join(title), fontsize=9, loc="left")
    fig.tight_layout()
    out = out_dir / f"{case['id']}.png"
    fig.savefig(out)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", help="a results JSON file")
    parser.add_argument("out_dir", help="the folder to write one PNG per case into")
    args = parser.parse_args(argv)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for case in load(args.results):
        print(plot_case(case, out_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
