"""Per-tier statistics of a composite: calls, outcomes, bytes, latency percentiles, time waiting on limits.

Recording is a few integer additions under a lock per tier; latencies go to a fixed histogram (8 linear
buckets per doubling of the microseconds, so p50/p95 are within ~6% of the true value) instead of samples.
A bounded tier (``max_bytes``) adds its ``Usage``, asked of its store when the snapshot is taken.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from html import escape
from typing import NamedTuple

from .sizes import human_bytes

__all__ = ["TierStats", "TierSnapshot", "Stats", "Usage"]

_BUCKETS_PER_DOUBLING = 8
_N_BUCKETS = 8 * 33  # 1 us .. ~8,600 s
_COUNTERS = ("calls", "hits", "misses", "failures", "throttled", "retries", "bytes", "cache_writes",
             "cache_write_failures")


class Usage(NamedTuple):
    """What a bounded store holds: ``bytes_used`` now, its bound ``max_bytes``, and the ``evictions`` it made
    (least recently used blobs removed to make room) in this process."""

    bytes_used: int
    max_bytes: int
    evictions: int


def _bucket(seconds: float) -> int:
    """8 linear steps per doubling of the microseconds: the top four bits (no logarithm on the hot path)."""
    micros = int(seconds * 1e6)
    if micros < 1:
        return 0
    doubling = micros.bit_length() - 1
    return min(_N_BUCKETS - 1, doubling * _BUCKETS_PER_DOUBLING + (((micros << 3) >> doubling) & 7))


def _bucket_value(index: int) -> float:
    """The middle of a bucket, in seconds."""
    doubling, step = divmod(index, _BUCKETS_PER_DOUBLING)
    return (2**doubling) * (1 + (step + 0.5) / _BUCKETS_PER_DOUBLING) / 1e6


class TierStats:
    """The live, thread-safe counters of one tier (``snapshot`` reads them)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        for name in _COUNTERS:
            setattr(self, name, 0)
        self.wait_seconds = 0.0
        self.histogram = [0] * _N_BUCKETS

    def hit(self, seconds: float, nbytes: int) -> None:
        """Record one call that served ``nbytes`` (the hot path: one lock, four additions)."""
        index = _bucket(seconds)
        with self._lock:
            self.calls += 1
            self.hits += 1
            self.bytes += nbytes
            self.histogram[index] += 1

    def call(self, outcome: str, seconds: float, nbytes: int = 0) -> None:
        """Record one call: ``outcome`` is "hit", "miss", "failure" or "throttled"."""
        if outcome == "hit":
            return self.hit(seconds, nbytes)
        index = _bucket(seconds)
        with self._lock:
            self.calls += 1
            self.histogram[index] += 1
            if outcome == "miss":
                self.misses += 1
            elif outcome == "throttled":
                self.throttled += 1
            else:
                self.failures += 1

    def retried(self, throttled: bool) -> None:
        """A backend retried inside one of our calls (each retry is one more call to the service)."""
        with self._lock:
            self.calls += 1
            self.retries += 1
            if throttled:
                self.throttled += 1

    def waited(self, seconds: float) -> None:
        if seconds > 0:
            with self._lock:
                self.wait_seconds += seconds

    def cache_write(self, ok: bool) -> None:
        with self._lock:
            if ok:
                self.cache_writes += 1
            else:
                self.cache_write_failures += 1

    def snapshot(self, name: str, usage: Usage | None = None) -> TierSnapshot:
        """The counters now, with percentiles of the calls counted (and the store's ``usage`` if bounded)."""
        with self._lock:
            counts = {key: getattr(self, key) for key in _COUNTERS}
            wait = self.wait_seconds
            histogram = tuple(self.histogram)
        return TierSnapshot.of(name, counts, wait, histogram, usage)

    def __getstate__(self):
        return {}  # statistics are per process: a pickled composite starts counting afresh

    def __setstate__(self, state):
        self.__init__()


def _percentile(histogram: tuple[int, ...], q: float) -> float | None:
    total = sum(histogram)
    if total <= 0:
        return None
    rank, seen = q * total, 0
    for index, count in enumerate(histogram):
        seen += count
        if seen >= rank and count:
            return _bucket_value(index)
    return None


@dataclass(frozen=True)
class TierSnapshot:
    """One tier's statistics. ``calls`` counts every call the composite made to the tier (retries after a
    throttling answer included); ``misses`` are "not found" answers; ``throttled`` calls were answered "slow
    down"; ``retries`` are the retries a backend made inside one call (counted in ``calls`` too, without a
    latency); ``failures`` are other errors; ``bytes`` were served by hits; latencies are in seconds (None
    before the first call); ``wait_seconds`` is the time calls spent waiting on the tier's limits or on a
    throttling back-off; ``cache_writes`` / ``cache_write_failures`` count write-backs into this tier. A bounded
    tier (``max_bytes``) also shows ``bytes_used`` (all the processes sharing it), ``max_bytes`` and
    ``evictions`` (made by this process); they are None for other tiers."""

    name: str
    calls: int = 0
    hits: int = 0
    misses: int = 0
    failures: int = 0
    throttled: int = 0
    retries: int = 0
    bytes: int = 0
    cache_writes: int = 0
    cache_write_failures: int = 0
    wait_seconds: float = 0.0
    latency_p50: float | None = None
    latency_p95: float | None = None
    bytes_used: int | None = None
    max_bytes: int | None = None
    evictions: int | None = None
    _histogram: tuple[int, ...] = ()

    @classmethod
    def of(cls, name: str, counts: dict, wait_seconds: float, histogram: tuple[int, ...],
           usage: Usage | None = None) -> TierSnapshot:
        bounded = {} if usage is None else usage._asdict()
        return cls(name=name, **counts, wait_seconds=wait_seconds, latency_p50=_percentile(histogram, 0.50),
                   latency_p95=_percentile(histogram, 0.95), _histogram=histogram, **bounded)

    @property
    def usage(self) -> Usage | None:
        return None if self.max_bytes is None else Usage(self.bytes_used, self.max_bytes, self.evictions)

    def minus(self, before: TierSnapshot | None) -> TierSnapshot:
        """What happened between ``before`` (an earlier snapshot of the same tier) and this one."""
        if before is None:
            return self
        counts = {key: getattr(self, key) - getattr(before, key) for key in _COUNTERS}
        histogram = tuple(a - b for a, b in zip(self._histogram, before._histogram))
        usage = self.usage  # bytes used and the bound are levels: kept; evictions are counted: subtracted
        if usage is not None and before.evictions is not None:
            usage = usage._replace(evictions=usage.evictions - before.evictions)
        return TierSnapshot.of(self.name, counts, self.wait_seconds - before.wait_seconds, histogram, usage)

    def as_dict(self) -> dict:
        out = asdict(self)
        del out["_histogram"]
        return out


_COLUMNS = [f.name for f in fields(TierSnapshot) if f.name != "_histogram"]
_BOUNDED = ("bytes_used", "max_bytes", "evictions")


class Stats(Mapping[str, TierSnapshot]):
    """Statistics of every tier of a composite, by tier name, in tier order. Renders as a table in Jupyter
    (``_repr_html_``) and as text (``str``); ``rows()`` gives plain dicts (e.g. for a DataFrame)."""

    def __init__(self, tiers: list[TierSnapshot]):
        self._tiers = {t.name: t for t in tiers}

    def __getitem__(self, name: str) -> TierSnapshot:
        return self._tiers[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._tiers)

    def __len__(self) -> int:
        return len(self._tiers)

    def rows(self) -> list[dict]:
        return [t.as_dict() for t in self._tiers.values()]

    @property
    def total_calls(self) -> int:
        return sum(t.calls for t in self._tiers.values())

    def __repr__(self) -> str:
        return f"Stats({', '.join(f'{n}: {t.calls} calls' for n, t in self._tiers.items())})"

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def lines(self) -> list[str]:
        """One line per tier that was used, for a terminal."""
        out = []
        for t in self._tiers.values():
            if not (t.calls or t.cache_writes or t.cache_write_failures):
                continue
            parts = [f"{t.calls:,} calls", f"{t.hits:,} hits", f"{t.misses:,} misses", f"{t.failures:,} failed"]
            if t.throttled:
                parts.append(f"{t.throttled:,} throttled")
            if t.latency_p50 is not None:
                parts.append(f"p50 {_ms(t.latency_p50)}, p95 {_ms(t.latency_p95)}")
            if t.wait_seconds:
                parts.append(f"{t.wait_seconds:.2f}s waiting on limits")
            if t.cache_writes or t.cache_write_failures:
                parts.append(f"{t.cache_writes:,} cache writes ({t.cache_write_failures:,} failed)")
            if t.max_bytes is not None:
                parts.append(f"{human_bytes(t.bytes_used)} of {human_bytes(t.max_bytes)} used, "
                             f"{t.evictions:,} evicted")
            out.append(f"{t.name}: " + ", ".join(parts))
        return out

    def _repr_html_(self) -> str:
        bounded = any(t.max_bytes is not None for t in self._tiers.values())
        columns = [c for c in _COLUMNS if bounded or c not in _BOUNDED]
        head = "".join(f"<th>{escape(c.replace('_', ' '))}</th>" for c in columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{escape(_cell(c, getattr(t, c)))}</td>" for c in columns) + "</tr>"
            for t in self._tiers.values()
        )
        return f"<table><caption>bitstore tier statistics</caption><thead><tr>{head}</tr></thead>" \
               f"<tbody>{body}</tbody></table>"


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1e6:.0f} us" if seconds < 0.001 else f"{seconds * 1000:.1f} ms"


def _cell(column: str, value) -> str:
    if column.startswith("latency"):
        return _ms(value)
    if column == "wait_seconds":
        return f"{value:.3f}"
    if value is None:
        return ""
    if column in ("bytes_used", "max_bytes"):
        return human_bytes(value)
    return f"{value:,}" if isinstance(value, int) else str(value)
