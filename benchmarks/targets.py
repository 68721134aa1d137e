"""The speed targets, checked against one run's rows (reported as measured, pass or miss).

A ratio target is judged on the median of its per-round ratios, and every round's ratio is reported with it.
"""
from __future__ import annotations

import statistics
from collections.abc import Iterable

from .measure import Row
from .remote import OBSTORE_BUFFER, OBSTORE_BYTES

__all__ = ["evaluate"]

EPIC, SDK_LOOP = "epic-bitstore", "SDK sequential loop"
GET_MANY, ENRICH = "bitstore get_many", "bitstore enrich_table"
GET_MANY_VIEWS = "bitstore get_many(views=True)"
SPARK, RAY = "spark enrich_dataframe", "ray enrich_dataset"


def _exact(rows: Iterable[Row], case: str, name: str) -> Row | None:
    return next((r for r in rows if r.case == case and r.contender == name and r.ok), None)


def _find(rows: Iterable[Row], case: str, prefix: str) -> Row | None:
    for row in rows:
        named = row.contender == prefix or row.contender.startswith(prefix + " ")  # not "get_many(views=True)"
        if row.case == case and named and not row.contender.endswith("[sdk]"):
            return row if row.ok else None
    return None


def _check(name: str, measured: float | list[float] | None, threshold: float, at_most: bool = False) -> dict:
    """``measured`` is one value, or a ratio's per-round values (the verdict is on their median)."""
    rounds = measured if isinstance(measured, list) else None
    value = statistics.median(rounds) if rounds else measured
    if value is None:
        verdict = "not measured"
    else:
        verdict = "met" if (value <= threshold if at_most else value >= threshold) else "missed"
    return {"target": name, "value": None if value is None else round(value, 3),
            "rounds": [round(r, 3) for r in rounds] if rounds else None,
            "threshold": f"{'<=' if at_most else '>='} {threshold}", "verdict": verdict}


def _rounds(row: Row) -> list[float]:
    return row.extra.get("rounds_blobs_per_s") or [row.blobs_per_s]


def _ratio(a: Row | None, b: Row | None) -> list[float] | None:
    """``a``'s blobs/s over ``b``'s, round by round: in each round the contenders ran back to back, so a
    round's ratio compares runs made seconds apart, under the same load from the rest of the machine."""
    if not (a and b):
        return None
    ra, rb = _rounds(a), _rounds(b)
    if len(ra) != len(rb):  # a contender stopped early: only the medians compare
        ra, rb = [a.blobs_per_s], [b.blobs_per_s]
    ratios = [x / y for x, y in zip(ra, rb) if y]
    return ratios or None


def evaluate(cases: list[dict], rows: list[Row]) -> list[dict]:
    """One entry per target and case: the measured value, the threshold and ``met``/``missed``/``not measured``."""
    out = []
    for case in cases:
        name, kind = case["name"], case["kind"]
        if kind == "remote":
            ref = _find(rows, name, GET_MANY)
            if case["size"] <= 64 * 1024 and case["delay_ms"] == 20:
                out.append(_check(f"{name}: get_many / original library", _ratio(ref, _find(rows, name, EPIC)), 5))
                out.append(_check(f"{name}: get_many / obstore", _ratio(ref, _exact(rows, name, OBSTORE_BUFFER)), 0.85))
                out.append(_check(f"{name}: get_many client CPU-ms per blob",
                                  ref.cpu_ms_per_blob if ref else None, 1.0, at_most=True))
            if case["size"] >= 1024 * 1024:  # like with like: bytes against bytes, buffers against buffers
                alternatives = [r for r in (_find(rows, name, SDK_LOOP), _find(rows, name, EPIC),
                                            _exact(rows, name, OBSTORE_BYTES)) if r]
                best = max(alternatives, key=lambda r: r.blobs_per_s, default=None)
                out.append(_check(f"{name}: get_many / best bytes alternative ({best.contender if best else '-'})",
                                  _ratio(ref, best), 0.9))
                out.append(_check(f"{name}: get_many(views=True) / {OBSTORE_BUFFER} (buffer as is)",
                                  _ratio(_exact(rows, name, GET_MANY_VIEWS), _exact(rows, name, OBSTORE_BUFFER)),
                                  0.9))
            out.append(_check(f"{name}: enrich_table / get_many", _ratio(_find(rows, name, ENRICH), ref), 0.9))
        elif kind == "in-flight":
            out += _in_flight_targets(case, rows, cases)
        elif kind == "processes":
            one = next((r for r in rows if r.case == name and r.reference and r.ok), None)
            two = next((r for r in rows if r.case == name and "2 processes" in r.contender and r.ok), None)
            out.append(_check(f"{name}: 2 processes / 1 process (reported, no target)", _ratio(two, one), 0.0))
        elif kind == "beam-scale":
            ref = _find(rows, name, GET_MANY)
            for transform in ("beam FetchBlobs", "beam EnrichWithBlobs"):
                out.append(_check(f"{name}: {transform.split()[1]} (steady state) / get_many",
                                  _ratio(_find(rows, name, transform), ref), 0.95))
        elif kind == "cold":
            for phase, threshold in (("first", 1.0), ("second", 1.1)):
                ours = _exact(rows, name, f"bitstore get_many, {phase} call")
                theirs = _exact(rows, name, f"obstore async, {phase} call")
                out.append(_check(f"{name}: get_many / obstore async, {phase} call of the process",
                                  _ratio(ours, theirs), threshold))
        elif kind == "engines":
            ref = _find(rows, name, GET_MANY)
            for engine in (SPARK, RAY):
                out.append(_check(f"{name}: {engine} / get_many", _ratio(_find(rows, name, engine), ref), 0.9))
        elif kind == "local":
            out.append(_check(f"{name}: get_many / plain threaded read loop",
                              _ratio(_find(rows, name, GET_MANY), _find(rows, name, "plain")), 0.8))
    return out


#: A client process using this share of one core or more is CPU-bound: its ceiling is its CPU, not N / latency.
CPU_BOUND = 0.9


def _in_flight_targets(case: dict, rows: list[Row], cases: list[dict]) -> list[dict]:
    """In flight: get_many >= 1.0x obstore async at the same N; >= 85% of N / latency unless the client's CPU is
    the limit; CPU per blob at N = 1,024 within 20% of N = 64."""
    name, n = case["name"], case["in_flight"]
    ours = next((r for r in rows if r.case == name and r.reference and r.ok), None)
    theirs = next((r for r in rows if r.case == name and r.contender.startswith("obstore async") and r.ok), None)
    out = [_check(f"{name}: get_many / obstore async", _ratio(ours, theirs), 1.0)]
    ceiling = n / (case["delay_ms"] / 1000)
    if ours is not None:
        busy = ours.cpu_s / ours.seconds if ours.seconds else 0.0
        check = _check(f"{name}: get_many / N-per-latency ceiling ({ceiling:,.0f}/s)",
                       [b / ceiling for b in _rounds(ours)], 0.85)
        if check["verdict"] == "missed" and busy >= CPU_BOUND:  # the target holds up to where the CPU limits
            check["verdict"] = "not judged"
            check["target"] += f" [client CPU-bound: {busy:.0%} of a core]"
        out.append(check)
    if n == 1024:
        base = next((c for c in cases if c["kind"] == "in-flight" and c["in_flight"] == 64), None)
        low = next((r for r in rows if base and r.case == base["name"] and r.reference and r.ok), None)
        value = ours.cpu_ms_per_blob / low.cpu_ms_per_blob if ours and low and low.cpu_ms_per_blob else None
        out.append(_check(f"{name}: get_many CPU-ms per blob / at 64 in flight", value, 1.2, at_most=True))
        # engine for engine: the event loop at 1,024 against the event loop at 64 (the row "[async]" where auto
        # did not pick it, else the reference)
        loop_low = next((r for r in rows if base and r.case == base["name"] and "[async]" in r.contender and r.ok),
                        None)
        loop_high = next((r for r in rows if r.case == name and "[async]" in r.contender and r.ok), ours)
        value = loop_high.cpu_ms_per_blob / loop_low.cpu_ms_per_blob \
            if loop_high and loop_low and loop_low.cpu_ms_per_blob else None
        out.append(_check(f"{name}: event-loop engine CPU-ms per blob / its own at 64 in flight", value, 1.2,
                          at_most=True))
    return out
