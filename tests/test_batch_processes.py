"""``get_many(processes=N)``: spawned worker processes, results in input order, duplicates and invalid keys as in
one process, bytes in flight bounded by the read-ahead."""
from __future__ import annotations

import hashlib
import itertools

import pytest

from bitstore import LocalRaw, Sha1Store

from .test_batch import CountingKeys


@pytest.fixture
def local(tmp_path):
    raw = LocalRaw(str(tmp_path))
    blobs = {}
    for i in range(60):
        data = hashlib.sha256(str(i).encode()).digest() * (1 + i % 5)
        key = hashlib.sha1(data).hexdigest()
        (tmp_path / key).write_bytes(data)
        blobs[key] = data
    return Sha1Store(raw, str(tmp_path) + "/"), blobs


def test_processes_answer_like_one_process_in_order(local):
    store, blobs = local
    keys = list(blobs)
    mixed = keys[:20] + ["0" * 40, "nope", None, keys[0].upper(), keys[0]] + keys[20:] + keys[:5]
    one = [(r.key, r.status, r.data, r.source, r.error) for r in store.get_many(mixed, max_workers=4)]
    spread = [(r.key, r.status, r.data, r.source, r.error)
              for r in store.get_many(mixed, max_workers=4, processes=2)]
    assert spread == one
    assert [r[1] for r in spread].count("found") == len(keys) + 5 + 2
    # a lazy, longer iterable: read no further ahead than the chunks allow, results still in order
    many = CountingKeys(itertools.islice(itertools.cycle(keys), 2000))
    first = list(itertools.islice(store.get_many(many, max_workers=2, processes=2), 100))
    assert [r.key for r in first] == list(itertools.islice(itertools.cycle(keys), 100))
    assert all(r.data == blobs[r.key] for r in first)
    assert many.read <= 100 + 2 * 2 * 2 * 4


def test_processes_argument_is_checked(local):
    store, _ = local
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="processes"):
            store.get_many([], processes=bad)
