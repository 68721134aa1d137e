"""User-level stores and factories for the Beam tests. Workers import this module, so keep it light."""
from __future__ import annotations

import os
import uuid

from bitstore import LocalRaw, NotFoundInStore, Sha1APISource, Sha1Cache, Sha1Composite, Sha1Store, Store

CANARY = "BITSTORE-BEAM-CANARY-9d41e7"
WRONG_BYTES = b"these bytes do not match their sha1"
BUILDS: list[int] = []  # pids of count_builds calls in this process


class FlakyTier(Store):
    """A user's own tier: raises for the keys in ``fail_keys``, answers "not found" for the rest."""

    def __init__(self, fail_keys):
        self.fail_keys = frozenset(fail_keys)

    def is_valid(self, uri) -> bool:
        return isinstance(uri, str) and len(uri) == 40

    def get(self, uri) -> bytes:
        if uri in self.fail_keys:
            raise RuntimeError("flaky backend exploded")
        raise NotFoundInStore(self, uri)


class LyingAPI(Sha1APISource):
    """An API source serving bytes that do not match their SHA1 for one key (so write-back is refused)."""

    def __init__(self, lie_about: str):
        super().__init__(name="lying-api")
        self.lie_about = lie_about

    def api_get(self, sha1: str) -> bytes | None:
        return WRONG_BYTES if sha1 == self.lie_about else None


class KeyedAPI(Sha1APISource):
    """An API source built from a spec, holding an API key the library read from the environment."""

    def __init__(self, api_key: str, folder: str):
        super().__init__(name="keyed-api")
        self.api_key = api_key
        self.folder = folder

    def api_get(self, sha1: str) -> bytes | None:
        path = os.path.join(self.folder, sha1)
        if not os.path.exists(path):
            return None
        with open(path, "rb") as f:
            return f.read()


def tiered_store(root: str, marker_dir: str, fail_keys=(), lie_about: str = "0" * 40) -> Sha1Composite:
    """cache (read first, write-back target) -> flaky tier -> lying API -> archive (hits cached).

    Leaves a marker file named after the building process in ``marker_dir``.
    """
    os.makedirs(marker_dir, exist_ok=True)
    with open(os.path.join(marker_dir, f"{os.getpid()}-{uuid.uuid4().hex}"), "w"):
        pass
    store = Sha1Composite(name="tiered")
    os.makedirs(os.path.join(root, "cache"), exist_ok=True)  # a cache starts empty, not absent (a missing root fails)
    store.append_cache(Sha1Cache(LocalRaw(os.path.join(root, "cache")), "", name="cache"))
    store.append_source(FlakyTier(fail_keys), cache_result=False)
    store.append_source(LyingAPI(lie_about))
    store.append_source(Sha1Store(LocalRaw(os.path.join(root, "archive")), "", name="archive"), cache_result=True)
    return store


def marker_pids(marker_dir: str) -> list[int]:
    """The pid of every store build recorded in ``marker_dir`` (one entry per build)."""
    return [int(name.split("-")[0]) for name in os.listdir(marker_dir)] if os.path.isdir(marker_dir) else []


def count_builds() -> Store:
    """A factory that records each call in ``BUILDS``."""
    BUILDS.append(os.getpid())
    return Sha1Composite(name="counted")


class FailingAPI(Sha1APISource):
    """An API source (for specs) that fails for one key and has nothing else."""

    def __init__(self, fail_key: str):
        super().__init__(name="failing-api")
        self.fail_key = fail_key

    def api_get(self, sha1: str) -> bytes | None:
        if sha1 == self.fail_key:
            raise RuntimeError("the API is down")
        return None
