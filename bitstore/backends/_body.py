"""Reading an SDK response body within the blob's deadline and size limit.

``read()`` on a socket file returns only when the whole body is in, so a body that trickles (a byte a second)
never trips the read-idle timeout and would hold a thread for hours. Bodies are read as they arrive instead
(``read1``: one receive at a time), and the deadline is checked between receives.
"""
from __future__ import annotations

from typing import Any

from ..ground.retry import Attempt
from ._errors import check_size, read_exactly

__all__ = ["read_body", "read_up_to"]

_CHUNK = 1 << 20


def read_body(raw: Any, length: int | None, attempt: Attempt, owner: Any, uri: Any, limit: int | None,
              decode_content: bool = False) -> bytes:
    """The whole body of urllib3 response ``raw``, checked against ``length`` (when announced) and ``limit``."""
    chunks = []
    size = 0
    read1 = raw.read1
    while True:
        chunk = read1(_CHUNK, decode_content=decode_content)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if limit is not None and size > limit:
            check_size(owner, uri, size, limit)
        attempt.check()
    return read_exactly(chunks[0] if len(chunks) == 1 else b"".join(chunks), length)


def read_up_to(raw: Any, limit: int, attempt: Attempt, decode_content: bool = True) -> bytes:
    """At most ``limit`` bytes of a body (an error message), read as they arrive within the deadline."""
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = raw.read1(limit - size, decode_content=decode_content)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        attempt.check()
    return b"".join(chunks)
