"""Azurite (Microsoft's Azure Storage emulator, one Node.js process) as the benchmark server of the Azure protocol.

``benchmarks.server`` does not speak Azure Blob Storage, so the Azure cases run against Azurite on 127.0.0.1
(``npm ci`` installs it; started as ``tests/servers/azurite.py`` starts it). Its throughput bounds every
contender (it has no per-request delay setting: the Azure cases run at 0 ms only), so the Azure figures compare
contenders with each other, not with the S3/GCS figures. ``stats()`` reports Azurite's CPU time, as
``ServerProcess.stats()`` does for the memory server, so each row shows the server's share.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from hashlib import sha1

from .server import blob_for

__all__ = ["AzuriteBench"]


class AzuriteBench:
    """Azurite started for the run, with the fill and stats calls the runner makes of a benchmark server."""

    def __init__(self):
        from tests.servers.azurite import AzuriteServer, installed

        if not installed():
            raise FileNotFoundError("Azurite is not installed: run `npm ci` (make test does)")
        self.server = AzuriteServer()
        self._client = None

    def __enter__(self) -> AzuriteBench:
        self.server.start()
        self._client = self.server.blob_service_client()
        return self

    def __exit__(self, *exc) -> None:
        self.server.stop()

    @property
    def endpoint(self) -> str:
        return self.server.endpoint_url

    def fill(self, container: str, prefix: str, n: int, size: int, seed: int = 0) -> list[str]:
        """``n`` deterministic blobs of ``size`` bytes under ``prefix + sha1`` (as ``ServerProcess.fill``)."""
        self._client.create_container(container)
        target = self._client.get_container_client(container)

        def put(index: int) -> str:
            data = blob_for(seed, index, size)
            key = sha1(data).hexdigest()
            target.upload_blob(prefix + key, data, overwrite=True)
            return key

        with ThreadPoolExecutor(16) as pool:
            return list(pool.map(put, range(n)))

    def drop(self, container: str) -> None:
        self._client.delete_container(container)

    def stats(self) -> dict:
        import psutil

        process = psutil.Process(self.server.pid)
        times = process.cpu_times()
        cpu = times.user + times.system
        for child in process.children(recursive=True):  # azurite-blob is a node launched by a shell shim
            try:
                child_times = child.cpu_times()
                cpu += child_times.user + child_times.system
            except psutil.Error:
                pass
        return {"cpu_s": cpu, "counts": {}}
