"""The original library's names and behaviours that bitstore keeps (see README "Differences from epic-bitstore").

The original, ``epic-bitstore==1.1.0``, is installed by the test extra: its module contents are compared with ours.
"""
from __future__ import annotations

import importlib
import logging
import pickle
import subprocess
import sys

import pytest

import bitstore
from bitstore import (
    BitstoreError,
    Composite,
    GSRaw,
    InvalidURI,
    NotFoundInStore,
    S3Raw,
    Sha1Cache,
    Sha1Composite,
    Sha1Store,
    StoreNotAvailable,
)
from bitstore.backends.memory import MemoryRaw
from tests.core_helpers import DictStore, sha1

epic = pytest.importorskip("epic.bitstore")


@pytest.mark.parametrize("module", ["", ".exc", ".aws", ".gcp", ".sha1", ".store", ".composite"])
def test_every_public_name_of_the_original_module_exists_here(module):
    original = importlib.import_module(f"epic.bitstore{module}")
    ours = importlib.import_module(f"bitstore{module}")
    helpers = {"Iterable", "class_logger", "to_list", "suppress", "os", "re", "hashlib", "ABC", "abstractmethod"}
    names = {n for n in dir(original) if not n.startswith("_")} - helpers
    missing = sorted(n for n in names if not hasattr(ours, n))
    assert missing == []
    for name in getattr(original, "__all__", []):
        assert name in ours.__all__ or module == "", name


def test_the_original_exception_classes():
    from bitstore.exc import InvalidURI as InvalidURI_
    from bitstore.exc import NotFoundInStore as NotFound_
    from bitstore.exc import ParameterizedException
    from bitstore.exc import StoreNotAvailable as Unavailable_

    assert (InvalidURI_, NotFound_, Unavailable_) == (InvalidURI, NotFoundInStore, StoreNotAvailable)
    assert ParameterizedException is BitstoreError
    for cls in (InvalidURI_, NotFound_, Unavailable_):
        assert issubclass(cls, ParameterizedException) and issubclass(cls, Exception)
    store = DictStore()
    # the original's constructor signatures and messages
    assert str(NotFound_(store, "k")) == "DictStore does not contain 'k'"
    assert str(InvalidURI_(store, "k", hint="h")) == "URI 'k' is invalid for DictStore (hint: h)"
    assert str(Unavailable_(store)) == "DictStore is not available"
    error = pickle.loads(pickle.dumps(NotFound_(store, "k")))
    assert type(error) is NotFound_ and str(error) == "DictStore does not contain 'k'"


def test_compat_modules_are_attributes_and_import_no_sdk():
    code = ("import sys, bitstore; bitstore.exc; bitstore.aws.S3Raw; bitstore.gcp.GSRaw; "
            "from bitstore.aws import ANONYMOUS; assert ANONYMOUS == 'anonymous'; "
            "heavy = [m for m in ('boto3', 'botocore', 'google.cloud.storage') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)
    assert bitstore.aws.S3Raw is S3Raw and bitstore.gcp.GSRaw is GSRaw


def test_s3_with_an_empty_credentials_list_builds_and_is_not_available():
    store = S3Raw([])
    for call in (lambda: store.get("s3://bucket/key"), lambda: store.put("s3://bucket/key", b"data")):
        with pytest.raises(StoreNotAvailable, match="no usable credentials"):
            call()
    composite = Composite()
    composite.append_source(store)
    composite.append_source(DictStore({"s3://bucket/key": b"from the next tier"}))
    assert composite.get("s3://bucket/key") == b"from the next tier"  # skipped, as the original skips it


@pytest.mark.parametrize("credentials", [{"these": "are not valid"}, 42, ["a list"]])
def test_gcs_with_unusable_credentials_builds_warns_and_is_not_available(credentials, caplog, monkeypatch):
    from bitstore.ground import log as _logging

    monkeypatch.setattr(_logging, "_seen", set())  # warnings are logged once per process and cause
    with caplog.at_level(logging.WARNING, logger="bitstore"):
        store = GSRaw(credentials, transport="sdk")
    assert any("will not be available" in r.getMessage() for r in caplog.records)
    for call in (lambda: store.get("gs://bucket/key"), lambda: store.put("gs://bucket/key", b"data")):
        with pytest.raises(StoreNotAvailable):
            call()
    [result] = store.get_many(["gs://bucket/key"])
    assert result.status == "failed" and "not available" in result.error


def test_a_key_read_from_a_file_with_its_newline_works(tmp_path):
    data = b"a line per key"
    raw = MemoryRaw()
    store = Sha1Composite()
    store.append_source(Sha1Store(raw, "mem://"))
    raw.put(f"mem://{sha1(data)}", data)
    (tmp_path / "keys.txt").write_text(f"{sha1(data)}\n{sha1(data).upper()}\r\n")
    with open(tmp_path / "keys.txt", newline="") as f:
        assert [store.get(line) for line in f] == [data, data]


def test_put_without_a_cache_and_put_into_a_cache_as_the_original():
    with pytest.raises(NotImplementedError, match="^Composite does not implement the 'put' method$"):
        Composite().put("k", b"v")
    store = Sha1Composite()
    store.append_cache(Sha1Cache(MemoryRaw(), "mem://c/"))
    assert store.put(sha1(b"v"), b"v") is True
    with pytest.raises(InvalidURI):
        store.put("not a sha1", b"v")
