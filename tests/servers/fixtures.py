"""pytest fixtures for tests against real servers on 127.0.0.1 (loaded by ``tests/conftest.py``).

Session-scoped servers, started on free ports the first time a test needs them:

- ``moto_server``: moto's ``ThreadedMotoServer`` (S3).
- ``gcs_server``: fake-gcs-server (in-memory, plain HTTP, ``-public-host`` set to its own address).
- ``azurite``: Azurite's blob service (``node_modules/.bin/azurite-blob``, see ``azurite.py``); attributes
  ``.endpoint_url`` (``http://127.0.0.1:<port>/devstoreaccount1``), ``.account_name``, ``.account_key``,
  ``.connection_string``, ``.obstore_config()``. Skipped only when ``node_modules`` lacks Azurite (``npm ci``,
  which ``make test`` runs).

Function-scoped, each starting from an empty server:

- ``s3``: moto reset through ``/moto-api/reset``; ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` /
  ``AWS_DEFAULT_REGION`` set to test values (and the user's AWS config files hidden) with monkeypatch.
  Attributes: ``.endpoint_url``, ``.client`` (a boto3 S3 client), ``.create_bucket(name)``,
  ``.put(bucket, key, data)``, ``.raw(**kw)`` -> an ``S3Raw`` for the server (fast retries unless given).
- ``gcs``: every bucket deleted; ``STORAGE_EMULATOR_HOST`` set with monkeypatch. Attributes: ``.endpoint``,
  ``.client`` (a ``google.cloud.storage.Client``), ``.create_bucket(name)``, ``.put(bucket, key, data)``,
  ``.raw(**kw)`` -> a ``GSRaw`` for the server.
- ``azure_blob``: every container deleted; the ``AZURE_*`` variables that could point a client elsewhere unset
  with monkeypatch. Attributes: ``.server`` (the ``azurite`` object), ``.endpoint_url``, ``.connection_string``,
  ``.client`` (an ``azure.storage.blob.BlobServiceClient``), ``.create_container(name)``,
  ``.put(container, key, data)``.
- ``fault_proxy``: a factory ``fault_proxy(upstream_url, **plan) -> FaultProxy`` (see ``faults.py``) that
  starts a fault-injecting proxy in front of ``s3.endpoint_url`` or ``gcs.endpoint``; every proxy it
  started is stopped after the test. Point a store at ``proxy.url``.
"""
from __future__ import annotations

import pytest

from bitstore.ground.retry import RetryPolicy

from . import azurite as _azurite
from .fake_gcs import FakeGCSServer
from .faults import FaultProxy
from .moto_s3 import MotoS3Server

#: Tests retry fast: the same number of attempts as the default, with millisecond backoff.
TEST_RETRY = RetryPolicy(attempts=8, base_delay=0.001, max_delay=0.01)
_AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": "/nonexistent/bitstore-tests/aws-config",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/bitstore-tests/aws-credentials"}
_AWS_UNSET = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL",
              "AWS_ENDPOINT_URL_S3", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE")


class S3Env:
    """The moto server as a test sees it."""

    def __init__(self, endpoint_url: str, client):
        self.endpoint_url = endpoint_url
        self.client = client

    def create_bucket(self, name: str) -> str:
        self.client.create_bucket(Bucket=name)
        return name

    def put(self, bucket: str, key: str, data: bytes) -> str:
        self.client.put_object(Bucket=bucket, Key=key, Body=data)
        return f"s3://{bucket}/{key}"

    def raw(self, **kwargs):
        from bitstore.backends.s3 import S3Raw

        kwargs.setdefault("endpoint_url", self.endpoint_url)
        kwargs.setdefault("retry", TEST_RETRY)
        return S3Raw(**kwargs)


class GCSEnv:
    """The fake-gcs-server as a test sees it."""

    def __init__(self, endpoint: str, client):
        self.endpoint = endpoint
        self.client = client

    def create_bucket(self, name: str) -> str:
        self.client.create_bucket(name)
        return name

    def put(self, bucket: str, key: str, data: bytes) -> str:
        self.client.bucket(bucket).blob(key).upload_from_string(data)
        return f"gs://{bucket}/{key}"

    def raw(self, **kwargs):
        from bitstore.backends.gcs import GSRaw

        kwargs.setdefault("endpoint", self.endpoint)
        kwargs.setdefault("retry", TEST_RETRY)
        return GSRaw(**kwargs)


@pytest.fixture(scope="session")
def moto_server():
    server = MotoS3Server().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def _moto_client(moto_server):
    import boto3

    return boto3.client("s3", endpoint_url=moto_server.endpoint_url, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


@pytest.fixture
def s3(moto_server, _moto_client, monkeypatch) -> S3Env:
    for name in _AWS_UNSET:
        monkeypatch.delenv(name, raising=False)
    for name, value in _AWS_ENV.items():
        monkeypatch.setenv(name, value)
    moto_server.reset()
    return S3Env(moto_server.endpoint_url, _moto_client)


@pytest.fixture(scope="session")
def gcs_server():
    server = FakeGCSServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def _gcs_client(gcs_server):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(project="test", credentials=AnonymousCredentials(),
                          client_options={"api_endpoint": gcs_server.endpoint})


@pytest.fixture
def gcs(gcs_server, _gcs_client, monkeypatch) -> GCSEnv:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_server.endpoint)
    gcs_server.reset(_gcs_client)
    return GCSEnv(gcs_server.endpoint, _gcs_client)


class AzureEnv:
    """Azurite as a test sees it."""

    def __init__(self, server: _azurite.AzuriteServer, client):
        self.server = server
        self.endpoint_url = server.endpoint_url
        self.connection_string = server.connection_string
        self.client = client

    def create_container(self, name: str) -> str:
        self.client.create_container(name)
        return name

    def put(self, container: str, key: str, data: bytes) -> str:
        self.client.get_blob_client(container, key).upload_blob(data, overwrite=True)
        return f"az://{container}/{key}"


@pytest.fixture(scope="session")
def azurite():
    if not _azurite.installed():
        pytest.skip(f"Azurite is not installed ({_azurite.BINARY} is missing): run `npm ci` (make test does)")
    server = _azurite.AzuriteServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def _azure_client(azurite):
    return azurite.blob_service_client()


@pytest.fixture
def azure_blob(azurite, _azure_client, monkeypatch) -> AzureEnv:
    for name in _azurite.AZURE_ENV:
        monkeypatch.delenv(name, raising=False)
    azurite.reset(_azure_client)
    return AzureEnv(azurite, _azure_client)


@pytest.fixture
def fault_proxy():
    started: list[FaultProxy] = []

    def start(upstream: str, **plan) -> FaultProxy:
        proxy = FaultProxy(upstream, **plan).start()
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


@pytest.fixture(scope="session")
def _blob_server():
    from .http_blobs import BlobServer

    server = BlobServer().start()
    yield server
    server.stop()


@pytest.fixture
def blob_server(_blob_server):
    """The http tier's blob server (``http_blobs.BlobServer``), emptied and with no token, plan or Retry-After."""
    _blob_server.reset()
    return _blob_server
