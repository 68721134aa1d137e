"""Azurite (``tests/servers/azurite.py``) answers azure-storage-blob and obstore as Azure Blob Storage does, on
127.0.0.1 only: the ground the Azure backend and its error map will stand on.

What each client raises for a missing blob / a missing container (the error map's input):

- azure-storage-blob: ``azure.core.exceptions.ResourceNotFoundError`` (an ``HttpResponseError``), status 404,
  ``error_code`` ``"BlobNotFound"`` / ``"ContainerNotFound"`` (``StorageErrorCode.BLOB_NOT_FOUND`` /
  ``CONTAINER_NOT_FOUND``, a ``str`` enum), for downloads and properties alike.
- obstore: the builtin ``FileNotFoundError`` (not ``obstore.exceptions.NotFoundError``) for ``get``, ``head`` and
  ``put``, missing blob and missing container alike; the service's code is only in the message, which quotes the
  XML body of a GET (``<Code>BlobNotFound</Code>``, ``<Code>ContainerNotFound</Code>``); a HEAD has no body.
  Listing a missing container raises ``obstore.exceptions.GenericError`` ("Error performing list request",
  404 and ``<Code>ContainerNotFound</Code>`` in the message).
"""
from __future__ import annotations

import os
import socket
import subprocess
from datetime import timedelta

import pytest

from tests.servers.azurite import ACCOUNT_KEY, ACCOUNT_NAME, AzuriteServer

#: obstore: fail at once instead of retrying (nothing here should need a retry).
NO_RETRY = {"max_retries": 0, "retry_timeout": timedelta(seconds=5)}
DATA = bytes(range(256)) * 300  # 76,800 bytes: more than one read buffer
KEY = "blobs/ab/cdef 1.bin"  # a "directory" and a space, as keys can have


def _store(azurite, container: str, **extra):
    from obstore.store import AzureStore

    return AzureStore(container, **azurite.obstore_config(), client_options={"allow_http": True},
                      retry_config=NO_RETRY, **extra)


@pytest.fixture
def container(azure_blob) -> str:
    name = azure_blob.create_container("bitstore-test")
    azure_blob.put(name, KEY, DATA)
    return name


# --- azure-storage-blob --------------------------------------------------------------------------------------
def test_connection_string_round_trip(azure_blob, container):
    blob = azure_blob.client.get_blob_client(container, "second.bin")
    blob.upload_blob(b"second")
    assert blob.download_blob().readall() == b"second"
    assert azure_blob.client.get_blob_client(container, KEY).download_blob().readall() == DATA
    props = azure_blob.client.get_blob_client(container, KEY).get_blob_properties()
    assert props.size == len(DATA)
    names = [b.name for b in azure_blob.client.get_container_client(container).list_blobs()]
    assert names == [KEY, "second.bin"]
    ranged = azure_blob.client.get_blob_client(container, KEY).download_blob(offset=256, length=10).readall()
    assert ranged == DATA[256:266]


def test_account_url_and_key_credential(azurite, container):
    from azure.storage.blob import BlobServiceClient

    assert azurite.endpoint_url == f"http://127.0.0.1:{azurite.port}/devstoreaccount1"
    assert azurite.account_name == ACCOUNT_NAME == "devstoreaccount1"
    client = BlobServiceClient(account_url=azurite.endpoint_url,
                               credential={"account_name": ACCOUNT_NAME, "account_key": ACCOUNT_KEY})
    assert client.get_blob_client(container, KEY).download_blob().readall() == DATA


def test_missing_blob_is_blob_not_found(azure_blob, container):
    from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
    from azure.storage.blob import StorageErrorCode

    blob = azure_blob.client.get_blob_client(container, "absent")
    for call in (lambda: blob.download_blob().readall(), blob.get_blob_properties):
        with pytest.raises(ResourceNotFoundError) as info:
            call()
        assert isinstance(info.value, HttpResponseError)
        assert info.value.status_code == 404
        assert info.value.error_code == StorageErrorCode.BLOB_NOT_FOUND == "BlobNotFound"


def test_missing_container_is_container_not_found(azure_blob):
    from azure.core.exceptions import ResourceNotFoundError
    from azure.storage.blob import StorageErrorCode

    blob = azure_blob.client.get_blob_client("no-such-container", "absent")
    container = azure_blob.client.get_container_client("no-such-container")
    calls = (lambda: blob.download_blob().readall(), blob.get_blob_properties, container.get_container_properties,
             lambda: list(container.list_blobs()), lambda: blob.upload_blob(b"x"))
    for call in calls:
        with pytest.raises(ResourceNotFoundError) as info:
            call()
        assert info.value.status_code == 404
        assert info.value.error_code == StorageErrorCode.CONTAINER_NOT_FOUND == "ContainerNotFound"


# --- obstore -------------------------------------------------------------------------------------------------
def test_obstore_reads_and_writes_with_account_key_and_endpoint(azurite, azure_blob, container):
    import obstore

    store = _store(azurite, container)
    assert bytes(obstore.get(store, KEY).bytes()) == DATA
    assert obstore.head(store, KEY)["size"] == len(DATA)
    assert bytes(obstore.get_range(store, KEY, start=256, end=266)) == DATA[256:266]
    obstore.put(store, "from-obstore.bin", b"written by obstore")
    assert azure_blob.client.get_blob_client(container, "from-obstore.bin").download_blob().readall() == (
        b"written by obstore")
    listed = [m["path"] for m in obstore.list(store, prefix="blobs/").collect()]
    assert listed == [KEY]


def test_obstore_other_ways_to_reach_azurite(azurite, azure_blob, container, monkeypatch):
    import obstore
    from obstore.store import AzureStore

    # az:// URL, the rest as config
    by_url = AzureStore.from_url(f"az://{container}", **azurite.obstore_config(),
                                 client_options={"allow_http": True}, retry_config=NO_RETRY)
    assert bytes(obstore.get(by_url, KEY).bytes()) == DATA
    # use_emulator: the well-known account and key built in, but the address only from AZURITE_BLOB_STORAGE_URL
    # (an ``endpoint`` given with use_emulator=True is ignored: it goes to 127.0.0.1:10000).
    monkeypatch.setenv("AZURITE_BLOB_STORAGE_URL", azurite.host_url)
    emulator = AzureStore(container, use_emulator=True, retry_config=NO_RETRY)
    assert bytes(obstore.get(emulator, KEY).bytes()) == DATA


def test_obstore_has_no_connection_string_and_needs_allow_http(azurite, container):
    import obstore
    from obstore.exceptions import GenericError, UnknownConfigurationKeyError
    from obstore.store import AzureStore

    for key in ("connection_string", "azure_storage_connection_string"):
        with pytest.raises(UnknownConfigurationKeyError):
            AzureStore(container, config={key: azurite.connection_string})
    plain_http_refused = AzureStore(container, **azurite.obstore_config(), retry_config=NO_RETRY)
    with pytest.raises(GenericError, match="builder error"):
        obstore.get(plain_http_refused, KEY)


def test_obstore_missing_blob_and_container(azurite, container):
    import obstore
    from obstore.exceptions import GenericError, NotFoundError

    store = _store(azurite, container)
    gone = _store(azurite, "no-such-container")
    for target, code in ((store, "BlobNotFound"), (gone, "ContainerNotFound")):
        with pytest.raises(FileNotFoundError) as info:
            obstore.get(target, "absent")
        assert type(info.value) is FileNotFoundError and not isinstance(info.value, NotFoundError)
        assert f"<Code>{code}</Code>" in str(info.value) and "404" in str(info.value)
        with pytest.raises(FileNotFoundError) as info:  # HEAD: no body, so no service code to tell them apart
            obstore.head(target, "absent")
        assert "404" in str(info.value) and "<Code>" not in str(info.value)
    with pytest.raises(FileNotFoundError, match="<Code>ContainerNotFound</Code>"):
        obstore.put(gone, "x", b"x")
    with pytest.raises(GenericError) as info:
        obstore.list(gone).collect()
    assert "<Code>ContainerNotFound</Code>" in str(info.value) and "404" in str(info.value)


# --- the server itself ---------------------------------------------------------------------------------------
def _non_loopback_addresses() -> list[str]:
    import psutil

    return [a.address for addrs in psutil.net_if_addrs().values() for a in addrs
            if a.family == socket.AF_INET and not a.address.startswith("127.")]


def test_listens_on_loopback_only(azurite):
    import psutil

    process = psutil.Process(azurite.pid)
    connections = process.net_connections if hasattr(process, "net_connections") else process.connections
    listening = [c.laddr for c in connections(kind="inet") if c.status == psutil.CONN_LISTEN]
    assert listening and {(a.ip, a.port) for a in listening} == {("127.0.0.1", azurite.port)}
    for address in _non_loopback_addresses():
        with socket.socket() as s:
            s.settimeout(2)
            assert s.connect_ex((address, azurite.port)) != 0, address


def test_start_and_stop_leave_nothing_behind(azurite):  # (the fixture: skipped like the rest without Azurite)
    server = AzuriteServer().start()
    assert server.port != azurite.port
    pid, port, location = server.pid, server.port, server.location
    assert os.path.isdir(location)
    server.stop()
    server.stop()  # twice is harmless
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0
    assert not os.path.exists(location)
    done = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True)
    assert done.stdout.strip() == ""  # gone, not even a zombie
