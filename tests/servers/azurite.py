"""Azurite's Blob service (the Azure Storage emulator; ``npm ci`` installs it) on a free 127.0.0.1 port.

Only the blob service is started (``azurite-blob``; no queue or table ports), with its data in a temporary
folder, telemetry off, and ``--skipApiVersionCheck`` so that an azure-storage-blob newer than the emulator is
accepted. The account is Azurite's well-known development account ``devstoreaccount1``; its endpoint is path
style, ``http://127.0.0.1:<port>/devstoreaccount1``.

How each client reaches it (checked by ``tests/test_azurite_server.py``):

- azure-storage-blob: ``BlobServiceClient.from_connection_string(server.connection_string)``, or
  ``BlobServiceClient(account_url=server.endpoint_url, credential={"account_name": ..., "account_key": ...})``.
- obstore: ``AzureStore(container, **server.obstore_config(), client_options={"allow_http": True})``, i.e.
  ``account_name``, ``account_key`` and ``endpoint`` (the account URL, path included). obstore has no
  connection-string key. ``use_emulator=True`` ignores ``endpoint`` and goes to ``127.0.0.1:10000`` unless the
  environment variable ``AZURITE_BLOB_STORAGE_URL`` (``http://127.0.0.1:<port>``) says otherwise.
"""
from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from ._ports import free_port, stop_process, wait_http

ROOT = Path(__file__).resolve().parents[2]
#: Installed by ``make test`` (``npm ci``, the version pinned in package.json / package-lock.json).
BINARY = ROOT / "node_modules" / ".bin" / "azurite-blob"
#: Azurite's built-in development account (public, documented by Microsoft; not a secret).
ACCOUNT_NAME = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
#: Environment variables the Azure SDKs and obstore read, which must not steer the tests to a real account.
AZURE_ENV = ("AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT", "AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_KEY",
             "AZURE_STORAGE_ACCESS_KEY", "AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_SAS_KEY",
             "AZURE_STORAGE_SAS_TOKEN", "AZURE_STORAGE_TOKEN", "AZURE_STORAGE_ENDPOINT", "AZURE_ENDPOINT",
             "AZURE_STORAGE_USE_EMULATOR", "AZURITE_BLOB_STORAGE_URL", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET",
             "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_MSI_ENDPOINT", "AZURE_IDENTITY_ENDPOINT",
             "AZURE_USE_AZURE_CLI")


def installed() -> bool:
    return os.access(BINARY, os.X_OK)


class AzuriteServer:
    """``azurite-blob`` on 127.0.0.1 only; ``start()`` waits until it answers, ``stop()`` never hangs."""

    account_name = ACCOUNT_NAME
    account_key = ACCOUNT_KEY

    def __init__(self, binary: Path | str = BINARY, start_timeout: float = 60.0):
        self.binary = str(binary)
        self.start_timeout = start_timeout
        self.port = 0
        self._process: subprocess.Popen | None = None
        self._tmpdir: tempfile.TemporaryDirectory | None = None
        self._log = None

    # --- what a test uses ---------------------------------------------------------------------------
    @property
    def host_url(self) -> str:
        """``http://127.0.0.1:<port>`` (what obstore's ``AZURITE_BLOB_STORAGE_URL`` wants)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def endpoint_url(self) -> str:
        """The blob service URL of the account (path style): ``http://127.0.0.1:<port>/devstoreaccount1``."""
        return f"{self.host_url}/{self.account_name}"

    @property
    def connection_string(self) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={self.account_name};AccountKey={self.account_key};"
                f"BlobEndpoint={self.endpoint_url};")

    @property
    def location(self) -> str:
        """The folder Azurite keeps its data in (removed by ``stop()``)."""
        assert self._tmpdir is not None, "not started"
        return self._tmpdir.name

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def obstore_config(self) -> dict[str, str]:
        """``AzureStore(container, **config, client_options={"allow_http": True})`` reaches this server."""
        return {"account_name": self.account_name, "account_key": self.account_key, "endpoint": self.endpoint_url}

    def blob_service_client(self):
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(self.connection_string)

    def log_tail(self, n: int = 4000) -> str:
        if self._tmpdir is None:
            return ""
        try:
            return Path(self._tmpdir.name, "azurite.log").read_text(errors="replace")[-n:]
        except OSError:
            return ""

    # --- life cycle ---------------------------------------------------------------------------------
    def _args(self, data: str) -> list[str]:
        return [self.binary, "--blobHost", "127.0.0.1", "--blobPort", str(self.port), "--location", data,
                "--skipApiVersionCheck", "--loose", "--silent", "--disableTelemetry"]

    def start(self, attempts: int = 3) -> AzuriteServer:
        """Start on a free port; another free port is tried if the chosen one was taken in the meantime."""
        if not installed() and self.binary == str(BINARY):
            raise FileNotFoundError(f"{BINARY} is missing: run `npm ci` (make test does)")
        for attempt in range(attempts):
            self._tmpdir = tempfile.TemporaryDirectory(prefix="azurite-")
            data = os.path.join(self._tmpdir.name, "data")
            os.mkdir(data)
            self.port = free_port()
            self._log = open(os.path.join(self._tmpdir.name, "azurite.log"), "wb")
            self._process = subprocess.Popen(self._args(data), stdin=subprocess.DEVNULL, stdout=self._log,
                                             stderr=subprocess.STDOUT, cwd=self._tmpdir.name)
            try:
                self._wait_ready()
                return self
            except RuntimeError:
                log = self.log_tail()
                self.stop()
                if "EADDRINUSE" in log and attempt + 1 < attempts:
                    continue
                raise RuntimeError(f"Azurite did not start: {log}") from None
        raise AssertionError("unreachable")

    def _wait_ready(self) -> None:
        """Until any HTTP answer (an unsigned ``List Containers`` answers 403): the blob service is up."""
        wait_http(f"{self.endpoint_url}?comp=list", self.start_timeout, self._process)

    def reset(self, client=None) -> None:
        """Delete every container (Azurite has no reset endpoint)."""
        client = client or self.blob_service_client()
        for container in list(client.list_containers()):
            client.delete_container(container.name)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s (``stop_process``); the data folder is removed."""
        stop_process(self._process)
        self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    def __enter__(self) -> AzuriteServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
