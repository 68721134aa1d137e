"""GSRaw specifics against fake-gcs-server: emulator detection, credentials forms, secrets, missing SDK."""
from __future__ import annotations

import pickle
import sys

import pytest

from bitstore import StoreNotAvailable
from bitstore.backends.gcs import GSRaw

TOKEN = "ya29.user-token-5e0c1b"


def test_storage_emulator_host_alone_means_anonymous(gcs):
    gcs.create_bucket("bkt")
    uri = gcs.put("bkt", "k", b"data")
    raw = GSRaw(transport="sdk")  # no endpoint: STORAGE_EMULATOR_HOST (set by the fixture) is used
    assert raw.emulator == gcs.endpoint
    assert raw.get(uri) == b"data"
    assert type(raw.client._credentials).__name__ == "AnonymousCredentials"


@pytest.mark.parametrize("transport", ["sdk", "fast"])
def test_anonymous(gcs, transport):
    gcs.create_bucket("bkt")
    uri = gcs.put("bkt", "k", b"public")
    assert GSRaw.anonymous(endpoint=gcs.endpoint, transport=transport).get(uri) == b"public"


def test_credentials_object_is_used_and_its_token_travels_only_if_given(gcs):
    from google.oauth2.credentials import Credentials

    gcs.create_bucket("bkt")
    uri = gcs.put("bkt", "k", b"data")
    raw = gcs.raw(credentials=Credentials(token=TOKEN), project="proj", transport="sdk")
    assert raw.get(uri) == b"data"
    assert raw.client._credentials.token == TOKEN
    assert TOKEN not in repr(raw) and raw.project == "proj"
    clone = pickle.loads(pickle.dumps(raw))  # a token the user passed is their credential: it travels
    assert clone.get(uri) == b"data"


def test_token_obtained_later_is_not_pickled(gcs):
    from google.oauth2.credentials import Credentials

    creds = Credentials(token=None, refresh_token="refresh-secret-11", client_id="id", client_secret="cs",
                        token_uri="http://127.0.0.1:9/token")
    raw = gcs.raw(credentials=creds, project="proj", transport="sdk")
    raw.client._credentials.token = "ya29.obtained-by-refresh"  # as a refresh in this process would
    assert creds.token is None  # the client refreshes its own copy, never the user's object
    blob = pickle.dumps(raw)
    assert b"ya29.obtained-by-refresh" not in blob
    assert pickle.loads(blob).credentials.token is None


def test_a_refreshed_token_replacing_the_users_is_not_pickled(gcs):
    """Credentials passed with a token (the user's, which travels) and a refresh token: once this process
    refreshes, the pickle still carries the user's token, never the one obtained here."""
    from google.oauth2.credentials import Credentials

    gcs.create_bucket("bkt")
    uri = gcs.put("bkt", "k", b"data")
    creds = Credentials(token=TOKEN, refresh_token="refresh-secret-12", client_id="id", client_secret="cs",
                        token_uri="http://127.0.0.1:9/token")
    raw = gcs.raw(credentials=creds, project="proj", transport="sdk")
    assert raw.get(uri) == b"data"
    raw.client._credentials.token = "ya29.refreshed-in-this-process"
    blob = pickle.dumps(raw)
    assert b"ya29.refreshed-in-this-process" not in blob
    clone = pickle.loads(blob)
    assert clone.credentials.token == TOKEN and clone.get(uri) == b"data"


def test_project_comes_from_the_credentials():
    from google.auth.credentials import AnonymousCredentials

    creds = AnonymousCredentials()
    creds.project_id = "from-credentials"
    assert GSRaw(creds).project == "from-credentials"
    assert GSRaw(creds, project="explicit").project == "explicit"


def test_bad_service_account_path_is_unavailable(gcs, tmp_path):
    raw = gcs.raw(credentials=str(tmp_path / "missing.json"))
    with pytest.raises(StoreNotAvailable, match="service-account file"):
        raw.get("gs://bkt/k")
    assert str(tmp_path) not in str(StoreNotAvailable(raw, "x"))


def test_no_default_credentials_is_unavailable(monkeypatch, tmp_path):
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "none.json"))
    with pytest.raises(StoreNotAvailable):
        GSRaw(transport="sdk").get("gs://bkt/k")


def test_sdk_missing_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "google.cloud.storage", None)
    with pytest.raises(ImportError, match=r"pip install 'bitstore-tiered\[gcp\]'"):
        GSRaw.anonymous().get("gs://bkt/k")


def test_constructor_rejects_bad_arguments():
    with pytest.raises(ValueError):
        GSRaw(transport="warp")
    GSRaw(42)  # builds, as in the original, and answers StoreNotAvailable on use (tests/test_compat.py)
