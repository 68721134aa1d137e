"""The conformance matrix: one ``Row`` per (backend, transport, endpoint configuration), and what a fetch answered.

Every scenario in ``test_scenarios.py`` runs on every row and expects the same answers. A row knows how to seed
its server and how to build a store pointed at any URL (the server itself or a fault proxy in front of it)
*through its own configuration mechanism*: an argument, ``AWS_ENDPOINT_URL``, ``AWS_ENDPOINT_URL_S3``, an AWS
profile's ``endpoint_url``, ``STORAGE_EMULATOR_HOST``, ``AZURE_STORAGE_CONNECTION_STRING``,
``AZURE_STORAGE_ACCOUNT_NAME`` + ``AZURE_STORAGE_ACCOUNT_KEY``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bitstore import FetchFailed, NotFoundInStore, StoreNotAvailable

TRANSPORTS = ("fast", "sdk")
S3_COLUMNS = ("argument", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "profile")
#: GCS columns: (server, how the store is pointed at it).
GCS_COLUMNS = {
    "fgs-public-host": ("fgs-self", "argument"),  # the suite's usual fake-gcs-server (-public-host = itself)
    "fgs-wrapper-default": ("fgs-wrapper", "argument"),  # as FakeGCSServer().start() runs it: no -public-host
    "fgs-googleapis": ("fgs-googleapis", "argument"),  # -public-host storage.googleapis.com (container image)
    "STORAGE_EMULATOR_HOST": ("fgs-wrapper", "env"),  # GSRaw() with no endpoint, the wrapper's default server
    "gcp-storage-emulator": ("gcp-storage-emulator", "argument"),
}
#: Azure columns (Azurite): how the store gets its endpoint and credentials. ``argument``: ``endpoint_url`` and
#: ``account_name``/``account_key`` arguments; ``AZURE_STORAGE_CONNECTION_STRING``: a connection string (its
#: ``BlobEndpoint`` the URL) in the environment and no argument; ``AZURE_STORAGE_ACCOUNT_KEY``: the account name and
#: key in the environment, the endpoint as an argument.
AZ_COLUMNS = ("argument", "AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT_KEY")
#: Columns where the fast transport may be unable to address the server correctly (objects are served on the
#: XML path only for the server's public host). There explicit ``transport="fast"`` may refuse with
#: ``StoreNotAvailable`` naming the transport; it must never answer "missing" for a present blob.
FAST_MAY_REFUSE = {"fgs-wrapper-default", "fgs-googleapis", "STORAGE_EMULATOR_HOST", "gcp-storage-emulator"}

#: The http tier has one column: its server (tests/servers/http_blobs.py) addressed by the URL itself.
HTTP_COLUMNS = ("loopback",)

ROW_IDS = ([f"s3-{t}-{c}" for c in S3_COLUMNS for t in TRANSPORTS]
           + [f"gs-{t}-{c}" for c in GCS_COLUMNS for t in TRANSPORTS]
           + [f"az-{t}-{c}" for c in AZ_COLUMNS for t in TRANSPORTS]
           + [f"http-{t}-{c}" for c in HTTP_COLUMNS for t in TRANSPORTS])
AUTO_IDS = ([f"s3-auto-{c}" for c in S3_COLUMNS] + [f"gs-auto-{c}" for c in GCS_COLUMNS]
            + [f"az-auto-{c}" for c in AZ_COLUMNS] + [f"http-auto-{c}" for c in HTTP_COLUMNS])

BUCKET = "cf-bucket"
NO_SUCH_BUCKET = "cf-no-such-bucket"
#: No "/" in the key: the same string appears in the XML path and (unescaped) in the JSON API's path, so a
#: fault proxy's ``match`` picks the object's requests on both and leaves a client's own checks alone.
KEY = "cf-blob.bin"
MISSING_KEY = "cf-absent.bin"


def blob(size: int = 70_000, seed: int = 1) -> bytes:
    return bytes((seed * 31 + i * 7) % 251 for i in range(size))


class RecordingSleep:
    """A ``sleep`` for ``RetryPolicy``: records every wait, then sleeps at most 10 ms of it."""

    def __init__(self):
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        time.sleep(min(seconds, 0.01))


def policy(sleep: RecordingSleep, **overrides: Any):
    """A RetryPolicy with millisecond backoff (the default's 8 attempts) and ``sleep`` injected."""
    from bitstore.ground.retry import RetryPolicy

    fields = {"attempts": 8, "base_delay": 0.001, "max_delay": 0.01, "deadline": 60.0, "max_retry_after": 30.0,
              "sleep": sleep}
    fields.update(overrides)
    return RetryPolicy(**fields)


@dataclass
class Answer:
    """What one ``get`` answered: ``kind`` is bytes | missing | unavailable | failed | error."""

    kind: str
    data: bytes | None = None
    error: BaseException | None = None

    def __repr__(self) -> str:
        if self.kind == "bytes":
            return f"Answer(bytes, {len(self.data or b'')} bytes)"
        return f"Answer({self.kind}, {type(self.error).__name__}: {self.error})"


def fetch(store: Any, uri: str) -> Answer:
    try:
        return Answer("bytes", data=bytes(store.get(uri)))
    except NotFoundInStore as exc:  # InvalidDataFound included: never expected here
        return Answer("missing", error=exc)
    except StoreNotAvailable as exc:
        return Answer("unavailable", error=exc)
    except FetchFailed as exc:
        return Answer("failed", error=exc)
    except Exception as exc:  # noqa: BLE001 - any other exception is an answer no scenario accepts
        return Answer("error", error=exc)


@dataclass
class Row:
    """One row of the matrix, ready for a test: servers started and reset, the environment set."""

    id: str
    backend: str  # "s3" | "gs" | "az" | "http"
    transport: str  # "fast" | "sdk" | "auto"
    column: str
    server: Any  # has .endpoint (GCS) / .endpoint_url (S3, Azurite)
    seeder: Any  # S3Env / AzureEnv (tests/servers/fixtures.py) or a google.cloud.storage.Client
    monkeypatch: Any
    tmp_path: Path
    mechanism: str = "argument"
    _profiles: int = field(default=0, repr=False)

    @property
    def endpoint(self) -> str:
        if self.backend == "http":
            return self.server.url
        return self.server.endpoint if self.backend == "gs" else self.server.endpoint_url

    @property
    def may_refuse(self) -> bool:
        """Explicit fast on an endpoint it may not address: a StoreNotAvailable refusal is allowed."""
        return self.transport == "fast" and self.column in FAST_MAY_REFUSE

    @property
    def has_buckets(self) -> bool:
        """Whether the backend has buckets (an http tier has only URLs: no bucket to be missing)."""
        return self.backend != "http"

    def uri(self, key: str = KEY, bucket: str = BUCKET) -> str:
        if self.backend == "http":
            return f"{bucket}/{key}"  # a path: the store (``HTTPAt``) puts it under the URL it was pointed at
        return f"{self.backend}://{bucket}/{key}"

    # --- seeding ------------------------------------------------------------------------------------
    def seed(self, data: bytes, key: str = KEY, bucket: str = BUCKET) -> str:
        """Create ``bucket`` (if needed) and put ``data`` at ``key``; return the object's URI."""
        if self.backend == "http":
            self.seeder.put(data, f"{bucket}/{key}")
            return self.uri(key, bucket)
        if self.backend == "s3":
            if bucket not in {b["Name"] for b in self.seeder.client.list_buckets().get("Buckets", [])}:
                self.seeder.create_bucket(bucket)
            self.seeder.put(bucket, key, data)
        elif self.backend == "az":
            if bucket not in {c.name for c in self.seeder.client.list_containers()}:
                self.seeder.create_container(bucket)
            self.seeder.put(bucket, key, data)
        else:
            found = self.seeder.lookup_bucket(bucket)
            target = found if found is not None else self.seeder.create_bucket(bucket)
            target.blob(key).upload_from_string(data)
        return self.uri(key, bucket)

    # --- stores ---------------------------------------------------------------------------------------
    def store(self, url: str | None = None, **kwargs: Any):
        """A raw store for ``url`` (default: the row's server), configured through the row's mechanism."""
        url = url or self.endpoint
        kwargs.setdefault("transport", self.transport)
        kwargs.setdefault("timeout", (5.0, 10.0))
        if self.backend == "http":
            from bitstore import HTTPRaw

            return HTTPAt(HTTPRaw(**kwargs), f"{url}/blobs/")
        if self.backend == "az":
            return self._azure_store(url, **kwargs)
        if self.backend == "s3":
            from bitstore.backends.s3 import S3Raw

            for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
                self.monkeypatch.delenv(name, raising=False)
            if self.mechanism == "argument":
                return S3Raw(endpoint_url=url, **kwargs)
            if self.mechanism in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
                self.monkeypatch.setenv(self.mechanism, url)
                return S3Raw(**kwargs)
            assert self.mechanism == "profile"
            self._profiles += 1
            config = self.tmp_path / f"aws-config-{self._profiles}"
            config.write_text(f"[profile bitstore-test]\nendpoint_url = {url}\nregion = us-east-1\n")
            self.monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
            self.monkeypatch.setenv("AWS_PROFILE", "bitstore-test")
            return S3Raw(**kwargs)
        from bitstore.backends.gcs import GSRaw

        if self.mechanism == "env":
            self.monkeypatch.setenv("STORAGE_EMULATOR_HOST", url)
            return GSRaw(**kwargs)
        self.monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
        return GSRaw(endpoint=url, **kwargs)

    def sha1_source(self, **kwargs: Any):
        """A ``Sha1Store`` over the row's raw store, blobs under ``BUCKET/blobs/``."""
        from bitstore import Sha1Store

        if self.backend == "http":
            return Sha1Store(self.store(**kwargs).raw, f"{self.endpoint}/blobs/{BUCKET}/blobs/")
        return Sha1Store(self.store(**kwargs), f"{self.backend}://{BUCKET}/blobs/")

    def _azure_store(self, url: str, account_key: str | None = None, **kwargs: Any):
        """An ``AZRaw`` for ``url`` (a fault proxy's URL gets Azurite's account path), its credentials
        (``account_key``: the server's unless given) set through the row's mechanism."""
        from bitstore.backends.azure import AZRaw
        from tests.servers.azurite import AZURE_ENV

        for name in AZURE_ENV:
            self.monkeypatch.delenv(name, raising=False)
        if "://" in url and url.split("://", 1)[1].count("/") == 0:
            url = f"{url}/{self.server.account_name}"
        name, key = self.server.account_name, account_key or self.server.account_key
        if self.mechanism == "argument":
            return AZRaw(name, account_key=key, endpoint_url=url, **kwargs)
        if self.mechanism == "AZURE_STORAGE_CONNECTION_STRING":
            self.monkeypatch.setenv(self.mechanism, f"DefaultEndpointsProtocol=http;AccountName={name};"
                                                    f"AccountKey={key};BlobEndpoint={url};")
            return AZRaw(**kwargs)
        assert self.mechanism == "AZURE_STORAGE_ACCOUNT_KEY"
        self.monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", name)
        self.monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_KEY", key)
        return AZRaw(endpoint_url=url, **kwargs)

    # --- expectations ---------------------------------------------------------------------------------
    def is_refusal(self, answer: Answer) -> bool:
        """An allowed refusal: explicit fast on a column it may not address, saying that the transport is why."""
        if not (self.may_refuse and answer.kind == "unavailable"):
            return False
        message = str(answer.error).lower()
        return "fast" in message or "transport" in message

    def expect(self, answer: Answer, kind: str, data: bytes | None = None) -> None:
        """``answer`` must be ``kind`` (with ``data`` for bytes), or an allowed refusal on this row."""
        if self.is_refusal(answer):
            return
        assert answer.kind == kind, f"{self.id}: expected {kind}, got {answer!r}"
        if kind == "bytes":
            assert answer.data == data, f"{self.id}: wrong bytes ({len(answer.data or b'')} vs {len(data or b'')})"


class HTTPAt:
    """An http tier's raw store seen from one base URL: ``get(path)`` is ``raw.get(base + path)``. A row's uris
    are paths for the http backend, so a scenario can point the same uri at the server or at a fault proxy, as
    it points a cloud store's endpoint."""

    def __init__(self, raw: Any, base: str):
        self.raw, self.base = raw, base

    def get(self, path: str) -> bytes:
        return self.raw.get(self.base + path)
