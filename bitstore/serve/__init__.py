"""``bitstore serve``: a read-through HTTP gateway over any store (a composite, a spec), as an ASGI app.

``app(store, *, token=None, max_concurrency=64)`` is a raw ASGI callable (no web framework needed; mount it in
a Starlette or FastAPI service, or run it with uvicorn); ``run`` serves it with uvicorn (extra ``serve``).
Integrations layer: may import core, backends, spec and below.
"""
from __future__ import annotations

from typing import Any

__all__ = ["app", "Gateway", "run"]


def app(store: Any, *, token: str | None = None, max_concurrency: int = 64) -> Any:
    """The gateway over ``store`` as an ASGI app (see ``bitstore.serve.gateway``)."""
    from .gateway import Gateway

    return Gateway(store, token=token, max_concurrency=max_concurrency)


def __getattr__(name: str) -> Any:
    if name == "Gateway":
        from .gateway import Gateway

        return Gateway
    if name == "run":
        from .run import run

        return run
    raise AttributeError(f"module 'bitstore.serve' has no attribute {name!r}")
