"""Store specs: a dict or a TOML file describing tiers in order, turned into a ready ``Store``.

Each tier type declares its keys and how a tier becomes a store once, beside its backend (a
``fields.TierType``); this module reads those declarations and keeps the rules between keys, one
place each. ``load_spec`` validates a spec without importing any SDK or connecting anywhere and
returns a picklable ``Spec`` (plain data, no live clients, no secret values: credentials are referenced
by profile or environment variable name and resolved by ``Spec.build``, in the process that builds the
store). ``from_spec`` is ``load_spec(...).build()``.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..core.composite import Composite
from ..core.hashed import family_of
from ..core.keys import KEY_NAMES, family_named
from ..core.sha1 import Sha1Composite
from ..core.sha256 import Sha256Composite
from ..core.store import Store
from ..ground.errors import SpecError, short
from ..ground.fields import (
    LIMITS,
    NON_EMPTY,
    NUMBER,
    POSITIVE,
    RETRY,
    ROLE,
    Build,
    Check,
    Field,
    TierType,
    env_name,
    keyname,
    shown,
)
from ..ground.retry import RetryPolicy
from .urls import parse_url, template_in

__all__ = ["Spec", "load_spec", "from_spec", "default_spec", "TIER_TYPES"]

# Each tier type's fields and builder are declared beside its backend (``TIER``, a ``fields.TierType``),
# imported when a spec uses that type: loading a spec never imports an SDK, and importing this module
# imports no cloud backend. The api tier is declared below.
_DECLARED_IN = {kind: f"bitstore.backends.{kind}" for kind in ("s3", "gcs", "azure", "local", "memory", "http")}
#: The tier types this installation declares (a backend module that is absent, azure before it lands, is left out).
TIER_TYPES = (*(kind for kind, module in _DECLARED_IN.items() if importlib.util.find_spec(module) is not None), "api")
_TOP = (
    Field("name", str, "used in logs and metrics", "blobs", NON_EMPTY),
    Field("max_workers", int, "default concurrency of `bitstore fetch`", 64, POSITIVE),
    Field("max_bytes_in_flight", int, "default bound on blob bytes held at once", 1 << 28, POSITIVE),
    Field("missing_ttl", NUMBER, "seconds a miss is remembered", 60.0,
          Check(lambda v: 0 < v < float("inf"), "must be a positive number of seconds", "> 0, seconds")),
)
_TOP_KEYS = {"keys", "retry", "tier", *(f.name for f in _TOP)}
_RETRY_KEYS = {f.name for f in RETRY}
_ROLES = ("source", "cache")
_SECRET_KEY = re.compile(
    r"secret|passw|token|private[_-]?key|api[_-]?key|access[_-]?key|credential|bearer|(?:^|_)auth$", re.I
)
# Keys that name or count something rather than hold it ("token_url", "secret_name", "max_tokens").
_REFERENCE_KEY = re.compile(r"^(?:max|min|num)_|_(?:env|file|path|url|uri|name)$", re.I)
_CLASS_REF = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")


def declaration(kind: str) -> TierType:
    """The declared fields and builder of a tier type (one of ``TIER_TYPES``); ``SpecError`` when the backend
    module that declares it is not part of this installation."""
    if kind == "api":
        return _API
    module = _DECLARED_IN[kind]
    try:
        return importlib.import_module(module).TIER
    except ModuleNotFoundError as exc:
        if exc.name != module:  # the module is there; something it imports at load time is not
            raise
        raise SpecError(_not_installed(kind, module), key="type") from None


def _not_installed(kind: str, module: str) -> str:
    return f"the {kind} backend is not installed ({module} is missing from this bitstore)"


@dataclass(frozen=True)
class Spec:
    """A validated store spec: plain data that pickles. ``build()`` makes the store it describes."""

    tiers: tuple[dict, ...]
    keys: str = "sha1"
    name: str | None = None
    max_workers: int | None = None
    max_bytes_in_flight: int | None = None
    missing_ttl: float | None = None
    source: str | None = field(default=None, compare=False)

    @property
    def cache_index(self) -> int | None:
        """Index of the cache tier (the write-back target), or None."""
        return next((i for i, t in enumerate(self.tiers) if t.get("role") == "cache"), None)

    @property
    def write_index(self) -> int | None:
        """Where ``put`` writes: the cache tier, else the first tier that is not an API source."""
        if self.cache_index is not None:
            return self.cache_index
        return next((i for i, t in enumerate(self.tiers) if t["type"] != "api"), None)

    @property
    def uses_env(self) -> bool:
        """Whether building reads environment variables (``credentials_env`` or an api tier's ``env``)."""
        return any(f.reference == "env" and f.name in t for t in self.tiers for f in declaration(t["type"]).fields)

    def build(self) -> Store:
        """The composite store this spec describes (resolves environment variable references now).

        The store pickles as this spec: unpickling builds it again, reading the environment variables in
        the new process, so values read from the environment never travel in a pickle.
        """
        composite = _composite_class(self.keys)(name=self.name, missing_ttl=self.missing_ttl)
        for index, tier in enumerate(self.tiers):
            store = self.build_tier(index)
            # Every build of this spec in a process shares each tier's limiter (Beam workers, notebooks).
            limits = {f.name: tier.get(f.name) for f in LIMITS} | {"limit_group": f"spec:{self._digest()}:{index}"}
            if tier.get("role") == "cache":
                composite.append_cache(store, read=tier.get("read", True), **limits)
            else:
                default = True if tier["type"] == "api" else None  # api tiers write back, whatever their class
                composite.append_source(store, cache_result=tier.get("cache_result", default), **limits)
        composite._spec_origin = (self, composite.tier_names, len(composite.sources))
        return composite

    def _digest(self) -> str:
        text = json.dumps([self.keys, self.tiers], sort_keys=True, default=repr)
        return hashlib.sha1(text.encode()).hexdigest()[:16]

    def build_tier(self, index: int) -> Store:
        """One tier on its own: the key family's store or cache (``Sha1Store``/``Sha1Cache`` for keys = "sha1",
        ``Sha256Store``/``Sha256Cache`` for "sha256") over a raw store, the raw store (keys = "uri"), or the API
        source."""
        tier = self.tiers[index]
        where = f"tier[{index + 1}]"
        build = Build(where, self.source, self.keys == "uri")  # build.secrets: never shown in an error
        try:
            raw = declaration(tier["type"]).build(tier, build)
            family = family_named(self.keys)
            if family is None:
                return raw
            if tier["type"] == "api":
                _check_family(raw, family.family, where, self)
                return raw
            if tier.get("role") == "cache":
                return family.cache(raw, tier["prefix"], verify=tier.get("verify", True), name=tier.get("name"))
            return family.store(raw, tier["prefix"], verify=tier.get("verify", False), name=tier.get("name"))
        except SpecError:
            raise
        except Exception as exc:  # any error of a constructor: the tier and the file it came from, one line
            raise SpecError(f"cannot build the {tier['type']} tier: {_described(exc, build.secrets)}", key=where,
                            source=self.source) from None


def _check_family(source: Store, family: Any, where: str, spec: Spec) -> None:
    """An api tier keyed by another hash would never be asked (its keys are not the composite's): refuse it."""
    own = family_of(source)
    if own is not None and own != family:
        raise SpecError(f"{type(source).__name__} is keyed by {own.label}, but the spec says keys = "
                        f"\"{spec.keys}\" ({family.label}); use a source keyed by {family.label}", key=f"{where}.class",
                        source=spec.source)


class _BuiltFromSpec:
    """Mixin of the composites ``Spec.build`` makes: they pickle as their spec (see ``Spec.build``).

    A store changed after it was built (tiers added) pickles as usual, unless its spec read environment
    variables: then pickling refuses rather than carry those values.
    """

    def __reduce_ex__(self, protocol):
        origin = self.__dict__.get("_spec_origin")
        if origin is not None:
            spec, names, count = origin
            if self.tier_names == names and len(self.sources) == count:
                return from_spec, (spec,)
            if spec.uses_env:
                raise TypeError("this store was changed after it was built from a spec that reads environment "
                                "variables; pickle the Spec (bitstore.spec.load_spec) instead")
        return super().__reduce_ex__(protocol)

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_spec_origin", None)
        return state


class SpecSha1Composite(_BuiltFromSpec, Sha1Composite):
    """The ``Sha1Composite`` a spec with ``keys = "sha1"`` builds."""

    def _default_name(self) -> str:
        return "Sha1Composite"


class SpecSha256Composite(_BuiltFromSpec, Sha256Composite):
    """The ``Sha256Composite`` a spec with ``keys = "sha256"`` builds."""

    def _default_name(self) -> str:
        return "Sha256Composite"


class SpecComposite(_BuiltFromSpec, Composite):
    """The ``Composite`` a spec with ``keys = "uri"`` builds."""

    def _default_name(self) -> str:
        return "Composite"


_COMPOSITES = {"sha1": SpecSha1Composite, "sha256": SpecSha256Composite, "uri": SpecComposite}


def _composite_class(keys: str) -> type:
    return _COMPOSITES[keys]


def from_spec(spec: Spec | Mapping[str, Any] | str | os.PathLike) -> Store:
    """Build the store a spec describes; ``spec`` is a dict, a path to a TOML file, or a ``Spec``."""
    return load_spec(spec).build()


def load_spec(spec: Spec | Mapping[str, Any] | str | os.PathLike) -> Spec:
    """Validate a spec (dict, TOML path, or ``Spec``) without building anything; raises ``SpecError``."""
    if isinstance(spec, Spec):
        return spec
    if isinstance(spec, Mapping):
        return _validate(spec, source=None, base_dir=os.getcwd())
    if isinstance(spec, (str, os.PathLike)):
        path = os.fspath(spec)
        return _validate(_read_toml(path), source=path, base_dir=os.path.dirname(os.path.abspath(path)))
    raise SpecError(f"a spec is a dict or a path to a TOML file, not {type(spec).__name__}")


def load_spec_or_default(path: str | os.PathLike | None) -> Spec:
    """The spec at ``path``, else the embedded local store under ``$BITSTORE_HOME`` (default ``~/.bitstore``)."""
    if path:
        return load_spec(path)
    home = os.environ.get("BITSTORE_HOME") or os.path.join(os.path.expanduser("~"), ".bitstore")
    return load_spec(default_spec(home))


def default_spec(home: str | os.PathLike) -> dict[str, Any]:
    """The embedded store: one local tier under ``home/blobs/``, read first and used as the cache."""
    folder = os.path.join(os.path.abspath(os.path.expanduser(os.fspath(home))), "blobs")
    return {"keys": "sha1", "tier": [{"type": "local", "prefix": folder + os.sep, "role": "cache", "name": "local"}]}


# --- reading and validating ------------------------------------------------------------------------
def _read_toml(path: str) -> dict:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise SpecError(f"cannot read the spec file: {exc.strerror or type(exc).__name__}", source=path) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SpecError(f"not valid TOML: {exc}", source=path) from None


def _validate(raw: Mapping[str, Any], source: str | None, base_dir: str) -> Spec:
    def fail(message: str, key: str | None = None):
        raise SpecError(message, key=key, source=source)

    _reject_secrets(raw, "", fail)
    raw = {k: v for k, v in raw.items() if v is not None}  # None means "not given", as in a keyword argument
    for key in raw:
        if key not in _TOP_KEYS:
            fail(f"unknown key (top-level keys are: {', '.join(sorted(_TOP_KEYS))})", keyname(key))
    keys = raw.get("keys", "sha1")
    if not isinstance(keys, str) or keys not in KEY_NAMES:
        fail(f"must be one of {', '.join(repr(k) for k in KEY_NAMES)}, not {shown(keys)}", "keys")
    top = {f.name: f.validate(raw.get(f.name), f.name, fail) for f in _TOP}
    default_retry = _retry_table(raw.get("retry"), fail)
    tiers = raw.get("tier")
    if tiers is None:
        fail("a spec needs at least one [[tier]]", "tier")
    if not isinstance(tiers, list) or not tiers or not all(isinstance(t, Mapping) for t in tiers):
        fail("must be a non-empty list of tables ([[tier]] sections)", "tier")
    out = tuple(_validate_tier(t, i, keys, default_retry, base_dir, fail) for i, t in enumerate(tiers))
    roles = [i for i, t in enumerate(out) if t.get("role") == "cache"]
    if len(roles) > 1:
        fail("only one tier can have role = \"cache\"", f"tier[{roles[1] + 1}].role")
    if not roles:
        for i, t in enumerate(out):
            if t.get("cache_result") is True:
                fail("cache_result = true needs a tier with role = \"cache\"", f"tier[{i + 1}].cache_result")
    return Spec(tiers=out, keys=keys, **top, source=source)


def _validate_tier(tier: Mapping[str, Any], index: int, keys: str, default_retry: dict, base_dir: str, fail) -> dict:
    """Each key alone (declared, of its kind, in range), then the rules between keys, in one place each."""
    where = f"tier[{index + 1}]"
    tier = _url_tier(tier, where, fail)
    kind = tier.get("type")
    if kind is None:
        fail(f"missing; one of: {', '.join(TIER_TYPES)}", f"{where}.type")
    if not isinstance(kind, str) or kind not in TIER_TYPES and kind not in _DECLARED_IN:
        fail(f"unknown tier type {shown(kind)}; one of: {', '.join(TIER_TYPES)}", f"{where}.type")
    try:
        declared = declaration(kind)
    except SpecError:
        fail(_not_installed(kind, _DECLARED_IN[kind]), f"{where}.type")
    fields = declared.by_name
    # None means "not given"; an open (api) tier passes its class's own keyword arguments on as they are.
    out = {k: v for k, v in tier.items() if v is not None or declared.open and k not in fields and k != "type"}
    for key, value in out.items():  # first every key's name and kind, in the order given
        if not isinstance(key, str):
            fail("keys must be strings", f"{where}.{keyname(key)}")
        if key in fields:
            fields[key].typed(value, f"{where}.{key}", fail)
        elif key != "type" and not declared.open:
            fail(f"unknown key for a {kind} tier (allowed: {', '.join(sorted({'type', *fields}))})", f"{where}.{key}")
    for key in [k for k in out if k in fields]:  # then each value's range, normalised (a file: an absolute path)
        out[key] = fields[key].validate(out[key], f"{where}.{key}", fail)
        if fields[key].reference == "file":
            out[key] = _abspath(out[key], base_dir)
    role = out.setdefault("role", fields["role"].default)
    if role not in _ROLES:
        fail(f"must be \"source\" or \"cache\", not {shown(role)}", f"{where}.role")
    if role == "cache" and "cache_result" in out:
        fail("cache_result applies to sources, not to the cache tier", f"{where}.cache_result")
    if role != "cache" and "read" in out:
        fail("read applies only to the tier with role = \"cache\"", f"{where}.read")
    if kind == "api":
        return _validate_api(out, where, fail)
    if keys == "uri" and "verify" in out:
        fail("verify applies to hash-keyed tiers (keys = \"sha1\" or \"sha256\")", f"{where}.verify")
    refs = [f.name for f in declared.fields if f.reference and f.name in out]
    if out.get("anonymous") and refs:
        fail(f"anonymous = true cannot be combined with {refs[0]}", f"{where}.anonymous")
    for first, second in declared.exclusive:
        if first in out and second in out:
            fail(f"use {first} or {second}, not both", f"{where}.{second}")
    if declared.retry:
        policy = {**default_retry, **{k: out.pop(k) for k in sorted(_RETRY_KEYS) if k in out}}
        if policy:
            try:
                RetryPolicy(**policy)
            except (TypeError, ValueError) as exc:
                fail(str(exc), f"{where}.attempts")
            out["retry"] = policy
    prefix = _prefix(out, kind, fields["prefix"].default, where, keys, base_dir, fail)
    out.pop("prefix", None)
    return out if prefix is None else {**out, "prefix": prefix}


def _url_tier(tier: Mapping[str, Any], where: str, fail) -> Mapping[str, Any]:
    """A tier that says ``url = "..."`` as the tier with the type and prefix that URL names (``urls.parse_url``).

    ``url`` replaces ``type`` + ``prefix``: giving it with either is an error, except ``type = "http"`` (whose
    documented form is ``url``, with an http(s) URL) and api tiers (whose class may take a ``url`` argument).
    """
    url = tier.get("url")
    kind = tier.get("type")
    if url is None or kind == "api":
        return tier
    if not isinstance(url, str):
        fail(f"must be a string (a store URL), not {type(url).__name__}", f"{where}.url")
    if "prefix" in tier and tier["prefix"] is not None:
        fail("use url or type + prefix, not both", f"{where}.prefix")
    if kind is not None and kind != "http":
        fail(f"url = ... names the tier type itself; give url, or type + prefix, not both (type = {shown(kind)})",
             f"{where}.type")
    parsed, prefix, extra = parse_url(url, f"{where}.url", fail)
    if kind == "http" and parsed != "http":
        fail(f"an http tier's url starts with http:// or https://, not {shown(url)}", f"{where}.url")
    out = {k: v for k, v in tier.items() if k != "url"}
    for name, value in extra.items():
        out.setdefault(name, value)
    return {**out, "type": parsed, "prefix": prefix}


def _validate_api(tier: dict, where: str, fail) -> dict:
    if "class" not in tier:
        fail("an api tier needs class = \"package.module:ClassName\"", f"{where}.class")
    for arg, var in tier.get("env", {}).items():
        if arg in _API.by_name or arg == "type":
            fail(f"{arg!r} is not a keyword argument of the class", f"{where}.env.{arg}")
        if arg in tier:
            fail("given both directly and through env", f"{where}.env.{arg}")
        env_name(var, f"{where}.env.{arg}", fail)
    return tier


def _class_ref(ref: str, key: str, fail) -> str:
    if not _CLASS_REF.fullmatch(ref):
        fail(f"must look like \"package.module:ClassName\", not {shown(ref)}", key)
    return ref


def _prefix(tier: dict, kind: str, default: str | None, where: str, keys: str, base_dir: str, fail) -> str | None:
    prefix = tier.get("prefix")
    key = f"{where}.prefix"
    if keys == "uri":
        if prefix is not None and kind != "local":
            fail("with keys = \"uri\" a tier serves whole URIs; only a local tier takes a prefix (its root folder)",
                 key)
        return None if prefix is None else _local_folder(prefix, base_dir, key, fail)
    prefix = default if prefix is None else prefix
    if prefix is None:
        fail(f"a {kind} tier needs a prefix", key)
    if kind == "local":
        return os.path.join(_local_folder(prefix, base_dir, key, fail), "")
    if kind in ("azure", "http"):  # checked as a URL: the same rules as from_url's
        parsed, prefix, _ = parse_url(prefix, key, fail)
        if parsed != kind:
            fail(f"a {kind} tier's prefix is {'an az://' if kind == 'azure' else 'an http(s)://'} URL, not "
                 f"{shown(prefix)}", key)
        placeholder = template_in(prefix)
        if placeholder is not None and placeholder != keys:
            fail(f"this spec's keys are {keys}: the key's placeholder is {{{keys}}}, not {{{placeholder}}}", key)
        return prefix
    scheme = {"s3": "s3://", "gcs": "gs://", "memory": "mem://"}[kind]
    if kind == "memory":
        if not prefix.startswith(scheme):
            fail(f"a memory tier's prefix starts with mem://, not {shown(prefix)}", key)
    elif not prefix.startswith(scheme) or len(prefix) == len(scheme) or prefix[len(scheme)] == "/":
        fail(f"a {kind} prefix looks like {scheme}bucket/folder/, not {shown(prefix)}", key)
    return prefix


def _local_folder(prefix: str, base_dir: str, key: str, fail) -> str:
    if prefix.startswith("file://"):
        from urllib.parse import unquote, urlsplit

        parts = urlsplit(prefix)
        if parts.netloc not in ("", "localhost") or not parts.path:
            fail(f"not a local file:// URL: {shown(prefix)}", key)
        prefix = unquote(parts.path)
    if not prefix or "\x00" in prefix or "://" in prefix:
        fail(f"a local tier's prefix is a folder path, not {shown(prefix)}", key)
    return _abspath(prefix, base_dir).rstrip(os.sep) or os.sep


def _abspath(path: str, base_dir: str) -> str:
    return os.path.normpath(os.path.join(base_dir, os.path.expanduser(path)))


def _retry_table(value: Any, fail) -> dict:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        fail(f"must be a table with {', '.join(sorted(_RETRY_KEYS))}", "retry")
    fields = {f.name: f for f in RETRY}
    for key in value:
        if key not in fields:
            fail(f"unknown key (allowed: {', '.join(sorted(fields))})", f"retry.{keyname(key)}")
        if value[key] is not None:  # the policy checks ranges, with its own messages
            fields[key].typed(value[key], f"retry.{key}", fail)
    try:
        RetryPolicy(**value)
    except (TypeError, ValueError) as exc:
        fail(str(exc), "retry")
    return dict(value)


def _reject_secrets(table: Mapping[str, Any], path: str, fail) -> None:
    """Fail on keys that look like inline secrets (the value is never shown), at any depth."""
    for key, value in table.items():
        if not isinstance(key, str):
            continue
        if key == "env" or _REFERENCE_KEY.search(key):  # references (credentials_env = {...}): not secrets
            continue
        if _SECRET_KEY.search(key):
            fail("looks like an inline secret; specs reference secrets instead: profile = \"name\", "
                 "credentials_env = { ... = \"ENV_VAR_NAME\" } (s3/gcs) or env = { ... = \"ENV_VAR_NAME\" } (api)",
                 f"{path}{key}")
        if isinstance(value, Mapping):
            _reject_secrets(value, f"{path}{key}.", fail)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, Mapping):
                    _reject_secrets(item, f"{path}{key}[{i + 1}].", fail)


# --- the api tier: a Store subclass named by the spec, built with the tier's other keys ---------------
def _build_api(tier: dict, build: Build) -> Store:
    """The class is imported (its module's code runs: a spec is trusted like code) and checked to be a
    ``Store`` subclass before it is called."""
    module_name, _, attr = tier["class"].partition(":")
    key = f"{build.where}.class"
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except ImportError as exc:
        raise SpecError(f"cannot import {module_name}: {exc}", key=key, source=build.source) from None
    except AttributeError:
        raise SpecError(f"{module_name} has no attribute {attr}", key=key, source=build.source) from None
    if not isinstance(obj, type):
        raise SpecError(f"{tier['class']} is not a class (a spec's class names a Store subclass)", key=key,
                        source=build.source)
    if not issubclass(obj, Store):
        raise SpecError(f"{tier['class']} is not a Store subclass (a spec's class names one, e.g. a subclass of "
                        "bitstore.Sha1APISource or bitstore.Sha256APISource)", key=key, source=build.source)
    kwargs = {k: v for k, v in tier.items() if k not in _API.by_name and k != "type"}
    kwargs.update({k: build.env(v, f"{build.where}.env.{k}", secret=True) for k, v in tier.get("env", {}).items()})
    try:
        return obj(**kwargs)
    except TypeError as exc:
        raise SpecError(f"cannot construct {tier['class']}: {type(exc).__name__}: {_argument_error(exc)}",
                        key=build.where, source=build.source) from None


_API = TierType("api", (
    Field("class", str, "`package.module:ClassName`, a Store subclass, called with the tier's other keys",
          "mypkg.clients:MyAPIStore", _class_ref),
    Field("env", dict, "keyword arguments read from environment variables, `{ token = \"VAR\" }`",
          {"token": "MY_API_TOKEN"}, reference="env"),
    *ROLE,
    *LIMITS,
), _build_api, open=True)


def _described(exc: Exception, secrets: list[str]) -> str:
    """``Type: message`` of a constructor's error, cut short, with any value read from the environment masked."""
    text = str(exc)
    for value in secrets:
        if value:
            text = text.replace(value, "***")
    text = short(text, 300)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _argument_error(exc: TypeError) -> str:
    """The argument-mismatch message only (e.g. "unexpected keyword argument 'x'"), never argument values."""
    text = str(exc).split("\n")[0]
    match = re.search(r"(unexpected keyword argument '\w+'|missing \d+ required .*|takes .* arguments?.*)", text)
    return match.group(1) if match else "wrong arguments"
