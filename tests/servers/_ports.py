"""Free loopback ports, readiness checks, and stopping a server process."""
from __future__ import annotations

import socket
import subprocess
import time
import urllib.error
import urllib.request
from typing import Any


def free_port() -> int:
    """A port nothing listens on right now (picked by the OS on 127.0.0.1)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 30.0, process: Any = None) -> None:
    """Wait until ``url`` answers any HTTP response (or ``process``, the server's, has exited: an error)."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not come up within {timeout:.0f}s") from None
            time.sleep(0.05)


def stop_process(process: subprocess.Popen | None) -> None:
    """Terminate a server process, killing it if it has not exited within 10 s."""
    if process is None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
