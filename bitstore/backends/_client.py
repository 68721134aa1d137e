"""Per-process SDK clients (built lazily, shared by threads, rebuilt after ``fork``) and optional imports."""
from __future__ import annotations

import copy
import importlib
import os
import threading
import time
import types
import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")

__all__ = ["ProcessLocal", "EnvVar", "endpoint_problem", "require", "resolve_transport", "TRANSPORTS"]

TRANSPORTS = ("auto", "sdk", "fast")


#: Values a forked child inherited from its parent. They are kept, never freed: freeing an obstore client in the
#: child takes a tokio lock that a parent thread may have held at the fork, and the child would wait forever.
_inherited: list[Any] = []
_holders: weakref.WeakSet[ProcessLocal] = weakref.WeakSet()


def _keep_inherited_values() -> None:
    """At fork, in the child: every holder lets go of its parent's value without freeing it."""
    for holder in list(_holders):
        holder._let_go()


class ProcessLocal(Generic[T]):
    """One value per process made by ``factory`` on first use (under a lock, so threads share one).

    A failed build is remembered for ``retry_after`` seconds, so a store whose credentials do not work
    fails fast instead of re-probing them for every blob. Stores drop their holders when pickled. A bound
    method is held weakly, so a store and its holders are no reference cycle (freed at once, never by the
    cyclic collector at an arbitrary line). In a forked child the parent's value is kept alive, not freed.
    """

    def __init__(self, factory: Callable[[], T], retry_after: float = 30.0):
        self._factory: Callable[[], Callable[[], T] | None] = (
            weakref.WeakMethod(factory) if isinstance(factory, types.MethodType) else lambda: factory)
        self._retry_after = retry_after
        self._reset()
        _holders.add(self)

    def _let_go(self) -> None:
        """Start afresh in a forked child, keeping (not freeing) the parent's value."""
        if self._value is not None:
            _inherited.append(self._value)
        self._reset()

    def _reset(self) -> None:
        self._pid: int | None = None
        self._value: T | None = None
        self._failure: tuple[BaseException, float] | None = None
        self._lock = threading.Lock()
        self._lock_pid = os.getpid()

    def get(self) -> T:
        pid = os.getpid()
        if self._pid == pid:
            return self._value  # type: ignore[return-value]
        if self._lock_pid != pid:  # forked: the parent's lock may have been held by a thread that no longer exists
            self._let_go()
        with self._lock:
            if self._pid != pid:
                failure = self._failure
                if failure is not None and time.monotonic() - failure[1] < self._retry_after:
                    raise copy.copy(failure[0]) from None  # a fresh object: tracebacks do not pile up
                factory = self._factory()
                if factory is None:
                    raise RuntimeError("the store that owns this client no longer exists")
                try:
                    self._value = factory()
                except Exception as exc:
                    self._failure = (exc, time.monotonic())
                    raise
                self._failure = None
                self._pid = pid
        return self._value  # type: ignore[return-value]


def endpoint_problem(url: str | None) -> str | None:
    """What makes ``url`` unusable as a service endpoint (a configuration error), or None when it is usable."""
    from urllib.parse import urlsplit

    if not url:
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError as exc:
        return f"endpoint {url!r} is not a valid URL ({exc})"
    if parts.scheme not in ("http", "https"):
        return f"endpoint {url!r} must start with http:// or https://"
    if not parts.hostname:
        return f"endpoint {url!r} names no host"
    return None


def require(module: str, extra: str):
    """Import ``module`` or raise an ImportError that names the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"{module} is needed for this store: pip install 'bitstore-tiered[{extra}]' ({exc})", name=exc.name
        ) from exc


def resolve_transport(transport: str) -> str:
    """``"sdk"`` or ``"fast"``: ``"auto"`` is ``"fast"`` when obstore is installed."""
    if transport == "sdk":
        return "sdk"
    if transport == "fast":
        require("obstore", "fast")
        return "fast"
    try:
        importlib.import_module("obstore")
    except ImportError:
        return "sdk"
    return "fast"


class EnvVar:
    """A credential named by the environment variable that holds it. It is read in each process when the
    client is built, so the value never travels in a pickle and never appears in a repr."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def value(self) -> str:
        value = os.environ.get(self.name)
        if value is None:
            raise KeyError(f"environment variable {self.name} is not set")
        return value

    def __eq__(self, other) -> bool:
        return isinstance(other, EnvVar) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return f"EnvVar({self.name!r})"

    def __reduce__(self):
        return EnvVar, (self.name,)


def resolve_env(options: dict) -> dict:
    """``options`` with every ``EnvVar`` value replaced by the variable's value (``KeyError`` if unset)."""
    return {k: v.value() if isinstance(v, EnvVar) else v for k, v in options.items()}


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_keep_inherited_values)
