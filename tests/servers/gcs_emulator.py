"""gcp-storage-emulator (the ``gcp-storage-emulator`` package) in a subprocess on a free 127.0.0.1 port, in memory.

A second, independent GCS emulator (Python, JSON API plus ``GET /bucket/object``), so behaviour is not tuned to
fake-gcs-server's quirks. Wiped between tests through its ``/wipe`` endpoint.
"""
from __future__ import annotations

import subprocess
import sys
import urllib.request

from ._ports import free_port, stop_process, wait_http


class GCSEmulator:
    def __init__(self):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen | None = None

    def start(self) -> GCSEmulator:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "gcp_storage_emulator", "start", "--host", "127.0.0.1", "--port", str(self.port),
             "--in-memory", "--quiet"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            wait_http(f"{self.endpoint}/")
        except RuntimeError:
            self.stop()
            raise
        return self

    def reset(self, client=None) -> None:
        """Delete every bucket and object."""
        urllib.request.urlopen(f"{self.endpoint}/wipe", timeout=10).close()

    def stop(self) -> None:
        stop_process(self._process)
        self._process = None
