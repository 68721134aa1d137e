"""ASGI lifespan events on the lean server: ``startup`` before the first connection is taken, ``shutdown`` once the
requests in flight have finished (as uvicorn's ``lifespan="auto"``).

An app that answers ``lifespan.startup.failed`` stops the server before it serves (``LifespanFailed``); an app that
raises or returns before answering the startup does not speak the lifespan protocol and is served without it. The
``state`` the app fills during startup is copied into each request's scope (ASGI's lifespan state).
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["Lifespan", "LifespanFailed"]

logger = logging.getLogger("bitstore.serve")

_ASGI = {"version": "3.0", "spec_version": "2.0"}


class LifespanFailed(RuntimeError):
    """The app answered ``lifespan.startup.failed`` (or ``shutdown.failed``): its message."""


class Lifespan:
    """One app's lifespan: ``await startup()`` before serving, ``await shutdown()`` after."""

    def __init__(self, app: Callable[..., Awaitable[None]], *, timeout: float = 30.0):
        self.app = app
        self.timeout = timeout
        self.state: dict[str, Any] = {}
        self.supported = False  # the app answered the startup
        self._inbox: asyncio.Queue[dict] = asyncio.Queue()
        self._started = asyncio.Event()
        self._stopped = asyncio.Event()
        self._failure: str | None = None
        self._task: asyncio.Task | None = None

    async def startup(self) -> None:
        """Send ``lifespan.startup`` and wait for the answer (at most ``timeout`` seconds); ``LifespanFailed`` when
        the app says it failed, or does not answer in time."""
        self._task = asyncio.get_running_loop().create_task(self._run())
        await self._inbox.put({"type": "lifespan.startup"})
        try:
            await asyncio.wait_for(self._started.wait(), self.timeout)
        except TimeoutError:
            raise LifespanFailed(f"the app did not answer lifespan.startup in {self.timeout:g}s") from None
        if self._failure is not None:
            raise LifespanFailed(f"the app's startup failed: {self._failure}")

    async def shutdown(self) -> None:
        """Send ``lifespan.shutdown`` and wait for the answer (at most ``timeout`` seconds; a failure is logged)."""
        task = self._task
        if task is None or not self.supported or task.done():
            return
        await self._inbox.put({"type": "lifespan.shutdown"})
        try:
            await asyncio.wait_for(self._stopped.wait(), self.timeout)
        except TimeoutError:
            logger.error("the app did not answer lifespan.shutdown in %gs", self.timeout)
            task.cancel()
        if self._failure is not None:
            logger.error("the app's shutdown failed: %s", self._failure)

    async def _run(self) -> None:
        scope = {"type": "lifespan", "asgi": _ASGI, "state": self.state}
        try:
            await self.app(scope, self._receive, self._send)
        except BaseException as exc:  # noqa: BLE001 - an app without lifespan support, or one that failed
            if not self.supported:
                logger.info("the app does not speak the ASGI lifespan protocol (%s): served without it",
                            type(exc).__name__)
            else:
                self._failure = self._failure or f"{type(exc).__name__}: {exc}"
            if isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            self._started.set()
            self._stopped.set()

    async def _receive(self) -> dict:
        return await self._inbox.get()

    async def _send(self, message: dict) -> None:
        kind = message.get("type")
        if kind in ("lifespan.startup.complete", "lifespan.startup.failed"):
            self.supported = True
            if kind == "lifespan.startup.failed":
                self._failure = str(message.get("message", "") or "no message")
            self._started.set()
        elif kind in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
            if kind == "lifespan.shutdown.failed":
                self._failure = str(message.get("message", "") or "no message")
            self._stopped.set()
        else:
            raise RuntimeError(f"unexpected lifespan message {kind!r}")
