"""Pickled DoFns and handlers carry the recipe for a store, never the store a worker built from it."""
from __future__ import annotations

import hashlib
import pickle

import apache_beam as beam
import pytest

from beam_transforms import BitstoreEnrichmentHandler, EnrichWithBlobs, FetchBlobs

from .helpers import CANARY, KeyedAPI
from .pickles import assert_clean, run_bundle

DATA = b"served by the keyed API"
KEY = hashlib.sha1(DATA).hexdigest()
ENV = "BITSTORE_TEST_BEAM_API_KEY"


@pytest.fixture
def spec(tmp_path, monkeypatch):
    """A spec whose API tier gets its key from the environment (the library resolves it on the worker)."""
    monkeypatch.setenv(ENV, CANARY)
    (tmp_path / "api").mkdir()
    (tmp_path / "api" / KEY).write_bytes(DATA)
    return {"keys": "sha1", "tier": [
        {"type": "local", "prefix": f"{tmp_path / 'cache'}/", "role": "cache", "name": "cache"},
        {"type": "api", "class": "tests.beam.helpers:KeyedAPI", "folder": str(tmp_path / "api"),
         "env": {"api_key": ENV}},
    ]}


def _store_api(store) -> KeyedAPI:
    return next(s for s in store.sources if isinstance(s, KeyedAPI))


@pytest.mark.parametrize("transform", [FetchBlobs, EnrichWithBlobs])
def test_dofns_pickle_without_the_store_they_built(spec, transform):
    dofn = transform(spec)._dofn
    element = KEY if transform is FetchBlobs else {"sha1": KEY}
    out = run_bundle(dofn, [element])
    assert len(out) == 1 and DATA in (out[0].value if transform is FetchBlobs else out[0].value.values())
    assert _store_api(dofn._store).api_key == CANARY  # the library resolved the secret on this "worker"

    assert_clean(dofn, CANARY)
    copy = pickle.loads(pickle.dumps(dofn))
    assert copy._store is None
    assert [wv.value for wv in run_bundle(copy, [element])] == [wv.value for wv in out]


def test_enrichment_handler_pickles_without_the_store_it_opened(spec):
    handler = BitstoreEnrichmentHandler(spec, source_field="source")
    with handler:
        _, response = handler(beam.Row(sha1=KEY))
        assert response.blob == DATA and response.source == "keyed-api"
        assert _store_api(handler._store).api_key == CANARY
        assert_clean(handler, CANARY)
    assert CANARY not in repr(handler)


def test_a_spec_path_is_read_when_the_transform_is_built(tmp_path, spec):
    path = tmp_path / "store.toml"
    path.write_text(f'keys = "sha1"\n[[tier]]\ntype = "api"\nclass = "tests.beam.helpers:KeyedAPI"\n'
                    f'folder = "{tmp_path / "api"}"\nenv = {{ api_key = "{ENV}" }}\n')
    transform = FetchBlobs(str(path))
    path.unlink()  # the workers never need the file
    out = run_bundle(transform._dofn, [KEY.upper()])
    assert [wv.value for wv in out] == [(KEY, DATA)]
    assert_clean(transform._dofn, CANARY)
