"""Store URLs read as spec tiers: the scheme names the tier type, the rest is the tier's prefix.

``s3://bucket/prefix/`` (s3), ``gs://bucket/prefix/`` (gcs), ``az://container/prefix/`` and its aliases
``abfs://`` and ``azure://`` (azure), ``file:///abs/dir/`` or a plain path (local), ``mem://name/`` (memory),
``http(s)://host/path/`` (http; a ``{sha1}`` marks where the key goes, else the key is appended). Parsing only:
``url_stores`` builds stores from them through the spec machinery, so a URL is validated by the same
declarations as a spec. Imports nothing but the ground layer.
"""
from __future__ import annotations

import os
import re
from typing import Any
from urllib.parse import urlsplit

from ..ground.errors import SpecError
from ..ground.fields import shown

__all__ = ["SCHEMES", "parse_url", "url_of", "TEMPLATES", "template_in"]

#: URL scheme -> spec tier type.
SCHEMES = {"s3": "s3", "gs": "gcs", "az": "azure", "abfs": "azure", "azure": "azure", "file": "local",
           "mem": "memory", "http": "http", "https": "http"}
#: Where the key goes in an http URL, by key family (the SHA1 or SHA-256 store fills it in).
TEMPLATES = {"sha1": "{sha1}", "sha256": "{sha256}"}
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_BUCKETED = {"s3": "s3://", "gcs": "gs://", "azure": "az://"}
# A Windows drive ("C:\\data") is a path, not a scheme; so is anything without "://".
_DRIVE = re.compile(r"[A-Za-z]:[\\/]")


class _Bad(Exception):
    """What is wrong with a URL (``parse_url`` turns it into the caller's error)."""


def parse_url(url: Any, key: str = "url", fail: Any = None) -> tuple[str, str, dict[str, str]]:
    """``(tier type, prefix, extra tier keys)`` of a store URL; when it is not one, ``fail(message, key)`` (a spec
    validator's), else ``SpecError`` at ``key``, naming what is wrong.

    The prefix is what the tier type's ``prefix`` key takes: the URL itself for s3, gs, mem and http (a bare
    ``s3://bucket`` gains its ``/``), ``az://container/...`` for the Azure aliases (``abfs://container@account.host/``
    also gives ``account_name``), and the path for ``file://`` URLs and plain paths.
    """
    try:
        return _parse(url)
    except _Bad as exc:
        if fail is not None:
            fail(str(exc), key)
        raise SpecError(str(exc), key=key) from None


def _parse(url: Any) -> tuple[str, str, dict[str, str]]:
    if not isinstance(url, str):
        raise _Bad(f"a store URL is a string, not {type(url).__name__}")
    text = url.strip()
    if not text or "\x00" in text:
        raise _Bad(f"not a store URL: {shown(url)}")
    match = _SCHEME.match(text)
    if match is None or _DRIVE.match(text):
        if "://" in text or text.startswith(("s3:", "gs:", "mem:", "az:", "http:", "https:")):
            raise _Bad(f"not a store URL: {shown(url)} (a URL looks like scheme://...)")
        return "local", text, {}
    scheme = match.group(1).lower()
    kind = SCHEMES.get(scheme)
    if kind is None:
        raise _Bad(f"unknown URL scheme {scheme!r} in {shown(_public(text))}; one of: "
                        f"{', '.join(s + '://' for s in SCHEMES)} or a plain path")
    rest = text[match.end():]
    if kind == "local":
        parts = urlsplit(text)
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise _Bad(f"a file URL is file:///absolute/path/, not {shown(text)}")
        from urllib.parse import unquote

        return "local", unquote(parts.path), {}
    if kind == "memory":
        if not rest:
            raise _Bad("a memory URL names its store: mem://name/")
        return "memory", f"mem://{rest}", {}
    if kind == "http":
        return "http", _http_prefix(text), {}
    return _bucketed(kind, scheme, rest, text)


def _bucketed(kind: str, scheme: str, rest: str, text: str) -> tuple[str, str, dict[str, str]]:
    bucket, _, path = rest.partition("/")
    extra: dict[str, str] = {}
    if kind == "azure" and "@" in bucket:  # abfs://container@account.dfs.core.windows.net/path
        bucket, _, host = bucket.partition("@")
        account = host.split(".", 1)[0]
        if account:
            extra["account_name"] = account
    word = "container" if kind == "azure" else "bucket"
    if not bucket or any(c in bucket for c in "?#@:\\ ") or "?" in path or "#" in path:
        raise _Bad(f"a {kind} URL looks like {scheme}://{word}/folder/, not {shown(_public(text))}")
    return kind, f"{_BUCKETED[kind]}{bucket}/{path}", extra


def _http_prefix(text: str) -> str:
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError as exc:
        raise _Bad(f"not a valid URL: {shown(_public(text))} ({exc})") from None
    if not parts.hostname:
        raise _Bad(f"an http URL names a host: {shown(_public(text))}")
    if parts.username is not None or parts.password is not None:
        raise _Bad("credentials do not go in a URL; name them with headers_env = { Authorization = "
                        "\"ENV_VAR\" }")
    if parts.fragment or "#" in text:
        raise _Bad(f"an http store URL has no #fragment: {shown(_public(text))}")
    count = sum(text.count(t) for t in TEMPLATES.values())
    if count > 1:
        raise _Bad(f"a placeholder ({' or '.join(TEMPLATES.values())}) may appear once in a URL, not {count} times")
    if count == 0 and parts.query:
        raise _Bad("a URL with a query string needs {sha1} (or {sha256}) where the key goes (e.g. ?hash={sha1})")
    bare = text
    for template in TEMPLATES.values():
        bare = bare.replace(template, "")
    if "{" in bare or "}" in bare:
        raise _Bad(f"the only placeholders a URL takes are {{sha1}} and {{sha256}}: {shown(_public(text))}")
    if count == 0 and not parts.path:
        return text + "/"
    return text


def url_of(kind: str, prefix: str) -> str:
    """The URL of a tier of type ``kind`` with ``prefix`` (``parse_url``'s inverse, up to normalisation)."""
    if kind == "local":
        return "file://" + prefix if os.path.isabs(prefix) else prefix
    return prefix


def _public(text: str) -> str:
    """A URL for a message: no query string, no user information."""
    parts = text.split("?", 1)[0]
    scheme, sep, rest = parts.partition("://")
    if sep and "@" in rest.split("/", 1)[0]:
        rest = rest.split("@", 1)[1]
    return f"{scheme}{sep}{rest}"


def template_in(prefix: str) -> str | None:
    """The key family whose placeholder stands in ``prefix`` (``"sha1"``, ``"sha256"``), or None."""
    return next((family for family, template in TEMPLATES.items() if template in prefix), None)
