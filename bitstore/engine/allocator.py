"""glibc malloc tuning for many large blobs.

Every blob a worker thread receives becomes a new ``bytes`` object, i.e. a ``malloc`` of the blob's size. With
glibc's defaults, memory freed by the blobs already consumed is handed back to the kernel almost at once (the
trim threshold follows the mmap threshold, a few MiB), so the next blob lands on fresh pages: 256 page faults
per MiB, which cost more CPU than the network read itself (measured: 1 MiB blobs at 1.5-1.7 CPU-ms each with
the defaults, 0.8-1.0 with the tuning). ``tune_allocator`` raises both thresholds once per process, so blobs up
to 32 MiB reuse freed heap memory. The cost: the worker threads' heaps keep what they freed for the next
blobs instead of returning it (glibc's defaults already keep most of it once a process has freed a large
block). It is skipped when the user already tunes glibc through its environment variables, when
``BITSTORE_TUNE_MALLOC=0``, and off glibc.
"""
from __future__ import annotations

import logging
import os
import platform
import threading

__all__ = ["tune_allocator", "MMAP_THRESHOLD", "TRIM_THRESHOLD"]

logger = logging.getLogger(__name__)

#: Blobs below this are taken from malloc's heaps (glibc's ceiling for ``M_MMAP_THRESHOLD`` on 64-bit).
MMAP_THRESHOLD = 32 << 20
#: Freed memory a heap may keep before it is returned to the kernel.
TRIM_THRESHOLD = 128 << 20

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")

_lock = threading.Lock()
_tuned = False


def tune_allocator() -> bool:
    """Raise glibc's mmap and trim thresholds once per process; whether they are (now) raised by bitstore."""
    global _tuned
    if _tuned:
        return True
    with _lock:
        if _tuned:
            return True
        if not _wanted():
            return False
        try:
            import ctypes

            libc = ctypes.CDLL(None)
            mallopt = libc.mallopt
            mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
            # The order matters: setting the trim threshold alone would also freeze the mmap threshold at 128 KiB.
            ok = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
        except (OSError, AttributeError) as exc:
            logger.debug("malloc tuning unavailable: %s", type(exc).__name__)
            ok = False
        _tuned = ok
        return ok


def _wanted() -> bool:
    if os.environ.get("BITSTORE_TUNE_MALLOC", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    if any(name in os.environ for name in _USER_SETTINGS):
        return False
    return platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
