"""Shared fixtures. Servers for cloud backends live in tests/servers/ and are started by session fixtures."""
from __future__ import annotations

import hashlib

import pytest

pytest_plugins = ["tests.servers.fixtures"]


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


@pytest.fixture
def blobs() -> dict[str, bytes]:
    """A few blobs of varied sizes keyed by their SHA1."""
    out = {}
    for i, size in enumerate([0, 1, 100, 4096, 70_000]):
        data = bytes((i * 7 + j) % 251 for j in range(size)) + str(i).encode()
        out[sha1(data)] = data
    return out
