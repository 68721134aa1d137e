"""``FetchResult``: one key's answer, as the batch engine (``bitstore.engine.batch``) and the stores produce it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from .errors import short

__all__ = ["FetchResult", "Status"]

Status = Literal["found", "missing", "invalid", "failed"]


@dataclass(frozen=True, slots=True)
class FetchResult:
    """One key's outcome. ``source`` names the tier that served it; ``cached`` tells whether the blob
    was written back to a cache tier (None when no write-back was due)."""

    key: Any
    data: bytes | memoryview | None  # a memoryview only from get_many(views=True)
    status: Status
    source: str | None = None
    error: str | None = None
    cached: bool | None = None

    @property
    def ok(self) -> bool:
        return self.status == "found"

    def __repr__(self) -> str:
        body = "None" if self.data is None else f"<{len(self.data):,} bytes>"
        extra = "".join(
            [f", source={self.source!r}" if self.source else "", f", error={self.error!r}" if self.error else ""]
        )
        key = short(self.key, 60)
        return f"FetchResult(key={key!r}, status={self.status!r}, data={body}{extra})"
