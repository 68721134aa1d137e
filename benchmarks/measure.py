"""Timing one contender: wall time, the client process's own CPU time, and a result row."""
from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

__all__ = ["Contender", "Fetcher", "Row", "Unavailable", "measure"]

#: Fetches every key once; returns (blobs found, bytes received).
Fetcher = Callable[[Sequence[str]], "tuple[int, int]"]


class Unavailable(Exception):
    """A contender that cannot run here (module not written yet, dependency missing); the reason is shown."""


@dataclass(frozen=True)
class Contender:
    """A named way of fetching blobs. ``build(target)`` returns a ``Fetcher`` (untimed set-up) or raises
    ``Unavailable``. ``warmup`` keys are fetched once, untimed, before the timed run (0 = start-up timed too);
    ``max_n`` caps the keys of slow sequential loops (rates stay per-second)."""

    name: str
    build: Callable[..., Fetcher]
    warmup: int = 64
    max_n: int | None = None
    reference: bool = False


@dataclass
class Row:
    """One contender on one case. Rates are over the timed run only."""

    case: str
    contender: str
    status: str = "ok"  # ok | not available | error
    note: str = ""
    n: int = 0
    found: int = 0
    nbytes: int = 0
    seconds: float = 0.0
    cpu_s: float = 0.0
    server_cpu_s: float | None = None
    requests: int | None = None
    reference: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def blobs_per_s(self) -> float:
        return self.found / self.seconds if self.ok and self.seconds > 0 else 0.0

    @property
    def mb_per_s(self) -> float:
        return self.nbytes / 1e6 / self.seconds if self.ok and self.seconds > 0 else 0.0

    @property
    def cpu_ms_per_blob(self) -> float:
        return 1000 * self.cpu_s / self.found if self.ok and self.found else 0.0

    @property
    def server_cpu_pct(self) -> float | None:
        if self.server_cpu_s is None or not self.seconds:
            return None
        return 100 * self.server_cpu_s / self.seconds

    def to_dict(self) -> dict:
        out = asdict(self)
        out.update(blobs_per_s=self.blobs_per_s, mb_per_s=self.mb_per_s, cpu_ms_per_blob=self.cpu_ms_per_blob,
                   server_cpu_pct=self.server_cpu_pct)
        return out


def measure(case: str, contender: Contender, target: object, keys: Sequence[str], warmup_keys: Sequence[str],
            size: int, server=None) -> Row:
    """Build the contender, warm it up, then time one pass over ``keys`` and check every blob came back whole."""
    row = Row(case, contender.name, reference=contender.reference)
    try:
        fetch = contender.build(target)
        if contender.warmup:
            fetch(list(warmup_keys[: contender.warmup]))
    except Unavailable as exc:
        row.status, row.note = "not available", str(exc)
        return row
    except Exception as exc:
        row.status, row.note = "error", _describe(exc)
        return row
    keys = list(keys[: contender.max_n] if contender.max_n else keys)
    before = server.stats() if server is not None else None
    cpu0, t0 = time.process_time(), time.perf_counter()
    try:
        found, nbytes = fetch(keys)
    except Exception as exc:
        row.status, row.note = "error", _describe(exc)
        return row
    row.seconds, row.cpu_s = time.perf_counter() - t0, time.process_time() - cpu0
    steady = getattr(fetch, "seconds", None)  # a fetcher that times its own steady state (Beam's start-up apart)
    if steady:
        row.extra["wall_s"] = round(row.seconds, 3)
        row.seconds = steady
    row.extra.update(getattr(fetch, "details", None) or {})
    worker_cpu_s = getattr(fetch, "worker_cpu_s", None)  # a fetcher with worker processes reports their CPU
    if worker_cpu_s is not None:
        row.cpu_s += worker_cpu_s
        row.extra["worker_cpu_s"] = round(worker_cpu_s, 3)
    row.n, row.found, row.nbytes = len(keys), found, nbytes
    if before is not None:
        after = server.stats()
        row.server_cpu_s = after["cpu_s"] - before["cpu_s"]
        routes = {k: v - before["counts"].get(k, 0) for k, v in after["counts"].items()}
        row.extra["routes"] = {k: v for k, v in routes.items() if v}
        row.requests = sum(row.extra["routes"].values())
    if found != len(keys) or nbytes != found * size:
        row.status = "error"
        row.note = f"got {found}/{len(keys)} blobs, {nbytes:,} bytes (expected {len(keys) * size:,})"
    return row


def _describe(exc: BaseException) -> str:
    where = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    place = f" at {where[0].filename.rsplit('/', 2)[-1]}:{where[0].lineno}" if where else ""
    return f"{type(exc).__name__}: {str(exc)[:300]}{place}"
