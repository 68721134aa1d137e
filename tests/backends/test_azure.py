"""AZRaw against Azurite: every endpoint configuration on every transport, credentials in their order, SAS and
anonymous access, secrets never shown, specs, and bad input."""
from __future__ import annotations

import io
import logging
import os
import pickle
import sys
from datetime import datetime, timedelta, timezone

import pytest

from bitstore import AZRaw, FetchFailed, NotFoundInStore, StoreNotAvailable, from_spec
from bitstore.ground.retry import RetryPolicy

RETRY = RetryPolicy(attempts=4, base_delay=0.001, max_delay=0.01)
WRONG_KEY = "d3Jvbmcta2V5LW5vdC10aGUtYWNjb3VudHM="
DATA = os.urandom(300_000)
TRANSPORTS = ("sdk", "fast", "auto")
#: How the store finds Azurite and its key.
CONFIGS = ("argument", "connection_string_argument", "AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT_KEY")


def make(azure_blob, monkeypatch, config: str, transport: str, key: str | None = None, **kwargs) -> AZRaw:
    server = azure_blob.server
    key = key or server.account_key
    connection = (f"DefaultEndpointsProtocol=http;AccountName={server.account_name};AccountKey={key};"
                  f"BlobEndpoint={server.endpoint_url};")
    kwargs = {"transport": transport, "retry": RETRY, **kwargs}
    if config == "argument":
        return AZRaw(server.account_name, account_key=key, endpoint_url=server.endpoint_url, **kwargs)
    if config == "connection_string_argument":
        return AZRaw(connection_string=connection, **kwargs)
    if config == "AZURE_STORAGE_CONNECTION_STRING":
        monkeypatch.setenv(config, connection)
        return AZRaw(**kwargs)
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", server.account_name)
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_KEY", key)
    return AZRaw(endpoint_url=server.endpoint_url, **kwargs)


@pytest.fixture
def container(azure_blob) -> str:
    azure_blob.create_container("ctr")
    azure_blob.put("ctr", "dir/blob one.bin", DATA)
    return "ctr"


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("config", CONFIGS)
def test_found_missing_and_missing_container(azure_blob, container, monkeypatch, config, transport):
    raw = make(azure_blob, monkeypatch, config, transport)
    assert raw.get("az://ctr/dir/blob one.bin") == DATA
    assert raw.get("abfs://ctr/dir/blob one.bin") == DATA and raw.get("azure://ctr/dir/blob one.bin") == DATA
    with pytest.raises(NotFoundInStore) as missing:
        raw.get("az://ctr/dir/absent")
    assert not isinstance(missing.value, FetchFailed)
    with pytest.raises(StoreNotAvailable, match="container 'no-such-container'|container of 'az://no-such-co"):
        raw.get("az://no-such-container/dir/blob one.bin")
    results = list(raw.get_many(["az://ctr/dir/blob one.bin", "az://ctr/absent", "az://no-such-container/x"],
                                progress=False))
    assert [r.status for r in results] == ["found", "missing", "failed"]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("config", CONFIGS)
def test_a_wrong_key_is_unavailable_not_retried_and_not_shown(azure_blob, container, monkeypatch, config,
                                                               transport, caplog):
    sleeps: list[float] = []
    raw = make(azure_blob, monkeypatch, config, transport, key=WRONG_KEY,
               retry=RetryPolicy(attempts=4, base_delay=0.001, sleep=sleeps.append))
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(StoreNotAvailable, match="credentials missing or rejected") as info:
            raw.get("az://ctr/dir/blob one.bin")
        with pytest.raises(StoreNotAvailable):
            raw.put("az://ctr/new", b"x")
        with pytest.raises(StoreNotAvailable):
            raw.head("az://ctr/dir/blob one.bin")
    assert sleeps == []
    for text in (str(info.value), repr(raw), str(raw), caplog.text):
        assert WRONG_KEY not in text and azure_blob.server.account_key not in text


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("config", CONFIGS)
def test_put_get_head_open(azure_blob, container, monkeypatch, config, transport):
    raw = make(azure_blob, monkeypatch, config, transport)
    raw.put("az://ctr/put/new.bin", b"written")
    assert raw.get("az://ctr/put/new.bin") == b"written"
    assert azure_blob.client.get_blob_client("ctr", "put/new.bin").download_blob().readall() == b"written"
    raw.put("az://ctr/put/new.bin", b"overwritten")  # a PUT replaces, as on S3 and GCS
    assert raw.get("az://ctr/put/new.bin") == b"overwritten"
    assert raw.head("az://ctr/dir/blob one.bin") == len(DATA)
    with pytest.raises(NotFoundInStore):
        raw.head("az://ctr/absent")
    with pytest.raises(StoreNotAvailable):
        raw.head("az://no-such-container/absent")
    with raw.open("az://ctr/dir/blob one.bin") as f:
        assert f.read(10) == DATA[:10]
        f.seek(250_000)
        assert f.read(1000) == DATA[250_000:251_000]
        f.seek(-5, io.SEEK_END)
        assert f.read() == DATA[-5:]
    with pytest.raises(StoreNotAvailable):
        raw.put("az://no-such-container/k", b"x")


@pytest.mark.parametrize("transport", ("sdk", "fast"))
def test_arguments_come_before_the_environment(azure_blob, container, monkeypatch, transport):
    server = azure_blob.server
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", server.account_name)
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_KEY", WRONG_KEY)  # obstore would read these on its own
    monkeypatch.setenv("AZURE_STORAGE_USE_EMULATOR", "true")  # and this (an address nothing listens on here)
    raw = AZRaw(server.account_name, account_key=server.account_key, endpoint_url=server.endpoint_url,
                transport=transport, retry=RETRY)
    assert raw.get("az://ctr/dir/blob one.bin") == DATA
    # the connection string in the environment comes before the account key in the environment
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", server.connection_string)
    assert AZRaw(transport=transport, retry=RETRY).get("az://ctr/dir/blob one.bin") == DATA
    # and a wrong key in the environment is used (and refused) when no argument says otherwise
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING")
    with pytest.raises(StoreNotAvailable):
        AZRaw(endpoint_url=server.endpoint_url, transport=transport, retry=RETRY).get("az://ctr/dir/blob one.bin")


def test_no_credentials_means_the_default_chain(azure_blob, monkeypatch):
    """Nothing given, nothing in the environment: azure-identity's DefaultAzureCredential (built, never asked here:
    it would look for a token off this machine). On an http:// endpoint a token cannot be sent: said at once."""
    raw = AZRaw("someaccount", transport="sdk")
    conn = raw._conn.get()  # builds the client; no request is made
    assert type(conn.client.credential).__name__ == "DefaultAzureCredential"
    assert conn.auth.account_url == "https://someaccount.blob.core.windows.net" and raw.endpoint_label is None
    sleeps: list[float] = []
    local = AZRaw(endpoint_url=azure_blob.endpoint_url, retry=RetryPolicy(4, 0.001, sleep=sleeps.append))
    with pytest.raises(StoreNotAvailable, match="token credential .* needs an https:// endpoint"):
        local.get("az://ctr/k")
    assert sleeps == []
    with pytest.raises(StoreNotAvailable, match="no storage account"):
        AZRaw(transport="sdk").get("az://ctr/k")


@pytest.mark.parametrize("transport", ("sdk", "fast"))
def test_sas_token(azure_blob, container, transport, caplog):
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    server = azure_blob.server
    sas = generate_container_sas(server.account_name, "ctr", account_key=server.account_key,
                                 permission=ContainerSasPermissions(read=True, write=True),
                                 expiry=datetime.now(timezone.utc) + timedelta(hours=1))
    signature = [p for p in sas.split("&") if p.startswith("sig=")][0][4:]
    raw = AZRaw(server.account_name, sas_token=sas, endpoint_url=server.endpoint_url, transport=transport, retry=RETRY)
    with caplog.at_level(logging.DEBUG):
        assert raw.get("az://ctr/dir/blob one.bin") == DATA
        raw.put("az://ctr/by-sas", b"sas")
        assert raw.get("az://ctr/by-sas") == b"sas"
        with pytest.raises(NotFoundInStore):
            raw.get("az://ctr/absent")
    assert signature not in caplog.text and signature not in repr(raw)
    read_only = generate_container_sas(server.account_name, "ctr", account_key=server.account_key,
                                       permission=ContainerSasPermissions(read=True),
                                       expiry=datetime.now(timezone.utc) + timedelta(hours=1))
    reader = AZRaw(server.account_name, sas_token=read_only, endpoint_url=server.endpoint_url, transport=transport,
                   retry=RETRY)
    with pytest.raises(StoreNotAvailable, match="credentials missing or rejected"):
        reader.put("az://ctr/refused", b"x")


@pytest.mark.parametrize("transport", ("sdk", "fast"))
def test_anonymous_reads_a_public_container_only(azure_blob, transport):
    azure_blob.client.create_container("public", public_access="blob")
    azure_blob.put("public", "open.bin", b"for all")
    azure_blob.create_container("private")
    azure_blob.put("private", "closed.bin", b"secret")
    raw = AZRaw.anonymous(endpoint_url=azure_blob.endpoint_url, transport=transport, retry=RETRY)
    assert raw.get("az://public/open.bin") == b"for all"
    with pytest.raises(NotFoundInStore):
        raw.get("az://public/absent")
    with pytest.raises(StoreNotAvailable):  # a private container is a failure, never "missing"
        raw.get("az://private/closed.bin")
    assert AZRaw(anonymous=True, endpoint_url=azure_blob.endpoint_url, transport=transport).get(
        "az://public/open.bin") == b"for all"


def test_pickles_carry_only_what_the_user_passed(azure_blob, container, monkeypatch):
    server = azure_blob.server
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", server.connection_string)
    from_env = AZRaw(transport="fast", retry=RETRY)
    assert from_env.get("az://ctr/dir/blob one.bin") == DATA
    blob = pickle.dumps(from_env)
    assert server.account_key.encode() not in blob and b"AccountKey" not in blob
    assert pickle.loads(blob).get("az://ctr/dir/blob one.bin") == DATA  # the clone reads the environment again
    inline = AZRaw(server.account_name, account_key=server.account_key, endpoint_url=server.endpoint_url)
    assert server.account_key not in repr(inline) and server.account_key not in repr(vars(inline))
    clone = pickle.loads(pickle.dumps(inline))  # an inline credential travels to the workers that need it
    assert clone.get("az://ctr/dir/blob one.bin") == DATA
    for store in (inline, clone):
        assert server.account_key not in repr(store) and server.account_key not in str(store)


def test_spec_tiers_reference_secrets_by_environment_variable(azure_blob, container, monkeypatch):
    server = azure_blob.server
    monkeypatch.setenv("MY_AZURE_CONN", server.connection_string)
    monkeypatch.setenv("MY_AZURE_KEY", server.account_key)
    sha1 = azure_blob.put("ctr", "sha/" + "a" * 40, b"by sha1").rsplit("/", 1)[1]
    by_conn = from_spec({"tier": [{"type": "azure", "prefix": "az://ctr/sha/", "connection_string_env": "MY_AZURE_CONN",
                                   "transport": "fast"}]})
    by_key = from_spec({"tier": [{"type": "azure", "prefix": "abfs://ctr/sha/", "account_name": server.account_name,
                                  "endpoint_url": server.endpoint_url, "transport": "sdk",
                                  "credentials_env": {"account_key": "MY_AZURE_KEY"}}]})
    for store in (by_conn, by_key):
        assert store.get(sha1) == b"by sha1"
        blob = pickle.dumps(store)
        assert server.account_key.encode() not in blob
        assert [r.status for r in store.get_many([sha1, "b" * 40], progress=False)] == ["found", "missing"]


@pytest.mark.parametrize(("tier", "message"), [
    ({"prefix": "s3://ctr/p/"}, "prefix is an az:// URL"),
    ({"prefix": "az:///p/"}, "looks like az://container/folder/"),
    ({"credentials_env": {"account_key": "K", "sas_token": "S"}}, "not both"),
    ({"credentials_env": {"password": "K"}}, "not an AZRaw credential argument"),
    ({"credentials_env": {"account_key": "not a name!"}}, "NAME of an environment variable"),
    ({"connection_string_env": "DefaultEndpointsProtocol=https;AccountKey=abc"}, "NAME of an environment variable"),
    ({"connection_string_env": "A", "credentials_env": {"account_key": "B"}}, "not both"),
    ({"anonymous": True, "connection_string_env": "A"}, "cannot be combined"),
    ({"account_key": "abc"}, "unknown key"),
])
def test_bad_spec_tiers_are_spec_errors_naming_the_key(tier, message):
    from bitstore import SpecError

    with pytest.raises(SpecError, match=message) as info:
        from_spec({"tier": [{"type": "azure", "prefix": "az://ctr/p/", **tier}]})
    assert "abc" not in str(info.value).replace(message, "") or "unknown" in message


def test_bad_arguments_fail_clearly(azure_blob, caplog):
    with pytest.raises(ValueError, match="one credential at most"):
        AZRaw("acct", account_key="k", sas_token="s")
    with pytest.raises(ValueError, match="anonymous and account_key"):
        AZRaw(anonymous=True, account_key="k")
    with pytest.raises(TypeError, match="account_key must be a string"):
        AZRaw(account_key=b"k")
    with pytest.raises(ValueError, match="transport"):
        AZRaw(transport="warp")
    secret = "AccountName=x;AccountKey=c2VjcmV0LWtleS12YWx1ZQ==;NoEquals"
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(StoreNotAvailable, match="configuration error") as info:
            AZRaw(connection_string=secret).get("az://ctr/k")
    assert "c2VjcmV0" not in str(info.value) and "c2VjcmV0" not in caplog.text
    with pytest.raises(StoreNotAvailable, match="neither AccountKey nor SharedAccessSignature"):
        AZRaw(connection_string="AccountName=x;BlobEndpoint=http://127.0.0.1:1/x").get("az://ctr/k")
    with pytest.raises(StoreNotAvailable, match="configuration error"):
        AZRaw("x", account_key="a2V5", endpoint_url="ftp://127.0.0.1:1/x").get("az://ctr/k")


def test_development_storage_connection_string():
    raw = AZRaw(connection_string="UseDevelopmentStorage=true", transport="sdk")
    assert raw.endpoint_label == "http://127.0.0.1:10000/devstoreaccount1"  # built, not contacted


def test_unset_environment_variable_names_it(monkeypatch):
    from bitstore.backends._client import EnvVar

    monkeypatch.delenv("BITSTORE_TEST_UNSET_KEY", raising=False)
    raw = AZRaw("acct", account_key=EnvVar("BITSTORE_TEST_UNSET_KEY"), endpoint_url="http://127.0.0.1:1/acct")
    with pytest.raises(StoreNotAvailable, match="BITSTORE_TEST_UNSET_KEY is not set"):
        raw.get("az://ctr/k")


def test_uris():
    raw = AZRaw("acct")
    for uri in ("az://ctr/k", "abfs://ctr/a/b", "azure://ctr/k k", "az://ctr/ü/ñ+%"):
        assert raw.is_valid(uri), uri
    for uri in ("az://ctr", "az://ctr/", "az:///k", "gs://ctr/k", "abfs://ctr@acct.dfs.core.windows.net/k", None):
        assert not raw.is_valid(uri), uri
    assert raw.name == "az" and AZRaw("acct", name="archive").name == "archive"


def test_sdk_missing_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "azure.storage.blob", None)
    with pytest.raises(ImportError, match=r"pip install 'bitstore-tiered\[azure\]'"):
        AZRaw("acct", account_key="a2V5", endpoint_url="http://127.0.0.1:1/acct", transport="sdk").get("az://c/k")


def test_docs_examples_run(monkeypatch):
    """docs/guides/azure.md's runnable examples (no Azurite, no account: they reach only a closed local port)."""
    from tests.docs_blocks import expected_output, run_block, runnable_blocks

    for name in ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT_KEY"):
        monkeypatch.delenv(name, raising=False)
    blocks = runnable_blocks("azure")
    assert len(blocks) >= 2
    for index, block in enumerate(blocks):
        printed = run_block(block, f"docs azure example {index + 1}")
        assert [line.rstrip() for line in printed] == [line.rstrip() for line in expected_output(block)]


@pytest.mark.parametrize("url", ["az://ctr/sha/", "azure://ctr/sha/",
                                 "abfs://ctr@devstoreaccount1.dfs.core.windows.net/sha/"])
def test_from_url(azure_blob, container, monkeypatch, url):
    from bitstore import from_url

    server = azure_blob.server
    monkeypatch.setenv("MY_AZURE_KEY", server.account_key)
    import hashlib

    sha1 = hashlib.sha1(b"from a url").hexdigest()
    azure_blob.put("ctr", "sha/" + sha1, b"from a url")
    options = {"endpoint_url": server.endpoint_url, "credentials_env": {"account_key": "MY_AZURE_KEY"}}
    if "@" not in url:
        options["account_name"] = server.account_name  # the abfs form names the account itself
    store = from_url(url, **options)
    assert store.get(sha1) == b"from a url"
    assert [r.status for r in store.get_many([sha1, "d" * 40], progress=False)] == ["found", "missing"]
    assert server.account_key.encode() not in pickle.dumps(store)
