"""A listing keeps the names that are a store's canonical keys: the one-regex test of bitstore's own stores says
exactly what ``accepts(name) and canonical_key(name) == name`` says; a store with its own key methods is asked."""
from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bitstore import MemoryRaw, Sha1Store, Sha256Store
from bitstore.core.listed import Listed
from bitstore.core.listing import _valid, merged

_HEX = "0123456789abcdefABCDEF"
_names = st.one_of(
    st.text(alphabet=_HEX, min_size=38, max_size=66),
    st.text(alphabet=_HEX + " \n\tgx:/", min_size=38, max_size=70),
    st.builds(lambda h: f"sha1://{h}", st.text(alphabet=_HEX, min_size=40, max_size=40)),
    st.text(max_size=70),
)


@pytest.mark.parametrize("cls", [Sha1Store, Sha256Store])
@given(name=_names)
def test_the_fast_test_is_the_stores_own_key_methods(cls, name):
    store = cls(MemoryRaw(), "mem://x/")
    match = store.canonical_match()
    assert match is not None
    assert bool(match(name)) == (store.accepts(name) and store.canonical_key(name) == name)


def test_a_subclass_with_its_own_key_methods_is_asked():
    class Upper(Sha1Store):
        def canonical_key(self, key):
            return key.strip().upper()

    store = Upper(MemoryRaw(), "mem://x/")
    assert store.canonical_match() is None
    key = hashlib.sha1(b"a").hexdigest()
    names = [Listed(key), Listed(key.upper())]
    assert [e.name for e in _valid(store, names)] == [key.upper()]


def test_one_listing_is_not_merged_but_each_key_comes_once():
    entries = [Listed("a"), Listed("a"), Listed("b")]
    assert [e.name for e in merged([iter(entries)])] == ["a", "b"]
    assert list(merged([])) == []
    assert [e.name for e in merged([iter(entries[:1]), iter(entries[2:])])] == ["a", "b"]
