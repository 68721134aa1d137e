"""S3Raw specifics against moto: credentials forms, the access-test hook, rejected credentials, secrets."""
from __future__ import annotations

import logging
import pickle
import subprocess
import sys

import pytest

from bitstore import FetchFailed, StoreNotAvailable
from bitstore.backends.s3 import S3Raw

KEY_ID = "AKIAINLINEKEYID00001"
SECRET = "inline-secret-4f1d9c0a"
INLINE = {"aws_access_key_id": KEY_ID, "aws_secret_access_key": SECRET, "region_name": "us-east-1"}


class RejectsKey(S3Raw):
    """An access test that refuses one key id (as a stricter, user-written check would)."""

    refused = KEY_ID
    calls = 0

    def _test_access(self, client):
        type(self).calls += 1
        return client._request_signer._credentials.access_key != self.refused


def _access_key(raw: S3Raw) -> str:
    return raw.client._request_signer._credentials.access_key


def test_inline_dict_credentials_work_and_stay_out_of_reprs_and_errors(s3):
    s3.create_bucket("bkt")
    uri = s3.put("bkt", "k", b"data")
    raw = s3.raw(credentials=INLINE)
    assert raw.get(uri) == b"data"
    assert _access_key(raw) == KEY_ID
    with pytest.raises(Exception) as info:
        raw.get("s3://bkt/absent")
    for text in (repr(raw), str(raw.name), str(info.value)):
        assert SECRET not in text and KEY_ID not in text
    clone = pickle.loads(pickle.dumps(raw))  # inline credentials travel to workers
    assert clone.get(uri) == b"data" and _access_key(clone) == KEY_ID


def test_list_moves_past_options_that_do_not_resolve(s3):
    s3.create_bucket("bkt")
    uri = s3.put("bkt", "k", b"data")
    raw = s3.raw(credentials=[{"profile_name": "no-such-profile"}, INLINE])
    assert raw.get(uri) == b"data"
    assert _access_key(raw) == KEY_ID


def test_list_moves_past_options_the_access_test_refuses(s3):
    s3.create_bucket("bkt")
    uri = s3.put("bkt", "k", b"data")
    other = {**INLINE, "aws_access_key_id": "AKIAOTHERKEYID000002"}
    raw = RejectsKey([INLINE, other], endpoint_url=s3.endpoint_url)
    assert raw.get(uri) == b"data"
    assert _access_key(raw) == "AKIAOTHERKEYID000002"


def test_no_usable_credentials_is_unavailable_fast_and_without_secrets(s3, caplog):
    RejectsKey.calls = 0
    raw = RejectsKey([INLINE], endpoint_url=s3.endpoint_url)
    with caplog.at_level(logging.DEBUG):
        for _ in range(3):
            with pytest.raises(StoreNotAvailable) as info:
                raw.get("s3://bkt/k")
        results = list(raw.get_many(["s3://bkt/a", "s3://bkt/b"], progress=False))
    assert RejectsKey.calls == 1  # the failure is remembered, not re-probed for every blob
    assert [r.status for r in results] == ["failed", "failed"]
    assert "access test failed" in str(info.value)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert SECRET not in logged and SECRET not in str(info.value)


def test_missing_credentials_is_unavailable(s3, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(StoreNotAvailable, match="no credentials found"):
        s3.raw().get("s3://bkt/k")


@pytest.mark.parametrize("transport", ["sdk", "fast"])
def test_anonymous_reads_without_credentials(s3, monkeypatch, transport):
    s3.create_bucket("public")
    s3.client.put_object(Bucket="public", Key="k", Body=b"open data", ACL="public-read")
    uri = "s3://public/k"
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    raw = S3Raw.anonymous(endpoint_url=s3.endpoint_url, transport=transport)
    assert raw.get(uri) == b"open data"
    assert raw.credentials == ["anonymous"]


@pytest.mark.parametrize("transport", ["sdk", "fast"])
def test_rejected_credentials_are_unavailable_and_not_retried(s3, fault_proxy, monkeypatch, transport):
    import moto.settings

    s3.create_bucket("bkt")
    uri = s3.put("bkt", "k", b"data")
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)  # moto now checks every signature
    counter = fault_proxy(s3.endpoint_url)  # no faults: it only counts requests
    raw = S3Raw(INLINE, endpoint_url=counter.url, transport=transport)
    raw._test_access = lambda client: True  # reach the data path with an unknown key
    with pytest.raises(StoreNotAvailable, match="credentials missing or rejected"):
        raw.get(uri)
    assert counter.stats["requests"] == 1
    assert SECRET not in str(raw.__dict__.get("name", ""))


def test_env_secrets_never_reach_a_pickle_or_an_error(s3, fault_proxy, monkeypatch):
    env_secret = "env-secret-7be2a8d1"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", env_secret)
    s3.create_bucket("bkt")
    uri = s3.put("bkt", "k", b"data")
    raw = s3.raw()
    assert raw.get(uri) == b"data"
    assert env_secret.encode() not in pickle.dumps(raw)
    failing = fault_proxy(s3.endpoint_url, rate=1.0, faults=["503"])
    with pytest.raises(FetchFailed) as info:
        s3.raw(endpoint_url=failing.url, retry=2).get(uri)
    assert env_secret not in str(info.value)


def test_sdk_missing_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "boto3", None)
    with pytest.raises(ImportError, match=r"pip install 'bitstore-tiered\[aws\]'"):
        S3Raw().get("s3://bkt/k")


def test_import_bitstore_loads_no_sdk():
    code = ("import sys, bitstore; bitstore.S3Raw; bitstore.GSRaw; "
            "heavy = [m for m in ('boto3', 'botocore', 'google.cloud.storage', 'obstore') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_constructor_rejects_bad_arguments():
    with pytest.raises(TypeError):
        S3Raw(42)
    with pytest.raises(ValueError):
        S3Raw(transport="warp")
    S3Raw([])  # builds, as in the original, and answers StoreNotAvailable on use (tests/test_compat.py)
