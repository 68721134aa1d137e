"""Spec fields: each tier type declares its keys once, beside its backend, as a ``TierType``.

A ``Field`` says a key's value type, its range check, its default, what it means, and whether it is a
*reference* to a secret (a profile, an environment variable's name, a file) rather than a value.
``bitstore.spec`` reads the declarations to validate a spec (allowed keys, types, ranges, error
messages) and calls the declared ``build`` to turn a validated tier into its store. The groups every
tier shares (``COMMON``, ``LIMITS``, ``RETRY``) are declared here once; what the cloud tiers share
(``CLOUD``), beside ``CloudRaw`` in ``backends/_cloud.py``.
This module imports no backend and no SDK.
"""
from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from typing import Any

from .errors import SpecError
from .sizes import HINT as _SIZE_HINT
from .sizes import byte_size

__all__ = ["Field", "Check", "TierType", "Build", "COMMON", "LIMITS", "ROLE", "RETRY",
           "MAX_BLOB_BYTES", "MAX_BYTES", "BYTE_SIZE", "POSITIVE", "NON_NEGATIVE", "SECONDS", "NON_EMPTY", "one_of",
           "NUMBER", "env_name", "keyname", "shown"]

NUMBER = (int, float)
Fail = Callable[..., Any]  # fail(message, key) raises SpecError
_KIND_WORDS = {str: "a string", bool: "true or false", int: "an integer", float: "a number", dict: "a table",
               Mapping: "a table"}
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def shown(value: Any) -> str:
    """A value for an error message: its repr, cut to 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# Plain classes with __slots__ (not dataclasses): every backend module builds its declaration at import,
# and ``import bitstore`` should not pay for generated methods it never calls.
class Check:
    """A range check on one value: ``test(value)`` true, or ``message`` (followed by the value when
    ``show_value``); ``doc`` says it in the specs guide's key table."""

    __slots__ = ("test", "message", "doc", "show_value")

    def __init__(self, test: Callable[[Any], bool], message: str, doc: str, show_value: bool = False):
        self.test, self.message, self.doc, self.show_value = test, message, doc, show_value

    def __call__(self, value: Any, key: str, fail: Fail) -> Any:
        if not self.test(value):
            fail(f"{self.message}, not {shown(value)}" if self.show_value else self.message, key)
        return value


POSITIVE = Check(lambda v: v >= 1, "must be a positive integer", ">= 1")
NON_NEGATIVE = Check(lambda v: v >= 0, "must not be negative", ">= 0")
SECONDS = Check(lambda v: v > 0, "must be a number of seconds > 0", "> 0, seconds")
NON_EMPTY = Check(lambda v: v != "", "must not be empty", "not empty")


def one_of(values: tuple[str, ...]) -> Check:
    return Check(lambda v: v in values, f"must be one of {', '.join(values)}", ", ".join(values), show_value=True)


def keyname(key: Any) -> str:
    """A key for an error's key path: itself if a string, else its repr, cut short."""
    return key if isinstance(key, str) else repr(key)[:60]


def env_name(var: Any, key: str, fail: Fail) -> str:
    """An environment variable's NAME (never its value)."""
    if not isinstance(var, str) or not _ENV_NAME.fullmatch(var):
        fail("must be the NAME of an environment variable (letters, digits, _), not a value", key)
    return var


class Field:
    """One key of a tier (or of the spec's top level).

    ``kind`` is a Python type or a tuple of them; ``check`` (a ``Check`` or ``f(value, key, fail) -> value``)
    runs on a value of the right kind and may normalise it; ``wrong_kind`` replaces the generic "must be
    a string, not int" message; ``reference`` is ``"profile"``, ``"env"`` (environment variable names, read
    when the store is built) or ``"file"`` (a path, resolved against the spec file's folder) for keys that
    point at a secret instead of holding one; ``example`` is a valid value (tests and docs use it).
    """

    __slots__ = ("name", "kind", "doc", "example", "check", "default", "reference", "wrong_kind")

    def __init__(self, name: str, kind: Any, doc: str, example: Any,
                 check: Callable[[Any, str, Fail], Any] | None = None, *, default: Any = None,
                 reference: str | None = None, wrong_kind: str | None = None):
        self.name, self.kind, self.doc, self.example, self.check = name, kind, doc, example, check
        self.default, self.reference, self.wrong_kind = default, reference, wrong_kind

    def __repr__(self) -> str:
        return f"Field({self.name!r})"

    def validate(self, value: Any, key: str, fail: Fail) -> Any:
        """The value, checked for kind then range (normalised by the check), or ``fail(message, key)``."""
        if value is None:
            return None
        self.typed(value, key, fail)
        return value if self.check is None else self.check(value, key, fail)

    def typed(self, value: Any, key: str, fail: Fail) -> None:
        """``fail(message, key)`` unless the value is of the field's kind (a bool is not an int here)."""
        kinds = self.kind if isinstance(self.kind, tuple) else (self.kind,)
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            if self.wrong_kind:
                fail(self.wrong_kind, key)
            fail(f"must be {' or '.join(_KIND_WORDS[k] for k in kinds)}, not {type(value).__name__}", key)

    @property
    def value_doc(self) -> str:
        """The value column of the specs guide's key table: kind, then range."""
        kinds = self.kind if isinstance(self.kind, tuple) else (self.kind,)
        names = {str: "string", bool: "bool", int: "integer", dict: "table", Mapping: "table"}
        words = "number" if float in kinds else " or ".join(names[k] for k in kinds)
        doc = getattr(self.check, "doc", None)
        return f"{words} ({doc})" if doc else words


class Build:
    """What a tier's builder gets besides the tier: where it is, and how to read an environment variable."""

    __slots__ = ("where", "source", "uri_mode", "secrets")

    def __init__(self, where: str, source: str | None, uri_mode: bool):
        self.where, self.source, self.uri_mode = where, source, uri_mode
        self.secrets: list[str] = []  # values read as secrets: masked in any error

    def env(self, var: str, key: str, secret: bool = False) -> str:
        value = os.environ.get(var)
        if value is None:
            raise SpecError(f"environment variable {var} is not set", key=key, source=self.source)
        if secret:
            self.secrets.append(value)
        return value

    def raw_name(self, tier: Mapping[str, Any]) -> dict:
        """In uri mode the raw store is the tier and takes its name; with hash keys the Sha1Store (Sha256Store) does."""
        return {"name": tier["name"]} if self.uri_mode and "name" in tier else {}


class TierType:
    """A tier type: its fields and ``build(tier, Build) -> Store`` (the validated tier's store).

    ``open`` tiers (api) pass keys they do not declare on to their class; ``retry`` tiers fold their
    ``RETRY`` keys and the spec's top-level ``retry`` table into one ``tier["retry"]``; ``exclusive`` pairs
    of keys cannot be given together.
    """

    __slots__ = ("name", "fields", "build", "open", "retry", "exclusive", "by_name")

    def __init__(self, name: str, fields: tuple[Field, ...], build: Callable[[dict, Build], Any], *,
                 open: bool = False, retry: bool = False, exclusive: tuple[tuple[str, str], ...] = ()):
        self.name, self.fields, self.build = name, tuple(fields), build
        self.open, self.retry, self.exclusive = open, retry, exclusive
        self.by_name: dict[str, Field] = {f.name: f for f in self.fields}
        if len(self.by_name) != len(self.fields):
            raise ValueError(f"{self.name}: a field is declared twice")

    def __repr__(self) -> str:
        return f"TierType({self.name!r})"


LIMITS = (
    Field("max_concurrency", int, "at most this many calls to the tier at once", 4,
          Check(lambda v: v >= 1, "must be a positive integer (calls at once)", ">= 1")),
    Field("max_rate", NUMBER, "at most this many calls to the tier per second", 10.0,
          Check(lambda v: 0 < v < math.inf, "must be a positive number (calls per second)", "> 0, per second")),
)
ROLE = (
    Field("role", str, "`source` or `cache` (read at its position, and the write-back target; one cache at most)",
          "source", default="source"),
    Field("read", bool, "the cache tier only: false = only write to it, never read it", False, default=True),
    Field("cache_result", bool, "sources only: write this tier's hits back to the cache (default: false, true for "
          "api tiers)", True),
)
COMMON = (
    Field("name", str, "used in logs, metrics and errors", "archive", NON_EMPTY),
    *ROLE,
    Field("verify", bool, "check the hash (SHA1 or SHA-256) of what this tier serves (default: true for the "
          "cache, false for sources); hash keys only", True),
    *LIMITS,
)
RETRY = (
    Field("attempts", int, "tries per request (unset retry keys: the spec's `retry` table, else RetryPolicy's)", 3,
          POSITIVE),
    Field("base_delay", NUMBER, "first backoff delay, seconds", 0.05, NON_NEGATIVE),
    Field("max_delay", NUMBER, "longest backoff delay, seconds", 2.0, NON_NEGATIVE),
    Field("deadline", NUMBER, "give up retrying after this many seconds", 30.0, SECONDS),
    Field("max_retry_after", NUMBER, "longest Retry-After honoured, seconds", 60.0, NON_NEGATIVE),
)
MAX_BLOB_BYTES = Field("max_blob_bytes", int, "refuse larger objects", 1 << 20, POSITIVE)


def _byte_size(value: Any, key: str, fail: Fail) -> int:
    try:
        return byte_size(value)
    except ValueError:
        fail(f"{BYTE_SIZE.message}, not {shown(value)}", key)


class _ByteSize(Check):
    """A number of bytes: an int or a string with a unit (``ground.sizes``), normalised to an int."""

    __slots__ = ()

    def __call__(self, value: Any, key: str, fail: Fail) -> int:
        return _byte_size(value, key, fail)


def _is_byte_size(value: Any) -> bool:
    try:
        byte_size(value)
    except ValueError:
        return False
    return True


BYTE_SIZE = _ByteSize(_is_byte_size, f"must be {_SIZE_HINT}, >= 0", ">= 0; or a string with a unit: 512MiB, 20GiB, 1TB")
MAX_BYTES = Field("max_bytes", (int, str), "bound the bytes the tier holds: the least recently used blobs go first",
                  "20GiB", BYTE_SIZE, wrong_kind=f"must be {_SIZE_HINT}")
