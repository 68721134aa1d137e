"""``GET /metrics``: the gateway's store statistics (``stats()``, per tier) and its own counters, in Prometheus'
text exposition format (version 0.0.4)."""
from __future__ import annotations

from typing import Any

__all__ = ["render"]

#: (TierSnapshot field, metric name, type, help)
_TIER = (
    ("calls", "bitstore_tier_calls_total", "counter", "Calls made to the tier."),
    ("hits", "bitstore_tier_hits_total", "counter", "Calls the tier answered with the blob."),
    ("misses", "bitstore_tier_misses_total", "counter", "Calls the tier answered \"not found\"."),
    ("failures", "bitstore_tier_failures_total", "counter", "Calls that failed (after the backend's retries)."),
    ("throttled", "bitstore_tier_throttled_total", "counter", "Calls answered \"slow down\"."),
    ("retries", "bitstore_tier_retries_total", "counter", "Retries a backend made inside a call."),
    ("bytes", "bitstore_tier_bytes_total", "counter", "Bytes served by the tier's hits."),
    ("cache_writes", "bitstore_tier_cache_writes_total", "counter", "Blobs written back into the tier."),
    ("cache_write_failures", "bitstore_tier_cache_write_failures_total", "counter", "Write-backs that failed."),
    ("wait_seconds", "bitstore_tier_wait_seconds_total", "counter", "Seconds calls waited on the tier's limits."),
)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n")


def _number(value: float) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


def render(store: Any, gateway: Any) -> str:
    """The metrics page: per tier of ``store`` (when it has ``stats()``), then the gateway's own."""
    lines: list[str] = []
    stats = getattr(store, "stats", None)
    snapshots = []
    if callable(stats):
        try:
            snapshots = [stats()[name] for name in stats()]
        except Exception:  # noqa: BLE001 - a store whose stats fail still serves; the page says so below
            snapshots = []
    for field, metric, kind, text in _TIER:
        lines += [f"# HELP {metric} {text}", f"# TYPE {metric} {kind}"]
        lines += [f'{metric}{{tier="{_label(s.name)}"}} {_number(getattr(s, field))}' for s in snapshots]
    lines += ["# HELP bitstore_tier_latency_seconds Latency of the tier's calls (p50, p95).",
              "# TYPE bitstore_tier_latency_seconds gauge"]
    for s in snapshots:
        for quantile, value in (("0.5", s.latency_p50), ("0.95", s.latency_p95)):
            if value is not None:
                lines.append(f'bitstore_tier_latency_seconds{{tier="{_label(s.name)}",quantile="{quantile}"}} '
                             f"{_number(value)}")
    lines += ["# HELP bitstore_http_responses_total Responses the gateway sent, by status.",
              "# TYPE bitstore_http_responses_total counter"]
    lines += [f'bitstore_http_responses_total{{status="{status}"}} {count}'
              for status, count in sorted(gateway.responses.items())]
    lines += ["# HELP bitstore_single_flight_joins_total Requests that shared a fetch already in flight.",
              "# TYPE bitstore_single_flight_joins_total counter",
              f"bitstore_single_flight_joins_total {gateway.single_flight_joins}",
              "# HELP bitstore_http_requests_in_flight Requests being answered.",
              "# TYPE bitstore_http_requests_in_flight gauge",
              f"bitstore_http_requests_in_flight {gateway.in_flight}"]
    return "\n".join(lines) + "\n"
