"""The trimmed hit path of ``bitstore serve`` keeps every check: a name right under a ``LocalRaw`` root resolves as
``normpath`` would (and a symlink out of the root is still refused), a subclass's own key check is still asked,
and a local tier's calls are still counted."""
from __future__ import annotations

import hashlib
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bitstore import InvalidURI, LocalRaw, NotFoundInStore, Sha1Cache, Sha1Composite
from bitstore.serve.gateway import _accepts_and_canonical


@given(name=st.text(st.sampled_from("ab./\\ -x%"), min_size=1, max_size=8), absolute=st.booleans())
@settings(max_examples=300, deadline=None)
def test_the_lexical_path_is_normpath_inside_the_root(tmp_path_factory, name, absolute):
    root = str(tmp_path_factory.getbasetemp())
    raw = LocalRaw(root)
    uri = (raw.root + "/" + name) if absolute else name
    expected = os.path.normpath(os.path.join(raw.root, uri))
    inside = expected == raw.root or expected.startswith(raw.root + "/")
    if ".." in uri.split("/"):
        return  # resolved through the file system, as before
    try:
        got = raw._lexical_path(uri)
    except InvalidURI:
        assert not inside
    else:
        assert inside and got == expected


def test_a_symlink_out_of_the_root_is_still_refused(tmp_path):
    (tmp_path / "root").mkdir()
    (tmp_path / "secret").write_bytes(b"outside")
    os.symlink(tmp_path / "secret", tmp_path / "root" / "link")
    raw = LocalRaw(tmp_path / "root")
    with pytest.raises(InvalidURI):
        raw.get("link")
    with pytest.raises(InvalidURI):
        raw.get(str(tmp_path / "root" / "link"))


class OddKeys(Sha1Composite):
    """A composite with its own key check: only keys starting with "a"."""

    def is_valid(self, uri) -> bool:
        return super().is_valid(uri) and uri.strip().lower().startswith("a")


def test_a_subclass_key_check_is_still_asked(tmp_path):
    data = b"odd"
    key = hashlib.sha1(data).hexdigest()
    store = OddKeys().append_cache(Sha1Cache(LocalRaw(tmp_path), ""))
    store.cache.put(key, data)
    assert _accepts_and_canonical(store, "b" * 40) == (False, None)
    with pytest.raises(InvalidURI):
        store.get("b" * 40)
    plain = Sha1Composite().append_cache(Sha1Cache(LocalRaw(tmp_path), ""))
    assert _accepts_and_canonical(plain, " SHA1://" + key.upper()) == (True, key)
    assert _accepts_and_canonical(plain, "nope") == (False, None)
    assert plain.get(key.upper()) == data
    with pytest.raises(InvalidURI):
        plain.get("nope")


def test_a_local_tier_still_counts_hits_misses_and_corrupt_copies(tmp_path):
    data = b"counted"
    key = hashlib.sha1(data).hexdigest()
    store = Sha1Composite().append_cache(Sha1Cache(LocalRaw(tmp_path), ""))
    store.cache.put(key, data)
    (tmp_path / ("f" * 40)).write_bytes(b"not the blob of its key")
    assert store.get(key) == data
    for absent in ("0" * 40, "f" * 40):
        with pytest.raises(NotFoundInStore):  # a corrupt copy is not a copy
            store.get(absent)
    [snapshot] = store.stats().values()
    assert (snapshot.calls, snapshot.hits, snapshot.misses, snapshot.bytes) == (3, 1, 2, len(data))
    assert snapshot.latency_p50 is not None
