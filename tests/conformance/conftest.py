"""Fixtures for the conformance suite: every server a row needs (session-scoped, reset per test) and ``row``.

``row`` runs a test on every (backend, transport, endpoint configuration) in ``_rows.ROW_IDS``; ``any_row`` adds
the ``auto`` transport (``_rows.AUTO_IDS``) for the scenarios that column covers.
"""
from __future__ import annotations

import pytest

from tests.servers.fake_gcs import FakeGCSServer
from tests.servers.gcs_emulator import GCSEmulator
from tests.servers.moto_auth import MotoAuthServer

from ._rows import AUTO_IDS, AZ_COLUMNS, GCS_COLUMNS, ROW_IDS, S3_COLUMNS, Row


@pytest.fixture(scope="session")
def fgs_wrapper():
    server = FakeGCSServer("wrapper").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fgs_googleapis():
    server = FakeGCSServer("googleapis").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def gcs_emulator():
    server = GCSEmulator().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def moto_auth():
    """moto with authentication switched on (its own subprocess); see tests/servers/moto_auth.py."""
    server = MotoAuthServer().start()
    yield server
    server.stop()


_GCS_SERVER_FIXTURES = {"fgs-self": "gcs_server", "fgs-wrapper": "fgs_wrapper", "fgs-googleapis": "fgs_googleapis",
                        "gcp-storage-emulator": "gcs_emulator"}
_seeders: dict[str, object] = {}


def _gcs_seeder(endpoint: str):
    """A JSON-API client for an emulator (cached per endpoint for the session)."""
    if endpoint not in _seeders:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        _seeders[endpoint] = storage.Client(project="test", credentials=AnonymousCredentials(),
                                            client_options={"api_endpoint": endpoint})
    return _seeders[endpoint]


def _reset_gcs(server, client) -> None:
    if isinstance(server, GCSEmulator):
        server.reset()
        return
    for bucket in list(client.list_buckets()):
        for b in list(client.list_blobs(bucket.name)):
            b.delete()
        bucket.delete()


def _make_row(request, row_id: str) -> Row:
    backend, transport, column = row_id.split("-", 2)
    monkeypatch = request.getfixturevalue("monkeypatch")
    tmp_path = request.getfixturevalue("tmp_path")
    if backend == "http":
        server = request.getfixturevalue("blob_server")  # emptied: no blobs, token, plan or Retry-After
        return Row(row_id, backend, transport, column, server, server, monkeypatch, tmp_path)
    if backend == "s3":
        assert column in S3_COLUMNS
        env = request.getfixturevalue("s3")  # moto reset; test credentials in the environment, no config files
        return Row(row_id, backend, transport, column, request.getfixturevalue("moto_server"), env, monkeypatch,
                   tmp_path, mechanism=column)
    if backend == "az":
        assert column in AZ_COLUMNS
        env = request.getfixturevalue("azure_blob")  # Azurite emptied; AZURE_* variables unset
        return Row(row_id, backend, transport, column, env.server, env, monkeypatch, tmp_path, mechanism=column)
    server_name, mechanism = GCS_COLUMNS[column]
    for name in ("STORAGE_EMULATOR_HOST", "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    server = request.getfixturevalue(_GCS_SERVER_FIXTURES[server_name])
    seeder = _gcs_seeder(server.endpoint)
    _reset_gcs(server, seeder)
    return Row(row_id, backend, transport, column, server, seeder, monkeypatch, tmp_path, mechanism=mechanism)


@pytest.fixture(params=ROW_IDS)
def row(request) -> Row:
    return _make_row(request, request.param)


@pytest.fixture(params=ROW_IDS + AUTO_IDS)
def any_row(request) -> Row:
    return _make_row(request, request.param)
