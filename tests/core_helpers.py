"""Small user-level stores for the core tests: written the way a user would, against the public API only."""
from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter

from bitstore import FetchFailed, MemoryRaw, NotFoundInStore, Sha1APISource, Store
from bitstore.ground.errors import Throttled

CANARY = "AKIA-CANARY-SECRET-7f3b9c"


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


class DictStore(Store):
    """A user store defining only ``is_valid`` and ``get``; it never calls ``Store.__init__``.

    ``fail`` maps a key to the exception ``get`` raises for it; ``calls`` counts gets per key.
    """

    def __init__(self, blobs=None, prefix: str = "", fail=None):
        self.blobs = dict(blobs or {})
        self.prefix = prefix
        self.fail = dict(fail or {})
        self.calls: Counter = Counter()
        self._lock = threading.Lock()

    def is_valid(self, uri) -> bool:
        return isinstance(uri, str) and uri.startswith(self.prefix)

    def get(self, uri) -> bytes:
        with self._lock:
            self.calls[uri] += 1
        if uri in self.fail:
            raise self.fail[uri]
        try:
            return self.blobs[uri]
        except KeyError:
            raise NotFoundInStore(self, uri) from None

    def __getstate__(self):
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()


class WritableDictStore(DictStore):
    """A ``DictStore`` with ``put``; ``put_error`` makes every put raise it."""

    def __init__(self, blobs=None, prefix: str = "", fail=None, put_error: Exception | None = None):
        super().__init__(blobs, prefix, fail)
        self.put_error = put_error
        self.puts: list = []

    def put(self, uri, data: bytes) -> None:
        if self.put_error is not None:
            raise self.put_error
        self.puts.append(uri)
        self.blobs[uri] = bytes(data)


class SecretHoldingStore(DictStore):
    """A store with a normal name whose attributes (and repr) hold a secret."""

    def __init__(self, blobs=None, fail=None):
        super().__init__(blobs, fail=fail)
        self.api_key = CANARY

    @property
    def name(self) -> str:
        return "secret-holder"

    def __repr__(self) -> str:
        return f"SecretHoldingStore(api_key={self.api_key!r})"


class DictAPI(Sha1APISource):
    """An API source answering from a dict; counts its calls."""

    def __init__(self, blobs=None, verify: bool = False, name: str | None = None):
        super().__init__(verify=verify, name=name)
        self.blobs = dict(blobs or {})
        self.calls: Counter = Counter()

    def api_get(self, sha1: str) -> bytes | None:
        self.calls[sha1] += 1
        return self.blobs.get(sha1)


class QuotaState:
    """What a ``QuotaAPI`` saw: calls, calls at once (now and at the peak), calls answered 429."""

    def __init__(self):
        self.lock = threading.Lock()
        self.calls = self.current = self.peak = self.throttled = 0


#: Per process, by group name: pickled copies of a QuotaAPI (Beam workers) count in the same place.
QUOTAS: dict[str, QuotaState] = {}


def quota_state(group: str) -> QuotaState:
    with _QUOTAS_LOCK:
        return QUOTAS.setdefault(group, QuotaState())


_QUOTAS_LOCK = threading.Lock()


class QuotaAPI(Sha1APISource):
    """A paid API with a quota of ``quota`` calls at once: a call above it is answered 429 (``Throttled``).

    Each call takes ``delay`` seconds (``sleep``, so calls overlap); the counts live in ``quota_state(group)``.
    """

    def __init__(self, blobs, quota: int, delay: float = 0.002, group: str = "quota", name: str = "quota-api",
                 sleep=None):
        super().__init__(name=name)
        self.blobs, self.quota, self.delay, self.group = dict(blobs), quota, delay, group
        self.sleep = sleep

    def api_get(self, sha1: str) -> bytes | None:
        state = quota_state(self.group)
        with state.lock:
            state.calls += 1
            state.current += 1
            state.peak = max(state.peak, state.current)
            over = state.current > self.quota
            state.throttled += over
        try:
            if over:
                raise Throttled(retry_after=None)
            (self.sleep or time.sleep)(self.delay)
            return self.blobs.get(sha1)
        finally:
            with state.lock:
                state.current -= 1


class BrokenListing(MemoryRaw):
    """A memory store whose listing fails (``FetchFailed``) after ``breaks_after`` names."""

    breaks_after = 5

    def list_names(self, prefix, *, start_after=None):
        for n, entry in enumerate(super().list_names(prefix, start_after=start_after)):
            if n == self.breaks_after:
                raise FetchFailed(self, prefix, "the listing broke")
            yield entry
