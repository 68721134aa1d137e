"""moto's threaded S3 server on a free 127.0.0.1 port, reset between tests through ``/moto-api/reset``."""
from __future__ import annotations

import urllib.request

from ._ports import free_port, wait_http


class MotoS3Server:
    def __init__(self):
        from moto.server import ThreadedMotoServer

        self.port = free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)

    def start(self) -> MotoS3Server:
        self._server.start()
        wait_http(f"{self.endpoint_url}/moto-api/")
        return self

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        urllib.request.urlopen(request, timeout=10).close()

    def stop(self) -> None:
        self._server.stop()
