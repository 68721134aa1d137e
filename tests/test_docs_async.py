"""docs/guides/async.md: its runnable blocks print what the page shows, and its FastAPI endpoint serves a composite
(a local cache in front of moto's S3) over a real HTTP connection on 127.0.0.1, with the statuses it promises."""
from __future__ import annotations

import contextlib
import hashlib
import socket
import textwrap
import threading

import pytest

from tests.docs_blocks import expected_output, python_blocks, run_block, runnable_blocks, section


def test_runnable_blocks_print_what_the_page_shows():
    blocks = runnable_blocks("async")
    assert blocks
    for i, block in enumerate(blocks):
        assert run_block(block, f"async[{i}]") == expected_output(block)


def _app_block() -> str:
    [block] = [b for b in python_blocks(section("async")) if b.startswith("# app.py")]
    return block


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(app):
    """``app`` on uvicorn in a thread, on a free port of 127.0.0.1; yields its base URL."""
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        import time

        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def test_the_fastapi_endpoint_serves_a_composite(s3, tmp_path, monkeypatch):
    httpx = pytest.importorskip("httpx")
    s3.create_bucket("docs")
    blobs = [b"served %d" % i for i in range(5)]
    for data in blobs:
        s3.put("docs", f"blobs/{hashlib.sha1(data).hexdigest()}", data)
    spec = tmp_path / "stack.toml"
    spec.write_text(textwrap.dedent(f"""
        keys = "sha1"

        [[tier]]
        type = "local"
        prefix = "{tmp_path / 'cache'}/"
        role = "cache"

        [[tier]]
        type = "s3"
        prefix = "s3://docs/blobs/"
        endpoint_url = "{s3.endpoint_url}"
        cache_result = true
    """))
    monkeypatch.setenv("BITSTORE_SPEC", str(spec))
    app_block = _app_block()
    namespace: dict = {"__name__": "app"}
    exec(compile(app_block, "docs/guides/async.md", "exec"), namespace)
    with serving(namespace["app"]) as base, httpx.Client(base_url=base, timeout=30) as client:
        for data in blobs:
            answer = client.get(f"/blobs/{hashlib.sha1(data).hexdigest()}")
            assert answer.status_code == 200 and answer.content == data
            assert answer.headers["content-type"] == "application/octet-stream"
        assert client.get("/blobs/" + "0" * 40).status_code == 404
        assert client.get("/blobs/not-a-sha1").status_code == 400
        cached = sorted(p.name for p in (tmp_path / "cache").rglob("*") if p.is_file())
        assert cached == sorted(hashlib.sha1(d).hexdigest() for d in blobs)  # written back by the reads
    # a tier that fails is 502, never 404
    failing = tmp_path / "failing.toml"
    failing.write_text(spec.read_text().replace(s3.endpoint_url, "http://127.0.0.1:9").replace(
        f"{tmp_path / 'cache'}/", f"{tmp_path / 'other'}/"))
    monkeypatch.setenv("BITSTORE_SPEC", str(failing))
    namespace = {"__name__": "app"}
    exec(compile(app_block, "docs/guides/async.md", "exec"), namespace)
    with serving(namespace["app"]) as base, httpx.Client(base_url=base, timeout=60) as client:
        assert client.get(f"/blobs/{hashlib.sha1(blobs[0]).hexdigest()}").status_code == 502
