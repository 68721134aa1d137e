"""The S3 fast transport's credentials, region and endpoint read from the environment without boto3
(``backends/_awsenv``): whenever that answers, it is what boto3 itself resolves for the same store; whenever boto3
could read more (a config file, a profile, an expiring key...), it does not answer. Then the store's fast path at
work: listing and reading without importing boto3, a missing bucket still ``StoreNotAvailable``."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from unittest import mock

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bitstore import StoreNotAvailable
from bitstore.backends._awsenv import resolve
from bitstore.backends._client import EnvVar, resolve_env
from bitstore.backends.s3 import S3Raw, _is_aws

_CONFIG = os.path.join(tempfile.mkdtemp(prefix="bitstore-awsenv-"), "config")
with open(_CONFIG, "w") as f:
    f.write("[default]\nregion = ap-northeast-1\nendpoint_url = http://127.0.0.1:9999\n")
_NO_CONFIG = os.path.join(os.path.dirname(_CONFIG), "absent")
_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _maybe(name: str, *values: str, unset: int = 1):
    """A variable left unset (None, ``unset`` times as likely as each value) or set to one of ``values``."""
    return st.sampled_from([None] * unset + list(values)).map(lambda v: (name, v))


# Weighted so that most examples are ones the environment answers (and so are compared with boto3's answer).
_ENV = st.tuples(
    _maybe("AWS_ACCESS_KEY_ID", "", "AKIDFROMENV", "AKIDFROMENV", "AKIDFROMENV"),
    _maybe("AWS_SECRET_ACCESS_KEY", "", "env-secret", "env-secret", "env-secret"),
    _maybe("AWS_SESSION_TOKEN", "", "env-token"),
    _maybe("AWS_SECURITY_TOKEN", "", "env-old-token"),
    _maybe("AWS_DEFAULT_REGION", "", "eu-west-1", "us-gov-west-1", "cn-north-1", "us-iso-east-1", "eusc-de-east-1",
           "aws-global", "bad_region!", "us-isof-south-1"),
    _maybe("AWS_ENDPOINT_URL", "", "http://127.0.0.1:9000", "https://s3.eu-west-1.amazonaws.com", "ftp://x/",
           "http://[::1]:9000", unset=4),
    _maybe("AWS_ENDPOINT_URL_S3", "", "http://localhost:9001/", unset=4),
    _maybe("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true", "TRUE", "false", unset=3),
    _maybe("AWS_REGION", "ap-southeast-2", unset=2),  # boto3 reads AWS_DEFAULT_REGION only
    _maybe("AWS_PROFILE", "someone", unset=8),
    _maybe("AWS_CREDENTIAL_EXPIRATION", "2099-01-01T00:00:00Z", unset=8),
    _maybe("MY_KEY", "AKIDFROMVAR", unset=1),
    _maybe("MY_SECRET", "var-secret", unset=1),
    st.sampled_from([_CONFIG] + [_NO_CONFIG] * 6).map(lambda path: ("AWS_CONFIG_FILE", path)),
)
_OPTIONS = st.sampled_from([
    None, "anonymous", {"region_name": "ap-south-1"}, {"region_name": "us-isob-east-1"},
    {"aws_access_key_id": "AKIDARG", "aws_secret_access_key": "arg-secret"},
    {"aws_access_key_id": "AKIDARG", "aws_secret_access_key": "arg-secret", "aws_session_token": "arg-token",
     "region_name": "sa-east-1"},
    {"aws_access_key_id": "AKIDARG"}, {"aws_session_token": "lonely"}, {"profile_name": "x"},
    {"aws_access_key_id": EnvVar("MY_KEY"), "aws_secret_access_key": EnvVar("MY_SECRET")},
])
_ENDPOINTS = st.sampled_from([None, None, None, "http://127.0.0.1:9000", "https://minio.example:9000/", "https://s3.amazonaws.com",
                              "HTTP://Host:9/x/"])


def _boto3_answer(option, endpoint_url):
    """What the SDK path builds the fast transport from: (keys or None, region, endpoint obstore is given)."""
    if option == "anonymous":
        client = boto3.Session().client("s3", endpoint_url=endpoint_url, config=Config(signature_version=UNSIGNED))
        keys = None
    else:
        session = boto3.Session(**resolve_env(option or {}))
        client = session.client("s3", endpoint_url=endpoint_url)
        frozen = session.get_credentials().get_frozen_credentials()
        keys = (frozen.access_key, frozen.secret_key, frozen.token)
    resolved = client.meta.endpoint_url
    return keys, client.meta.region_name, None if _is_aws(resolved) else resolved


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_ENV, _OPTIONS, _ENDPOINTS)
def test_what_the_environment_gives_is_what_boto3_resolves(env, option, endpoint_url):
    environ = {"PATH": os.environ.get("PATH", ""), "HOME": os.path.dirname(_CONFIG),
               "AWS_SHARED_CREDENTIALS_FILE": _NO_CONFIG, "AWS_EC2_METADATA_DISABLED": "true",
               **{name: value for name, value in env if value is not None}}
    with mock.patch.dict(os.environ, environ, clear=True):
        ours = resolve(option, endpoint_url)
        if ours is None:
            return  # boto3 is asked, as before
        assert ours.credentials is None or all(isinstance(v, str) for v in ours.credentials[:2])
        endpoint = None if _is_aws(ours.endpoint) else ours.endpoint
        assert (ours.credentials, ours.region, endpoint) == _boto3_answer(option, endpoint_url)


@pytest.mark.parametrize("env, option, endpoint_url, answered", [
    ({"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}, None, "http://127.0.0.1:9000", True),
    ({"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_ENDPOINT_URL": "http://h:1"}, None, None, True),
    ({}, "anonymous", None, True),
    ({}, {"aws_access_key_id": "k", "aws_secret_access_key": "s", "region_name": "eu-west-1"}, None, True),
    ({"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_PROFILE": "p"}, None, None, False),
    ({"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_CONFIG_FILE": _CONFIG}, None, None, False),
    ({}, None, None, False),  # boto3's chain goes on: files, containers, instance roles
    ({"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_DEFAULT_REGION": "us-iso-east-1"}, None, None,
     False),
    ({"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}, [None], None, False),  # not one option
])
def test_the_environment_answers_only_when_boto3_would_read_nothing_else(env, option, endpoint_url, answered):
    environ = {"AWS_CONFIG_FILE": _NO_CONFIG, **env}
    assert (resolve(option, endpoint_url, environ) is not None) is answered


def test_a_list_of_options_or_a_users_access_test_goes_to_boto3(s3):
    assert S3Raw(endpoint_url=s3.endpoint_url)._env_resolved() is not None
    assert S3Raw([None, "anonymous"], endpoint_url=s3.endpoint_url)._env_resolved() is None

    class Strict(S3Raw):
        def _test_access(self, client):
            return True

    assert Strict(endpoint_url=s3.endpoint_url)._env_resolved() is None
    raw = S3Raw(endpoint_url=s3.endpoint_url)
    raw._test_access = lambda client: True
    assert raw._env_resolved() is None


_PROBE = """
import sys
from bitstore import Sha1Store, StoreNotAvailable
from bitstore.backends.s3 import S3Raw
store = Sha1Store(S3Raw(), "s3://bkt/blobs/")
keys = list(store.iter_keys())
assert len(keys) == 2, keys
assert store.get(keys[0]) is not None
try:
    list(Sha1Store(S3Raw(), "s3://no-such-bucket/blobs/").iter_keys())
except StoreNotAvailable as exc:
    assert "no-such-bucket" in str(exc), exc
else:
    raise AssertionError("a missing bucket listed")
print(sorted(m for m in ("boto3", "botocore") if m in sys.modules))
"""


def test_the_fast_path_lists_and_reads_without_boto3_and_a_missing_bucket_is_unavailable(s3):
    pytest.importorskip("obstore")
    import hashlib

    s3.create_bucket("bkt")
    for data in (b"one", b"two"):
        s3.put("bkt", f"blobs/{hashlib.sha1(data).hexdigest()}", data)
    env = {**os.environ, "AWS_ENDPOINT_URL": s3.endpoint_url, "PYTHONPATH": _REPO}
    done = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[-2] == "[]"


def test_a_missing_bucket_through_the_environment_path_is_unavailable_not_empty(s3, monkeypatch):
    pytest.importorskip("obstore")
    from bitstore import Sha1Store

    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint_url)
    raw = S3Raw(transport="fast")
    assert raw._env_resolved() is not None
    with pytest.raises(StoreNotAvailable, match="no-such-bucket"):
        list(Sha1Store(raw, "s3://no-such-bucket/blobs/").iter_keys())
