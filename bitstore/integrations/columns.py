"""Arrow columns of strings or bytes built from Python lists without ``pa.array``.

``pa.array(list)`` asks pandas whether the list is array-like, and so imports pandas (about 50 MiB of RSS)
into a process that never uses it. The fetch job builds every column of its output rows from lists; building
string and binary columns from their buffers instead keeps pandas out of ``bitstore fetch`` (and of an
engine's worker that does not load it itself). Other types still go through ``pa.array``.
"""
from __future__ import annotations

from array import array
from itertools import accumulate
from typing import Any

__all__ = ["array_of", "validity"]

_OFFSETS = {"string": "i", "binary": "i", "large_string": "q", "large_binary": "q"}


def array_of(values: list, kind: Any) -> Any:
    """``values`` (``str``/``bytes``/``None``; ``str`` encoded as UTF-8 for a binary type) as an Arrow array of
    ``kind``; ``pa.array(values, kind)`` for any other type."""
    import pyarrow as pa

    width = _width(kind)
    if width is None or not all(v is None or isinstance(v, (str, bytes)) for v in values):
        return pa.array(values, kind)
    data = [v.encode("utf-8") if isinstance(v, str) else v for v in values]
    offsets = array(width, accumulate((len(v) if v is not None else 0 for v in data), initial=0))
    if offsets[-1] >= 2 ** (8 * offsets.itemsize - 1):  # too long for 32-bit offsets: let Arrow say so
        return pa.array(values, kind)
    null_count = sum(v is None for v in data)
    bitmap = validity(data) if null_count else None
    body = pa.py_buffer(b"".join(v for v in data if v is not None))
    return pa.Array.from_buffers(kind, len(data), [bitmap, pa.py_buffer(offsets), body], null_count=null_count)


def _width(kind: Any) -> str | None:
    """The ``array`` typecode of ``kind``'s offsets, or None when it is not a plain string or binary type."""
    import pyarrow as pa

    for name, code in _OFFSETS.items():
        if kind == getattr(pa, name)():
            if array(code).itemsize == (4 if code == "i" else 8):
                return code
    return None


def validity(values: list) -> Any:
    """The validity bitmap of ``values`` (bit i set when value i is not None, least significant bit first)."""
    import pyarrow as pa

    bits = bytearray((len(values) + 7) // 8)
    for i, v in enumerate(values):
        if v is not None:
            bits[i >> 3] |= 1 << (i & 7)
    return pa.py_buffer(bytes(bits))
