"""``from_url`` and ``from_urls``: stores named by URLs, built through the spec machinery.

A URL becomes a one-tier spec dict (``urls.parse_url``: the scheme gives the tier type, the rest its prefix) and
the options become that tier's keys, so a URL store is validated by the same declarations as a spec (an unknown
option or scheme is a ``SpecError`` naming it) and pickles as its spec like any store a spec builds.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from ..core.store import Store
from ..ground.errors import SpecError
from .load import _TOP, load_spec
from .urls import parse_url

__all__ = ["from_url", "from_urls", "url_spec"]

#: Options that belong to the spec's top level rather than to a tier.
_TOP_OPTIONS = {"keys", "retry", "missing_ttl", "max_workers", "max_bytes_in_flight"} | {f.name for f in _TOP}
_TIER_ONLY = {"name"}
_READ_ONLY = {"http"}  # a tier's name; the composite takes it too when there is one tier


def from_url(url: str, **options: Any) -> Store:
    """A SHA1 store whose blobs live at ``url`` + sha1 (or where ``{sha1}`` stands in an http URL).

    ``options`` are the keys that tier type takes in a spec (``endpoint_url``, ``anonymous``, ``credentials_env``,
    ``headers_env``, ``max_bytes``, ...), plus the spec's top-level keys (``keys``, ``missing_ttl``, ``retry``).
    A writable tier is the store's cache tier (``put`` writes there, and reads check the SHA1 unless
    ``verify=False``); an http tier is a read-only source.
    """
    with _named_for_urls(single=True):
        spec = url_spec([url], **options)
        tier = spec["tier"][0]
        if tier["type"] not in _READ_ONLY:
            tier.setdefault("role", "cache")  # its one tier is where ``put`` writes, as the embedded local store's
        return load_spec(spec).build()


def from_urls(urls: Iterable[str | tuple[str, Mapping[str, Any]]], cache: str | None = None,
              **options: Any) -> Store:
    """A ``Sha1Composite`` over ``urls`` in order; ``cache``, when given, is read first and every hit from the other
    tiers is written back to it. ``options`` apply to every tier (and the spec's top level); an item may also be
    ``(url, {option: value})`` for options of that tier alone."""
    return load_spec(url_spec(urls, cache=cache, **options)).build()


def url_spec(urls: Iterable[str | tuple[str, Mapping[str, Any]]] | str, cache: str | None = None,
             **options: Any) -> dict[str, Any]:
    """The spec dict ``from_urls`` builds: one tier per URL (the cache first, ``role = "cache"``)."""
    if isinstance(urls, (str, bytes)):
        raise SpecError("from_urls takes a list of URLs (from_url takes one)", key="urls")
    keys = options.get("keys", "sha1")
    if keys == "uri":
        raise SpecError('a URL store is addressed by content: keys = "sha1" (or "sha256"), not "uri"', key="keys")
    top = {k: v for k, v in options.items() if k in _TOP_OPTIONS and k not in _TIER_ONLY}
    shared = {k: v for k, v in options.items() if k not in _TOP_OPTIONS or k in _TIER_ONLY}
    items = list(urls)
    tiers = []
    if cache is not None:
        tiers.append({**_tier(cache, shared, "cache"), "role": "cache"})
    for index, item in enumerate(items):
        url, own = (item if isinstance(item, tuple) and len(item) == 2 else (item, {}))
        if not isinstance(own, Mapping):
            raise SpecError(f"a tier's options are a dict, not {type(own).__name__}", key=f"urls[{index + 1}]")
        tier = _tier(url, {**shared, **own}, f"urls[{index + 1}]")
        if cache is not None:
            tier.setdefault("cache_result", True)  # every hit is written back to the cache
        tiers.append(tier)
    if not tiers:
        raise SpecError("no URLs given", key="urls")
    if len(tiers) == 1 and "name" not in top:
        top["name"] = shared.get("name") or _label(tiers[0])
    return {**top, "tier": tiers}


@contextmanager
def _named_for_urls(single: bool) -> Iterator[None]:
    """A ``SpecError`` about a one-URL store names the option (``endpoint_url``), not ``tier[1].endpoint_url``."""
    try:
        yield
    except SpecError as exc:
        key = exc.key or ""
        if not single or not (key.startswith("tier[1].") or key == "urls[1]"):
            raise
        message = str(exc).split(f" at '{key}': ", 1)[-1]
        raise SpecError(message, key="url" if key == "urls[1]" else key[len("tier[1]."):]) from None


def _tier(url: Any, options: Mapping[str, Any], key: str) -> dict[str, Any]:
    kind, prefix, extra = parse_url(url, key)
    for name in ("type", "prefix", "url"):
        if name in options:
            raise SpecError(f"{name} comes from the URL; it is not an option here", key=name)
    return {**extra, **options, "type": kind, "prefix": prefix}


def _label(tier: Mapping[str, Any]) -> str:
    """A name for a one-URL store: its URL, without a query string (which may carry a token)."""
    prefix = str(tier["prefix"]).split("?", 1)[0]
    return prefix if "://" in prefix else f"file://{prefix}"
