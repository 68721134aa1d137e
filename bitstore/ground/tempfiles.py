"""Temp files left by writes that died (``kill -9``, a power cut): found by name and age, removed.

A folder is swept when it is next written, at most once per ``SWEEP_INTERVAL`` seconds per folder and
process, so a busy folder is not listed on every write. Only files older than the given age are removed:
a younger one may belong to a write still running in another process.
"""
from __future__ import annotations

import contextlib
import os
import stat
import threading
import time

__all__ = ["sweep", "STALE_SECONDS", "SWEEP_INTERVAL"]

#: A temp file untouched for this long is taken as left by a write that died.
STALE_SECONDS = 3600.0
#: A folder is listed again only after this many seconds (per process).
SWEEP_INTERVAL = 600.0
_MAX_REMEMBERED = 4096

_lock = threading.Lock()
_last_sweep: dict[tuple, float] = {}  # (st_dev, st_ino, prefix, suffix) -> time.monotonic() of the last sweep


def sweep(folder: int | str, prefix: str, suffix: str, max_age: float, *, force: bool = False) -> list[str]:
    """Remove the files ``prefix*suffix`` older than ``max_age`` seconds in ``folder`` (a descriptor of an open
    folder, or a path); returns their names. Errors (a file already gone, no permission) are ignored: sweeping
    never fails a write. Unless ``force``, a folder swept less than ``SWEEP_INTERVAL`` ago is skipped."""
    try:
        info = os.stat(folder)
    except OSError:
        return []
    key, now = (info.st_dev, info.st_ino, prefix, suffix), time.monotonic()
    with _lock:
        last = _last_sweep.get(key)
        if not force and last is not None and now - last < SWEEP_INTERVAL:
            return []
        if len(_last_sweep) >= _MAX_REMEMBERED:
            _last_sweep.clear()
        _last_sweep[key] = now
    dir_fd, where = (folder, None) if isinstance(folder, int) else (None, folder)
    removed = []
    cutoff = time.time() - max_age
    with contextlib.suppress(OSError), os.scandir(folder) as entries:  # scandir dups a descriptor it is given
        for entry in entries:
            name = entry.name
            if not (name.startswith(prefix) and name.endswith(suffix) and len(name) > len(prefix) + len(suffix)):
                continue
            with contextlib.suppress(OSError):
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISREG(st.st_mode) and st.st_mtime < cutoff:
                    os.unlink(name if where is None else os.path.join(where, name), dir_fd=dir_fd)
                    removed.append(name)
    return removed
