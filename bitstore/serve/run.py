"""Running the gateway: ``bitstore serve`` calls ``run``, on the lean server (``server``, the default) or uvicorn.

With ``workers > 1`` each worker process builds its own store from the spec and its own gateway (``worker_app``,
configured through ``BITSTORE_SERVE_*`` environment variables: the token itself stays in the variable the user
named). The lean server forks its workers after binding the socket; uvicorn starts its own. SIGTERM (or SIGINT):
stop accepting, let the requests in flight finish (at most ``shutdown_timeout`` seconds), and ``run`` returns.
"""
from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Any

from ..backends._client import require
from ..ground.errors import SpecError

__all__ = ["run", "worker_app", "token_from_env", "SERVERS"]

logger = logging.getLogger("bitstore.serve")

_SPEC, _TOKEN_ENV, _CONCURRENCY = "BITSTORE_SERVE_SPEC", "BITSTORE_SERVE_TOKEN_ENV", "BITSTORE_SERVE_MAX_CONCURRENCY"


def token_from_env(name: str | None) -> str | None:
    """The bearer token from the environment variable ``name`` (None: no token); a clear error if it is unset."""
    if name is None:
        return None
    token = os.environ.get(name, "")
    if not token.strip():
        raise SpecError(f"--token-env {name}: the environment variable {name} is not set or empty")
    return token.strip()


def worker_app() -> Any:
    """The gateway of one uvicorn worker process (``workers > 1``), from ``BITSTORE_SERVE_*``."""
    from ..spec.load import load_spec_or_default
    from .gateway import Gateway

    store = load_spec_or_default(os.environ.get(_SPEC) or None).build()
    return Gateway(store, token=token_from_env(os.environ.get(_TOKEN_ENV) or None),
                   max_concurrency=int(os.environ.get(_CONCURRENCY, "64")))


#: The servers ``run`` can use: the lean one (``bitstore.serve.server``, the default: measured faster) or uvicorn.
SERVERS = ("bitstore", "uvicorn")


def run(store: Any = None, *, spec: str | None = None, host: str = "127.0.0.1", port: int = 8080,
        token_env: str | None = None, max_concurrency: int = 64, workers: int = 1, access_log: bool = False,
        shutdown_timeout: float = 30.0, server: str = "bitstore") -> None:
    """Serve ``store`` (or the store of ``spec``) on ``host:port`` until SIGTERM or SIGINT, with ``server``
    (``SERVERS``)."""
    if server not in SERVERS:
        raise ValueError(f"server must be one of {', '.join(SERVERS)}, not {server!r}")
    if workers > 1 and store is not None:
        raise ValueError("workers > 1 builds a store per process from a spec: pass spec=, not store=")
    token = token_from_env(token_env)  # checked before anything starts, in every mode
    if server == "bitstore":
        return _run_lean(store, spec, host, port, token, token_env, max_concurrency, workers, access_log,
                         shutdown_timeout)
    uvicorn = require("uvicorn", "serve")
    options = dict(host=host, port=port, log_level="info", access_log=access_log, lifespan="on",
                   timeout_graceful_shutdown=shutdown_timeout, server_header=False)
    if workers > 1:
        _export(spec, token_env, max_concurrency)
        config = uvicorn.Config("bitstore.serve.run:worker_app", factory=True, workers=workers, **options)
    else:
        if store is None:
            from ..spec.load import load_spec_or_default

            store = load_spec_or_default(spec).build()
        from .gateway import Gateway

        config = uvicorn.Config(Gateway(store, token=token, max_concurrency=max_concurrency), **options)
    server = uvicorn.Server(config)
    # uvicorn re-raises the signal that stopped it once it is done; a SIGTERM that asked for a clean stop is then
    # ignored, so the process exits 0.
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN) if _main_thread() else None
    try:
        if workers > 1:
            from uvicorn.supervisors import Multiprocess

            Multiprocess(config, sockets=[config.bind_socket()]).run()
        else:
            server.run()
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _export(spec: str | None, token_env: str | None, max_concurrency: int) -> None:
    os.environ[_SPEC] = spec or ""
    os.environ[_TOKEN_ENV] = token_env or ""
    os.environ[_CONCURRENCY] = str(max_concurrency)


def _run_lean(store: Any, spec: str | None, host: str, port: int, token: str | None, token_env: str | None,
              max_concurrency: int, workers: int, access_log: bool, shutdown_timeout: float) -> None:
    require("httptools", "serve")
    from .server import Server, bind, reuse_port_works, serve_forked

    _log_to_stderr()
    options = dict(access_log=access_log, shutdown_timeout=shutdown_timeout)
    if workers == 1 and store is None:
        from ..spec.load import load_spec_or_default

        store = load_spec_or_default(spec).build()
    own_sockets = workers > 1 and reuse_port_works()  # each worker its own socket: connections spread evenly
    sock = bind(host, port, listen=not own_sockets, reuse_port=own_sockets)
    logger.info("bitstore serve: http://%s:%d (%d worker process%s)", host, sock.getsockname()[1], workers,
                "es" if workers > 1 else "")
    if workers > 1:
        _export(spec, token_env, max_concurrency)
        code = serve_forked(worker_app, sock, workers, **options)
        if code:
            raise SystemExit(code)
        return
    from .gateway import Gateway

    try:
        Server(Gateway(store, token=token, max_concurrency=max_concurrency), **options).run(sock)
    finally:
        sock.close()
    logger.info("bitstore serve: stopped")


def _log_to_stderr() -> None:
    """The server's messages (and the access log when asked) on stderr, unless logging is configured already."""
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    if not logger.hasHandlers():
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()
