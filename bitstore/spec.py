"""Store specs: a dict or a TOML file describing tiers in order, turned into a ready ``Store``.

The one place that knows every backend type. ``load_spec`` validates a spec without importing any
SDK or connecting anywhere and returns a picklable ``Spec`` (plain data, no live clients, no secret
values: credentials are referenced by profile or environment variable name and resolved by
``Spec.build``, in the process that builds the store). ``from_spec`` is ``load_spec(...).build()``.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .backends._client import TRANSPORTS, EnvVar
from .composite import Composite
from .errors import SpecError, short
from .retry import RetryPolicy
from .sha1 import Sha1Composite
from .store import Store

__all__ = ["Spec", "load_spec", "from_spec", "default_spec", "TIER_TYPES"]

TIER_TYPES = ("s3", "gcs", "local", "memory", "api")
_TOP = {"keys", "name", "max_workers", "max_bytes_in_flight", "retry", "missing_ttl", "tier"}
_LIMITS = {"max_concurrency", "max_rate"}
_COMMON = {"type", "name", "role", "read", "cache_result", "verify"} | _LIMITS
_RETRY = {"attempts", "base_delay", "max_delay", "deadline", "max_retry_after"}
_TIMEOUTS = {"connect_timeout", "read_timeout"}
_ALLOWED = {
    "s3": _COMMON | _RETRY | _TIMEOUTS | {"prefix", "endpoint_url", "anonymous", "profile", "region", "credentials_env",
                              "transport", "max_blob_bytes", "max_connections"},
    "gcs": _COMMON | _RETRY | _TIMEOUTS | {"prefix", "endpoint", "project", "anonymous", "credentials_file",
                                           "credentials_env", "transport", "max_blob_bytes", "max_connections"},
    "local": _COMMON | {"prefix", "max_blob_bytes"},
    "memory": _COMMON | {"prefix", "max_bytes"},
}
# Keys of an api tier that bitstore consumes; every other key is a keyword argument of the class.
_API_OWN = {"type", "class", "role", "read", "cache_result", "env"} | _LIMITS
_NUMBER = (int, float)
_TYPES: dict[str, Any] = {
    "name": str, "role": str, "read": bool, "cache_result": bool, "verify": bool, "prefix": str,
    "endpoint_url": str, "endpoint": str, "anonymous": bool, "profile": str, "region": str, "project": str,
    "credentials_file": str, "transport": str, "max_blob_bytes": int, "max_bytes": int, "max_connections": int,
    "attempts": int, "base_delay": _NUMBER, "max_delay": _NUMBER, "deadline": _NUMBER, "max_retry_after": _NUMBER,
    "connect_timeout": _NUMBER, "read_timeout": _NUMBER, "class": str, "env": dict,
    "max_concurrency": int, "max_rate": _NUMBER,
}
_S3_SESSION_KEYS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token", "region_name", "profile_name")
_ROLES = ("source", "cache")
_SECRET_KEY = re.compile(
    r"secret|passw|token|private[_-]?key|api[_-]?key|access[_-]?key|credential|bearer|(?:^|_)auth$", re.I
)
# Keys that name or count something rather than hold it ("token_url", "secret_name", "max_tokens").
_REFERENCE_KEY = re.compile(r"^(?:max|min|num)_|_(?:env|file|path|url|uri|name)$", re.I)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CLASS_REF = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")


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
        return any("credentials_env" in t or "env" in t for t in self.tiers)

    def build(self) -> Store:
        """The composite store this spec describes (resolves environment variable references now).

        The store pickles as this spec: unpickling builds it again, reading the environment variables in
        the new process, so values read from the environment never travel in a pickle.
        """
        composite = _composite_class(self.keys)(name=self.name, missing_ttl=self.missing_ttl)
        for index, tier in enumerate(self.tiers):
            store = self.build_tier(index)
            # Every build of this spec in a process shares each tier's limiter (Beam workers, notebooks).
            limits = {k: tier.get(k) for k in _LIMITS} | {"limit_group": f"spec:{self._digest()}:{index}"}
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
        """One tier on its own: a ``Sha1Store``/``Sha1Cache`` over a raw store (keys = "sha1"), the raw
        store (keys = "uri"), or the API source."""
        tier = self.tiers[index]
        where = f"tier[{index + 1}]"
        secrets: list[str] = []  # values read from the environment: never shown in an error
        try:
            if tier["type"] == "api":
                return _build_api(tier, where, self.source, secrets)
            raw = _RAW_BUILDERS[tier["type"]](tier, where, self.source, self.keys == "uri")
            if self.keys == "uri":
                return raw
            from .sha1 import Sha1Cache, Sha1Store

            if tier.get("role") == "cache":
                return Sha1Cache(raw, tier["prefix"], verify=tier.get("verify", True), name=tier.get("name"))
            return Sha1Store(raw, tier["prefix"], verify=tier.get("verify", False), name=tier.get("name"))
        except SpecError:
            raise
        except Exception as exc:  # any error of a constructor: the tier and the file it came from, one line
            raise SpecError(f"cannot build the {tier['type']} tier: {_described(exc, secrets)}", key=where,
                            source=self.source) from None


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


class SpecComposite(_BuiltFromSpec, Composite):
    """The ``Composite`` a spec with ``keys = "uri"`` builds."""

    def _default_name(self) -> str:
        return "Composite"


def _composite_class(keys: str) -> type:
    return SpecSha1Composite if keys == "sha1" else SpecComposite


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
        if key not in _TOP:
            fail(f"unknown key (top-level keys are: {', '.join(sorted(_TOP))})", _keyname(key))
    keys = raw.get("keys", "sha1")
    if keys not in ("sha1", "uri"):
        fail(f"must be \"sha1\" or \"uri\", not {_shown(keys)}", "keys")
    name = _typed(raw, "name", str, "", fail)
    if name == "":
        fail("must not be empty", "name")
    max_workers = _typed(raw, "max_workers", int, "", fail)
    max_bytes = _typed(raw, "max_bytes_in_flight", int, "", fail)
    for key, value in (("max_workers", max_workers), ("max_bytes_in_flight", max_bytes)):
        if value is not None and value < 1:
            fail("must be a positive integer", key)
    missing_ttl = _typed(raw, "missing_ttl", _NUMBER, "", fail)
    if missing_ttl is not None and not 0 < missing_ttl < float("inf"):
        fail("must be a positive number of seconds", "missing_ttl")
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
    return Spec(tiers=out, keys=keys, name=name, max_workers=max_workers, max_bytes_in_flight=max_bytes,
                missing_ttl=missing_ttl, source=source)


def _validate_tier(tier: Mapping[str, Any], index: int, keys: str, default_retry: dict, base_dir: str, fail) -> dict:
    where = f"tier[{index + 1}]"
    kind = tier.get("type")
    tier = {k: v for k, v in tier.items() if v is not None or kind == "api" and k not in _API_OWN}
    if kind is None:
        fail(f"missing; one of: {', '.join(TIER_TYPES)}", f"{where}.type")
    if kind not in TIER_TYPES:
        fail(f"unknown tier type {_shown(kind)}; one of: {', '.join(TIER_TYPES)}", f"{where}.type")
    allowed = _ALLOWED.get(kind)
    for key in tier:
        if not isinstance(key, str):
            fail("keys must be strings", f"{where}.{_keyname(key)}")
        if allowed is not None and key not in allowed:
            fail(f"unknown key for a {kind} tier (allowed: {', '.join(sorted(allowed))})", f"{where}.{key}")
        if key in _TYPES and (allowed is not None or key in _API_OWN):
            _typed(tier, key, _TYPES[key], f"{where}.", fail)
    out = dict(tier)
    if "max_concurrency" in out and out["max_concurrency"] < 1:
        fail("must be a positive integer (calls at once)", f"{where}.max_concurrency")
    if "max_rate" in out and not 0 < out["max_rate"] < float("inf"):
        fail("must be a positive number (calls per second)", f"{where}.max_rate")
    role = out.setdefault("role", "source")
    if role not in _ROLES:
        fail(f"must be \"source\" or \"cache\", not {_shown(role)}", f"{where}.role")
    if role == "cache" and "cache_result" in out:
        fail("cache_result applies to sources, not to the cache tier", f"{where}.cache_result")
    if role != "cache" and "read" in out:
        fail("read applies only to the tier with role = \"cache\"", f"{where}.read")
    if kind == "api":
        return _validate_api(out, where, fail)
    if out.get("name") == "":
        fail("must not be empty", f"{where}.name")
    if keys == "uri" and "verify" in out:
        fail("verify applies to SHA1 tiers (keys = \"sha1\")", f"{where}.verify")
    for key in ("max_blob_bytes", "max_bytes", "attempts", "max_connections"):
        if key in out and out[key] < (0 if key == "max_bytes" else 1):
            fail("must be a positive integer" if key != "max_bytes" else "must not be negative", f"{where}.{key}")
    for key in ("base_delay", "max_delay", "max_retry_after"):
        if key in out and out[key] < 0:
            fail("must not be negative", f"{where}.{key}")
    for key in ("deadline", "connect_timeout", "read_timeout"):
        if key in out and not out[key] > 0:
            fail("must be a number of seconds > 0", f"{where}.{key}")
    if kind in ("s3", "gcs"):
        _validate_cloud(out, kind, where, default_retry, base_dir, fail)
    out["prefix"] = _prefix(out, kind, where, keys, base_dir, fail)
    if out["prefix"] is None:
        del out["prefix"]
    return out


def _validate_cloud(tier: dict, kind: str, where: str, default_retry: dict, base_dir: str, fail) -> None:
    if tier.get("transport", "auto") not in TRANSPORTS:
        fail(f"must be one of {', '.join(TRANSPORTS)}, not {_shown(tier['transport'])}", f"{where}.transport")
    refs = [k for k in ("profile", "credentials_env", "credentials_file") if k in tier]
    if tier.get("anonymous") and refs:
        fail(f"anonymous = true cannot be combined with {refs[0]}", f"{where}.anonymous")
    env = tier.get("credentials_env")
    if kind == "s3" and env is not None:
        if not isinstance(env, Mapping) or not env:
            fail("must be a table mapping boto3 Session arguments to environment variable names, e.g. "
                 "{ aws_access_key_id = \"MY_KEY_ID_VAR\", aws_secret_access_key = \"MY_SECRET_VAR\" }",
                 f"{where}.credentials_env")
        for arg, var in env.items():
            if arg not in _S3_SESSION_KEYS:
                fail(f"not a boto3 Session argument (one of: {', '.join(_S3_SESSION_KEYS)})",
                     f"{where}.credentials_env.{_keyname(arg)}")
            _env_name(var, f"{where}.credentials_env.{arg}", fail)
        tier["credentials_env"] = dict(env)
    if kind == "gcs":
        if env is not None:
            _env_name(env, f"{where}.credentials_env", fail)
        if env is not None and "credentials_file" in tier:
            fail("use credentials_file or credentials_env, not both", f"{where}.credentials_env")
        if "credentials_file" in tier:
            tier["credentials_file"] = _abspath(tier["credentials_file"], base_dir)
    policy = {**default_retry, **{k: tier.pop(k) for k in _RETRY if k in tier}}
    if policy:
        try:
            RetryPolicy(**policy)
        except (TypeError, ValueError) as exc:
            fail(str(exc), f"{where}.attempts")
        tier["retry"] = policy


def _validate_api(tier: dict, where: str, fail) -> dict:
    ref = tier.get("class")
    if ref is None:
        fail("an api tier needs class = \"package.module:ClassName\"", f"{where}.class")
    if not _CLASS_REF.fullmatch(ref):
        fail(f"must look like \"package.module:ClassName\", not {_shown(ref)}", f"{where}.class")
    for arg, var in tier.get("env", {}).items():
        if arg in _API_OWN:
            fail(f"{arg!r} is not a keyword argument of the class", f"{where}.env.{arg}")
        if arg in tier:
            fail("given both directly and through env", f"{where}.env.{arg}")
        _env_name(var, f"{where}.env.{arg}", fail)
    return tier


def _prefix(tier: dict, kind: str, where: str, keys: str, base_dir: str, fail) -> str | None:
    prefix = tier.get("prefix")
    key = f"{where}.prefix"
    if keys == "uri":
        if prefix is not None and kind != "local":
            fail("with keys = \"uri\" a tier serves whole URIs; only a local tier takes a prefix (its root folder)",
                 key)
        return None if prefix is None else _local_folder(prefix, base_dir, key, fail)
    if kind == "memory":
        prefix = "mem://blobs/" if prefix is None else prefix
        if not prefix.startswith("mem://"):
            fail(f"a memory tier's prefix starts with mem://, not {_shown(prefix)}", key)
        return prefix
    if prefix is None:
        fail(f"a {kind} tier needs a prefix", key)
    if kind == "local":
        return os.path.join(_local_folder(prefix, base_dir, key, fail), "")
    scheme = "s3://" if kind == "s3" else "gs://"
    if not prefix.startswith(scheme) or len(prefix) == len(scheme) or prefix[len(scheme)] == "/":
        fail(f"a {kind} prefix looks like {scheme}bucket/folder/, not {_shown(prefix)}", key)
    return prefix


def _local_folder(prefix: str, base_dir: str, key: str, fail) -> str:
    if prefix.startswith("file://"):
        from urllib.parse import unquote, urlsplit

        parts = urlsplit(prefix)
        if parts.netloc not in ("", "localhost") or not parts.path:
            fail(f"not a local file:// URL: {_shown(prefix)}", key)
        prefix = unquote(parts.path)
    if not prefix or "\x00" in prefix or "://" in prefix:
        fail(f"a local tier's prefix is a folder path, not {_shown(prefix)}", key)
    return _abspath(prefix, base_dir).rstrip(os.sep) or os.sep


def _abspath(path: str, base_dir: str) -> str:
    return os.path.normpath(os.path.join(base_dir, os.path.expanduser(path)))


def _retry_table(value: Any, fail) -> dict:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        fail(f"must be a table with {', '.join(sorted(_RETRY))}", "retry")
    for key in value:
        if key not in _RETRY:
            fail(f"unknown key (allowed: {', '.join(sorted(_RETRY))})", f"retry.{_keyname(key)}")
        _typed(value, key, _TYPES[key], "retry.", fail)
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


def _typed(table: Mapping[str, Any], key: str, kind: Any, where: str, fail) -> Any:
    value = table.get(key)
    if value is None:
        return None
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
        wanted = " or ".join({str: "a string", bool: "true or false", int: "an integer", float: "a number",
                              dict: "a table"}[k] for k in kinds)
        fail(f"must be {wanted}, not {type(value).__name__}", f"{where}{key}")
    return value


def _env_name(var: Any, key: str, fail) -> None:
    if not isinstance(var, str) or not _ENV_NAME.fullmatch(var):
        fail("must be the NAME of an environment variable (letters, digits, _), not a value", key)


def _keyname(key: Any) -> str:
    return key if isinstance(key, str) else repr(key)[:60]


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --- building -------------------------------------------------------------------------------------
def _from_env(var: str, key: str, source: str | None) -> str:
    value = os.environ.get(var)
    if value is None:
        raise SpecError(f"environment variable {var} is not set", key=key, source=source)
    return value


def _build_s3(tier: dict, where: str, source: str | None, uri_mode: bool) -> Store:
    from .backends.s3 import S3Raw

    if tier.get("anonymous"):
        credentials: Any = "anonymous"
    else:
        credentials = {}
        for k, var in tier.get("credentials_env", {}).items():
            _from_env(var, f"{where}.credentials_env.{k}", source)  # set now, or a clear SpecError
            credentials[k] = EnvVar(var)  # read again by each process's client, never stored as a value
        if "profile" in tier:
            credentials["profile_name"] = tier["profile"]
        if "region" in tier:
            credentials["region_name"] = tier["region"]
        credentials = credentials or None
    return S3Raw(credentials, endpoint_url=tier.get("endpoint_url"), retry=_retry(tier),
                 max_blob_bytes=tier.get("max_blob_bytes"), transport=tier.get("transport", "auto"),
                 **_connections(tier), **_raw_name(tier, uri_mode))


def _build_gcs(tier: dict, where: str, source: str | None, uri_mode: bool) -> Store:
    from .backends.gcs import GSRaw

    if tier.get("anonymous"):
        credentials: Any = "anonymous"
    elif "credentials_env" in tier:
        credentials = _from_env(tier["credentials_env"], f"{where}.credentials_env", source)
    else:
        credentials = tier.get("credentials_file")
    return GSRaw(credentials, project=tier.get("project"), endpoint=tier.get("endpoint"), retry=_retry(tier),
                 max_blob_bytes=tier.get("max_blob_bytes"), transport=tier.get("transport", "auto"),
                 **_connections(tier), **_raw_name(tier, uri_mode))


def _build_local(tier: dict, where: str, source: str | None, uri_mode: bool) -> Store:
    from .backends.local import LocalRaw

    root = tier.get("prefix")
    return LocalRaw(root=None if root is None else root.rstrip(os.sep) or os.sep,
                    max_blob_bytes=tier.get("max_blob_bytes"), **_raw_name(tier, uri_mode))


def _build_memory(tier: dict, where: str, source: str | None, uri_mode: bool) -> Store:
    from .backends.memory import MemoryRaw

    return MemoryRaw(tier.get("max_bytes"), **_raw_name(tier, uri_mode))


def _build_api(tier: dict, where: str, source: str | None, secrets: list[str]) -> Store:
    """The class is imported (its module's code runs: a spec is trusted like code) and checked to be a
    ``Store`` subclass before it is called."""
    module_name, _, attr = tier["class"].partition(":")
    key = f"{where}.class"
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except ImportError as exc:
        raise SpecError(f"cannot import {module_name}: {exc}", key=key, source=source) from None
    except AttributeError:
        raise SpecError(f"{module_name} has no attribute {attr}", key=key, source=source) from None
    if not isinstance(obj, type):
        raise SpecError(f"{tier['class']} is not a class (a spec's class names a Store subclass)", key=key,
                        source=source)
    if not issubclass(obj, Store):
        raise SpecError(f"{tier['class']} is not a Store subclass (a spec's class names one, e.g. a subclass of "
                        "bitstore.Sha1APISource)", key=key, source=source)
    kwargs = {k: v for k, v in tier.items() if k not in _API_OWN}
    from_env = {k: _from_env(v, f"{where}.env.{k}", source) for k, v in tier.get("env", {}).items()}
    secrets.extend(from_env.values())
    kwargs.update(from_env)
    try:
        return obj(**kwargs)
    except TypeError as exc:
        raise SpecError(f"cannot construct {tier['class']}: {type(exc).__name__}: {_argument_error(exc)}",
                        key=where, source=source) from None


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


def _retry(tier: dict) -> RetryPolicy | None:
    return RetryPolicy(**tier["retry"]) if "retry" in tier else None


def _connections(tier: dict) -> dict:
    """The cloud client's pool size and ``(connect, read_idle)`` timeouts, where the tier sets them."""
    out: dict[str, Any] = {"max_pool_connections": tier["max_connections"]} if "max_connections" in tier else {}
    if "connect_timeout" in tier or "read_timeout" in tier:
        out["timeout"] = (tier.get("connect_timeout", 10.0), tier.get("read_timeout", 30.0))
    return out


def _raw_name(tier: dict, uri_mode: bool) -> dict:
    """In uri mode the raw store is the tier and takes its name; in sha1 mode the Sha1Store does."""
    return {"name": tier["name"]} if uri_mode and "name" in tier else {}


_RAW_BUILDERS = {"s3": _build_s3, "gcs": _build_gcs, "local": _build_local, "memory": _build_memory}
