"""Property tests over arbitrary keys: stores raise only typed bitstore errors; get_many never raises."""
from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bitstore import (
    BitstoreError,
    InvalidURI,
    LocalRaw,
    MemoryRaw,
    Sha1Cache,
    Sha1Composite,
    Sha1Store,
)
from tests.core_helpers import DictAPI, DictStore, sha1

STATUSES = {"found", "missing", "invalid", "failed"}
HEX = "0123456789abcdefABCDEF"

sha1_like = st.text(HEX, min_size=38, max_size=42)
sha1_forms = st.builds(lambda prefix, digest: prefix + digest,
                       st.sampled_from(["", "sha1://", "SHA1://", "Sha1:/", "sha1:", " "]), sha1_like)
paths = st.lists(st.sampled_from(["..", ".", "a", "b", "", "~", "/", "link", "\x00", "%2e%2e", "file:"]),
                 max_size=6).map("/".join)
uris = st.builds(lambda scheme, path: scheme + path, st.sampled_from(["", "file://", "file:///", "mem://", "s3://"]),
                 paths)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.binary(max_size=50), st.text(max_size=60),
                    sha1_forms, uris)
keys = st.one_of(scalars, st.lists(scalars, max_size=3), st.dictionaries(st.text(max_size=3), scalars, max_size=2))

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

KNOWN = b"known blob"


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    base = tmp_path_factory.mktemp("props")
    root = base / "root"
    (root / "sub").mkdir(parents=True)
    (base / "outside").mkdir()
    (base / "outside" / "secret").write_bytes(b"secret")
    (root / "link").symlink_to(base / "outside")
    (root / "sub" / "a").write_bytes(b"inside")
    return root


def _sha1_composite() -> Sha1Composite:
    mem = MemoryRaw()
    mem.put(f"mem://files/{sha1(KNOWN)}", KNOWN)
    store = Sha1Composite()
    store.append_source(Sha1Store(mem, "mem://files/"))
    store.append_cache(Sha1Cache(MemoryRaw(max_bytes=1000), "mem://cache/"))
    store.append_source(DictStore(fail={"0" * 40: RuntimeError("tier down")}))
    store.append_source(DictAPI({sha1(b"api"): b"api", "f" * 40: b"corrupt"}))
    return store


def _stores(root):
    mem = MemoryRaw(max_bytes=10_000)
    mem.put("mem://a", b"a")
    return {
        "sha1-composite": _sha1_composite(),
        "local": LocalRaw(root, max_blob_bytes=1000),
        "memory": mem,
        "sha1-store": Sha1Store(LocalRaw(root), "sub/", verify=True),
    }


@pytest.mark.parametrize("kind", ["sha1-composite", "local", "memory", "sha1-store"])
def test_get_raises_only_typed_errors(root, kind):
    store = _stores(root)[kind]

    @PROPERTY
    @given(key=keys)
    def check(key):
        try:
            data = store.get(key)
        except BitstoreError as exc:
            assert str(exc)
            if not store.accepts(key):
                assert isinstance(exc, InvalidURI)
        else:
            assert isinstance(data, bytes)
            assert store.accepts(key)

    check()


@pytest.mark.parametrize("kind", ["sha1-composite", "local", "memory", "sha1-store"])
def test_get_many_never_raises_and_answers_every_key(root, kind):
    store = _stores(root)[kind]

    @PROPERTY
    @given(batch=st.lists(keys, max_size=12))
    def check(batch):
        results = list(store.get_many(batch, max_workers=4, progress=False))
        assert len(results) == len(batch)
        for key, result in zip(batch, results):
            assert result.key is key
            assert result.status in STATUSES
            assert (result.data is not None) == (result.status == "found")
            assert (result.source is not None) == (result.status == "found")
            assert (result.error is None) == (result.status == "found")

    check()


def test_sha1_composite_finds_what_it_holds_in_every_form():
    store = _sha1_composite()

    @PROPERTY
    @given(prefix=st.sampled_from(["", "sha1://", "SHA1://", "sHa1://"]), upper=st.lists(st.booleans(), min_size=40,
                                                                                         max_size=40))
    def check(prefix, upper):
        digest = "".join(c.upper() if u else c for c, u in zip(sha1(KNOWN), upper))
        assert store.get(prefix + digest) == KNOWN

    check()


def test_local_put_never_writes_outside_the_root(root):
    store = LocalRaw(root)
    outside = root.parent / "outside"

    @PROPERTY
    @given(key=keys)
    def check(key):
        try:
            store.put(key, b"written")
        except BitstoreError:
            pass
        assert sorted(os.listdir(outside)) == ["secret"]
        assert (outside / "secret").read_bytes() == b"secret"
        assert sorted(os.listdir(root.parent)) == ["outside", "root"]

    check()
