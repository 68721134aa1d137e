"""The local-disk store (``LocalRaw`` through ``Sha1Store.get_many``) against a plain threaded read loop."""
from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from .measure import Contender, Fetcher
from .server import blob_for

__all__ = ["write_blobs", "local_contenders", "THREADS"]

THREADS = 64


def write_blobs(root: str, n: int, size: int, seed: int = 0) -> list[str]:
    """Write ``n`` deterministic blobs as ``root/<sha1>``; returns the SHA1s."""
    keys = []
    for i in range(n):
        data = blob_for(seed, i, size)
        sha1 = hashlib.sha1(data).hexdigest()
        with open(os.path.join(root, sha1), "wb") as f:
            f.write(data)
        keys.append(sha1)
    return keys


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _plain_loop(root: str) -> Fetcher:
    def fetch(keys: Sequence[str]) -> tuple[int, int]:
        with ThreadPoolExecutor(max_workers=THREADS) as pool:
            sizes = [len(b) for b in pool.map(_read, [os.path.join(root, k) for k in keys])]
        return len(sizes), sum(sizes)

    return fetch


def _get_many(root: str) -> Fetcher:
    from bitstore import LocalRaw, Sha1Store

    store = Sha1Store(LocalRaw(root), "")

    def fetch(keys: Sequence[str]) -> tuple[int, int]:
        found = nbytes = 0
        for r in store.get_many(keys, max_workers=THREADS, progress=False):
            if r.data is not None:
                found += 1
                nbytes += len(r.data)
        return found, nbytes

    return fetch


def local_contenders() -> list[Contender]:
    return [
        Contender(f"plain open().read(), {THREADS} threads", _plain_loop),
        Contender("bitstore get_many (LocalRaw)", _get_many, reference=True),
    ]
