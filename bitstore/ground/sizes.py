"""Byte sizes as people write them: ``1048576``, ``"512MiB"``, ``"20 GiB"``, ``"1TB"``, ``"1.5GiB"``.

Units: ``B``; decimal ``KB MB GB TB PB`` (powers of 1000); binary ``KiB MiB GiB TiB PiB`` (powers of 1024); any
case. A decimal number needs a unit other than ``B`` and is rounded down to whole bytes. Anything else (a
negative number, a float, a bare ``"K"`` or ``"G"``, whose base is ambiguous) is refused with ``ValueError``.
"""
from __future__ import annotations

import re
from typing import Any

__all__ = ["byte_size", "human_bytes", "UNITS"]

UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "pb": 10**15,
         "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40, "pib": 2**50}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*")
HINT = 'an integer number of bytes or a string with a unit ("512MiB", "20GiB", "1TB")'


def byte_size(value: Any) -> int:
    """``value`` (an int, or a string with an optional unit) as a number of bytes >= 0, else ``ValueError``."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"must not be negative, not {value!r}")
        return value
    if not isinstance(value, str):
        raise ValueError(f"must be {HINT}, not {type(value).__name__}")
    match = _SIZE.fullmatch(value)
    unit = match and UNITS.get((match.group(2) or "b").lower())
    if not unit:
        raise ValueError(f"must be {HINT}, not {value!r}")
    number = match.group(1)
    if "." not in number:
        return int(number) * unit
    if unit == 1:
        raise ValueError(f"a number of bytes is whole, not {value!r}")
    whole, fraction = number.split(".")
    return (int(whole + fraction) * unit) // 10 ** len(fraction)  # exact, no float rounding


def human_bytes(n: int) -> str:
    """``n`` bytes in binary units: ``512 B``, ``1.5 KiB``, ``20.0 GiB``."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{n:,} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
