"""Cache upkeep: ``warm_many`` fetches keys into a composite's cache tier; ``verify_many`` re-hashes a tier's blobs.

Both run through the batch engine (threads, bounded window, one ``Outcome`` per key in input order, never
raising for one key) and hold no blob after its key is answered: ``verify_many`` streams each blob through
its key's hash (SHA1 or SHA-256) with ``open``, so a blob larger than memory is checked without being held whole.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ..ground.errors import InvalidDataFound
from .bulk import failure
from .hashed import family_of
from .sha1 import SHA1
from .store import Store

__all__ = ["Outcome", "warm_many", "verify_many", "WARM_STATUSES", "VERIFY_STATUSES"]

#: ``cached``: written to the cache now; ``present``: the cache tier already had it.
WARM_STATUSES = ("cached", "present", "missing", "invalid", "failed")
#: ``ok``: the bytes match the key; ``corrupt``: they do not (``error`` says what they hash to).
VERIFY_STATUSES = ("ok", "corrupt", "missing", "invalid", "failed")
_READ = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Outcome:
    """One key's result: ``status`` one of ``WARM_STATUSES`` or ``VERIFY_STATUSES``; ``source`` the tier that
    served the blob; ``size`` its bytes; ``error`` a one-line reason."""

    key: Any
    status: str
    source: str | None = None
    size: int | None = None
    error: str | None = None


def warm_many(store: Any, keys: Iterable[Any], *, max_workers: int = 64, progress: bool | None = None,
              total: int | None = None) -> Iterator[Outcome]:
    """Fetch each key through the composite ``store`` and make sure its cache tier holds it: a hit from any
    other tier is written to the cache (whatever that tier's ``cache_result``)."""
    from ..engine.batch import run_many

    cache = getattr(store, "cache", None)
    if cache is None:
        raise ValueError(f"{store.name} has no cache tier to warm")
    cache_name = _tier_name(store, cache)

    def warm(key: Any) -> Outcome:
        result = store._result(key)
        if result.status != "found":
            status = "failed" if result.status == "failed" else result.status
            return Outcome(key, status, error=result.error)
        size = len(result.data)
        if result.source == cache_name or result.cached is True:
            return Outcome(key, "present" if result.source == cache_name else "cached", result.source, size)
        if result.cached is False or not store._write_to_cache(bytes(result.data), store.canonical_key(key)):
            return Outcome(key, "failed", result.source, size, f"writing to the cache tier {cache.name} failed "
                                                               "(see the warning logged)")
        return Outcome(key, "cached", result.source, size)

    return run_many(store, keys, warm, lambda key, error: Outcome(key, "invalid", error=error),
                    max_workers=max_workers, progress=progress, total=total)


def verify_many(tier: Store, keys: Iterable[Any], *, max_workers: int = 16, progress: bool | None = None,
                total: int | None = None) -> Iterator[Outcome]:
    """Re-hash each key's blob in ``tier`` (a hash-keyed store: SHA1 or SHA-256, from the tier's family; SHA1 for
    a store of no family) as it streams: ``ok`` or ``corrupt``."""
    from ..engine.batch import run_many

    family = family_of(tier) or SHA1

    def verify(key: Any) -> Outcome:
        expected = tier.canonical_key(key)
        digest, size = family.new(), 0
        try:
            with tier.open(key) as f:
                while chunk := f.read(_READ):
                    digest.update(chunk)
                    size += len(chunk)
        except InvalidDataFound as exc:  # a tier that verifies on read already found it corrupt
            return Outcome(key, "corrupt", tier.name, error=str(exc))
        except Exception as exc:
            status, error = failure(tier, exc)
            return Outcome(key, status, error=error)
        actual = digest.hexdigest()
        if actual != expected:
            return Outcome(key, "corrupt", tier.name, size, f"data has {family.label} {actual}")
        return Outcome(key, "ok", tier.name, size)

    return run_many(tier, keys, verify, lambda key, error: Outcome(key, "invalid", error=error),
                    max_workers=max_workers, progress=progress, total=total)


def _tier_name(store: Any, tier: Store) -> str | None:
    """The name ``FetchResult.source`` gives ``tier`` in ``store`` (None when the cache is write-only)."""
    for candidate, name in zip(store.sources, store.tier_names):
        if candidate is tier:
            return name
    return None

