"""Store specs: dict and TOML specs build the described tiers; malformed specs fail with a ``SpecError``
that names the key and the file; secrets are referenced, never embedded, and never echoed."""
from __future__ import annotations

import hashlib
import os
import pickle

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bitstore import (
    Composite,
    LocalRaw,
    MemoryRaw,
    NotFoundInStore,
    Sha1APISource,
    Sha1Cache,
    Sha1Composite,
    Sha1Store,
    SpecError,
    from_spec,
)
from bitstore.spec import Spec, default_spec, load_spec

CANARY = "canary-secret-9d1f4e2a"


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


class TextAPI(Sha1APISource):
    """An API source built from spec keyword arguments: serves ``texts`` (sha1 -> str) as UTF-8 bytes."""

    def __init__(self, texts=None, token: str | None = None, verify: bool = False, name: str | None = None):
        super().__init__(verify=verify, name=name or "text-api")
        self.texts = dict(texts or {})
        self.token = token

    def api_get(self, sha1: str) -> bytes | None:
        if self.token is not None and not self.token:
            raise RuntimeError("empty token")
        text = self.texts.get(sha1)
        return None if text is None else text.encode()


def write(path, text: str) -> str:
    path.write_text(text)
    return str(path)


# --- building -----------------------------------------------------------------------------------
def test_dict_spec_builds_tiers_in_order(tmp_path):
    blob = b"archived"
    spec = {
        "keys": "sha1",
        "name": "main",
        "tier": [
            {"type": "local", "prefix": str(tmp_path / "archive"), "name": "archive", "verify": True},
            {"type": "memory", "role": "cache"},
            {"type": "api", "class": "tests.test_spec:TextAPI", "texts": {sha1(b"from api"): "from api"}},
        ],
    }
    LocalRaw(tmp_path).put(str(tmp_path / "archive" / sha1(blob)), blob)
    store = from_spec(spec)
    assert isinstance(store, Sha1Composite) and store.name == "main"
    archive, cache, api = store.sources
    assert isinstance(archive, Sha1Store) and not isinstance(archive, Sha1Cache) and archive.verify is True
    assert archive.prefix == str(tmp_path / "archive") + os.sep
    assert isinstance(cache, Sha1Cache) and cache.verify is True and isinstance(cache.base_store, MemoryRaw)
    assert store.cache is cache
    assert isinstance(api, TextAPI)
    assert store.tier_names == ["archive", "mem://blobs/", "text-api"]
    assert store.get(sha1(blob)) == blob
    assert store.get(sha1(b"from api").upper()) == b"from api"  # api hits go to the cache by default
    assert cache.get(sha1(b"from api")) == b"from api"
    assert store.cache_writes == 1


def test_cache_read_false_and_cache_result(tmp_path):
    spec = {"tier": [
        {"type": "memory", "prefix": "mem://a/", "cache_result": True},
        {"type": "local", "prefix": str(tmp_path), "role": "cache", "read": False},
    ]}
    store = from_spec(spec)
    assert len(store.sources) == 1 and store.cache is not None and store.cache not in store.sources
    source = store.sources[0]
    source.base_store.put("mem://a/" + sha1(b"x"), b"x")
    assert store.get(sha1(b"x")) == b"x"
    assert (tmp_path / sha1(b"x")).read_bytes() == b"x"


def test_toml_relative_local_prefix_resolves_against_the_file(tmp_path, monkeypatch):
    folder = tmp_path / "conf"
    folder.mkdir()
    path = write(folder / "store.toml", '[[tier]]\ntype = "local"\nprefix = "blobs/"\nrole = "cache"\n')
    monkeypatch.chdir(tmp_path)
    spec = load_spec(path)
    assert spec.tiers[0]["prefix"] == str(folder / "blobs") + os.sep
    store = spec.build()
    store.put(sha1(b"abc"), b"abc")
    assert (folder / "blobs" / sha1(b"abc")).read_bytes() == b"abc"
    assert from_spec(folder / "store.toml").get(sha1(b"abc")) == b"abc"  # PathLike accepted too


def test_uri_keys_build_a_plain_composite_of_raw_stores(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"A")
    store = from_spec({"keys": "uri", "tier": [
        {"type": "memory", "name": "ram", "max_bytes": 100},
        {"type": "local", "prefix": str(tmp_path), "name": "disk"},
    ]})
    assert isinstance(store, Composite) and not isinstance(store, Sha1Composite)
    ram, disk = store.sources
    assert isinstance(ram, MemoryRaw) and ram.max_bytes == 100 and ram.name == "ram"
    assert isinstance(disk, LocalRaw) and disk.root == os.path.realpath(tmp_path)
    assert store.get(str(tmp_path / "a.bin")) == b"A"
    assert not store.is_valid("/etc/passwd")  # the local tier is confined to its root


def test_spec_pickles_and_builds_the_same_store(tmp_path):
    path = write(tmp_path / "s.toml", f"""
max_workers = 8
max_bytes_in_flight = 1000000
[[tier]]
type = "local"
prefix = "{tmp_path / 'x'}"
role = "cache"
""")
    spec = load_spec(path)
    again = pickle.loads(pickle.dumps(spec))
    assert again == spec and again.max_workers == 8 and again.max_bytes_in_flight == 1_000_000
    assert again.source == path
    assert load_spec(again) is again
    assert repr(again.build()) == repr(spec.build())


def test_default_spec_is_one_local_cache_tier(tmp_path):
    store = from_spec(default_spec(tmp_path / "home"))
    store.put(sha1(b"d"), b"d")
    assert (tmp_path / "home" / "blobs" / sha1(b"d")).read_bytes() == b"d"
    assert store.get(sha1(b"d")) == b"d" and store.cache is store.sources[0]


def test_write_index_prefers_the_cache_then_the_first_non_api_tier(tmp_path):
    api = {"type": "api", "class": "tests.test_spec:TextAPI"}
    assert load_spec({"tier": [api, {"type": "memory"}, {"type": "memory", "role": "cache"}]}).write_index == 2
    assert load_spec({"tier": [api, {"type": "memory"}]}).write_index == 1
    assert load_spec({"tier": [api]}).write_index is None


def test_api_env_references_are_resolved_when_building(monkeypatch):
    monkeypatch.setenv("TEXT_API_TOKEN", CANARY)
    tier = {"type": "api", "class": "tests.test_spec:TextAPI", "env": {"token": "TEXT_API_TOKEN"}}
    spec = load_spec({"tier": [tier]})
    assert CANARY not in repr(spec) and CANARY not in str(pickle.dumps(spec))
    assert spec.build().sources[0].token == CANARY
    monkeypatch.delenv("TEXT_API_TOKEN")
    with pytest.raises(SpecError) as info:
        spec.build()
    assert "TEXT_API_TOKEN" in str(info.value) and "tier[1].env.token" in str(info.value)


def test_a_built_store_pickles_as_its_spec_without_environment_values(monkeypatch, tmp_path):
    monkeypatch.setenv("TEXT_API_TOKEN", CANARY)
    api = {"type": "api", "class": "tests.test_spec:TextAPI", "env": {"token": "TEXT_API_TOKEN"},
           "texts": {sha1(b"t"): "t"}}
    store = from_spec({"name": "s", "tier": [{"type": "local", "prefix": str(tmp_path), "role": "cache"}, api]})
    assert store.get(sha1(b"t")) == b"t" and store.sources[1].token == CANARY
    data = pickle.dumps(store)
    assert CANARY.encode() not in data
    monkeypatch.setenv("TEXT_API_TOKEN", "worker-token")  # unpickling reads the variable again, where it runs
    again = pickle.loads(data)
    assert again.sources[1].token == "worker-token" and again.name == "s" and again.get(sha1(b"t")) == b"t"
    assert repr(again) == repr(store)
    monkeypatch.delenv("TEXT_API_TOKEN")
    with pytest.raises(SpecError, match="TEXT_API_TOKEN is not set"):
        pickle.loads(data)
    store.append_source(Sha1Store(MemoryRaw(), "mem://x/"))  # changed after building: refuse to pickle it
    with pytest.raises(TypeError, match="pickle the Spec"):
        pickle.dumps(store)


def test_a_changed_store_without_environment_references_pickles_as_usual():
    store = from_spec({"tier": [{"type": "memory", "role": "cache"}]})
    store.put(sha1(b"m"), b"m")
    rebuilt = pickle.loads(pickle.dumps(store))  # unchanged: pickles as its spec, so its memory tier starts empty
    with pytest.raises(NotFoundInStore):
        rebuilt.get(sha1(b"m"))
    extra = MemoryRaw()
    extra.put("mem://e/" + sha1(b"e"), b"e")
    store.append_source(Sha1Store(extra, "mem://e/"))
    again = pickle.loads(pickle.dumps(store))
    assert again.get(sha1(b"e")) == b"e" and again.get(sha1(b"m")) == b"m"  # pickled with its contents


# --- errors name the key and the file --------------------------------------------------------------
@pytest.mark.parametrize("toml, key, words", [
    ('keys = "md5"\n[[tier]]\ntype = "memory"\n', "keys", "'sha256'"),
    ('colour = 1\n[[tier]]\ntype = "memory"\n', "colour", "unknown key"),
    ('[[tier]]\ntype = "ftp"\n', "tier[1].type", "unknown tier type"),
    ('[[tier]]\nprefix = "s3://b/"\n', "tier[1].type", "missing"),
    ('[[tier]]\ntype = "memory"\n[[tier]]\ntype = "local"\nprefix = "x"\nbogus = true\n', "tier[2].bogus",
     "unknown key"),
    ('[[tier]]\ntype = "s3"\nprefix = "s3://b/"\nattempts = "many"\n', "tier[1].attempts", "integer"),
    ('[[tier]]\ntype = "s3"\nprefix = "s3://b/"\nanonymous = 1\n', "tier[1].anonymous", "true or false"),
    ('[[tier]]\ntype = "s3"\nprefix = "gs://b/"\n', "tier[1].prefix", "s3://bucket"),
    ('[[tier]]\ntype = "gcs"\n', "tier[1].prefix", "needs a prefix"),
    ('[[tier]]\ntype = "s3"\nprefix = "s3://b/"\ntransport = "carrier-pigeon"\n', "tier[1].transport", "auto"),
    ('[[tier]]\ntype = "memory"\nrole = "cache"\n[[tier]]\ntype = "memory"\nrole = "cache"\n', "tier[2].role",
     "only one"),
    ('[[tier]]\ntype = "memory"\ncache_result = true\n', "tier[1].cache_result", "needs a tier"),
    ('[[tier]]\ntype = "memory"\nread = false\n', "tier[1].read", "cache"),
    ('[[tier]]\ntype = "api"\n', "tier[1].class", "package.module:ClassName"),
    ('[[tier]]\ntype = "api"\nclass = "no colon"\n', "tier[1].class", "package.module:ClassName"),
    ('max_workers = 0\n[[tier]]\ntype = "memory"\n', "max_workers", "positive"),
    ('tier = []\n', "tier", "non-empty"),
    ('name = "x"\n', "tier", "at least one"),
    ('retry = { attempts = 0 }\n[[tier]]\ntype = "memory"\n', "retry", "attempts"),
    ('keys = "uri"\n[[tier]]\ntype = "s3"\nprefix = "s3://b/"\n', "tier[1].prefix", "only a local tier"),
    ('[[tier]]\ntype = "s3"\nprefix = "s3://b/"\ncredentials_env = { password = "X" }\n',
     "tier[1].credentials_env.password", "boto3 Session"),
    ('[[tier]]\ntype = "s3"\nprefix = "s3://b/"\ncredentials_env = { aws_access_key_id = "not a name!" }\n',
     "tier[1].credentials_env.aws_access_key_id", "NAME of an environment variable"),
    ('[[tier]]\ntype = "s3"\nprefix = "s3://b/"\nanonymous = true\nprofile = "prod"\n', "tier[1].anonymous",
     "profile"),
])
def test_spec_errors_name_the_key_and_the_file(tmp_path, toml, key, words):
    path = write(tmp_path / "bad.toml", toml)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = str(info.value)
    assert f"'{key}'" in message and path in message and words in message
    assert info.value.key == key and info.value.source == path
    assert pickle.loads(pickle.dumps(info.value)).args == info.value.args


def test_invalid_toml_and_missing_file(tmp_path):
    path = write(tmp_path / "broken.toml", "[[tier]\ntype = \n")
    with pytest.raises(SpecError, match="not valid TOML") as info:
        load_spec(path)
    assert path in str(info.value)
    with pytest.raises(SpecError, match="cannot read"):
        load_spec(tmp_path / "absent.toml")
    with pytest.raises(SpecError, match="dict or a path"):
        load_spec(42)


@pytest.mark.parametrize("key", ["aws_secret_access_key", "aws_access_key_id", "password", "api_key", "token",
                                 "client_secret", "credentials", "private_key", "auth"])
def test_inline_secrets_are_refused_without_echoing_them(tmp_path, key):
    for tier_type, extra in [("s3", 'prefix = "s3://b/"\n'), ("api", 'class = "tests.test_spec:TextAPI"\n')]:
        path = write(tmp_path / "secret.toml", f'[[tier]]\ntype = "{tier_type}"\n{extra}{key} = "{CANARY}"\n')
        with pytest.raises(SpecError) as info:
            load_spec(path)
        assert f"tier[1].{key}" in str(info.value) and "inline secret" in str(info.value)
        assert CANARY not in str(info.value) and CANARY not in repr(info.value.args)


def test_api_class_errors_are_spec_errors(tmp_path):
    cases = [
        ("no_such_module_xyz:Thing", "tier[1].class", "cannot import"),
        ("tests.test_spec:Nope", "tier[1].class", "has no attribute"),
        ("tests.test_spec:CANARY", "tier[1].class", "not a class"),
    ]
    for ref, key, words in cases:
        with pytest.raises(SpecError) as info:
            from_spec({"tier": [{"type": "api", "class": ref}]})
        assert f"'{key}'" in str(info.value) and words in str(info.value)
    with pytest.raises(SpecError) as info:
        from_spec({"tier": [{"type": "api", "class": "tests.test_spec:TextAPI", "colour": CANARY}]})
    assert "unexpected keyword argument 'colour'" in str(info.value) and CANARY not in str(info.value)
    with pytest.raises(SpecError, match="not a Store subclass"):
        from_spec({"tier": [{"type": "api", "class": "collections:OrderedDict"}]})


# --- a spec names code: only Store subclasses are called, every build error is a SpecError ---------------
class Exploding(Sha1APISource):
    """A store whose constructor fails the way user code does."""

    def __init__(self, kind: str = "value", token: str = ""):
        raise {"value": ValueError, "os": OSError, "key": KeyError}[kind](f"bad config (token {token})")

    def api_get(self, sha1):  # pragma: no cover - never constructed
        return None


@pytest.mark.parametrize("ref", ["subprocess:Popen", "os:system", "builtins:print", "tests.test_spec:CANARY",
                                 "bitstore.core.sha1:sha1_hex", "bitstore.ground.errors:SpecError"])
def test_a_class_that_is_not_a_store_is_never_called(tmp_path, ref):
    marker = tmp_path / "ran"
    path = tmp_path / "spec.toml"
    path.write_text(f'[[tier]]\ntype = "api"\nclass = "{ref}"\nargs = ["touch", "{marker}"]\n')
    spec = load_spec(path)
    with pytest.raises(SpecError) as info:
        spec.build()
    assert "tier[1].class" in str(info.value) and str(path) in str(info.value)
    assert "not a class" in str(info.value) or "not a Store subclass" in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["value", "os", "key"])
def test_any_constructor_error_is_a_spec_error_naming_tier_and_file(tmp_path, monkeypatch, kind):
    monkeypatch.setenv("EXPLODING_TOKEN", CANARY)
    path = tmp_path / "spec.toml"
    path.write_text('[[tier]]\ntype = "memory"\nprefix = "mem://a/"\n\n'
                    f'[[tier]]\ntype = "api"\nclass = "tests.test_spec:Exploding"\nkind = "{kind}"\n'
                    'env = { token = "EXPLODING_TOKEN" }\n')
    with pytest.raises(SpecError) as info:
        from_spec(path)
    message = str(info.value)
    assert f"in {path} at 'tier[2]'" in message and "bad config" in message
    assert CANARY not in message and "***" in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_a_backend_constructor_error_is_a_spec_error(monkeypatch):
    from bitstore.backends import memory

    def refuse(*args, **kwargs):
        raise RuntimeError("no memory for you")

    monkeypatch.setattr(memory, "MemoryRaw", refuse)
    with pytest.raises(SpecError, match=r"at 'tier\[1\]'.*RuntimeError: no memory for you"):
        from_spec({"tier": [{"type": "memory", "prefix": "mem://a/"}]})


# --- hypothesis: malformed specs only ever raise SpecError ------------------------------------------
_WORDS = ["type", "prefix", "role", "read", "cache_result", "verify", "name", "keys", "tier", "max_workers",
          "attempts", "base_delay", "max_delay", "max_bytes", "max_blob_bytes", "anonymous", "profile",
          "endpoint_url", "endpoint", "transport", "credentials_env", "credentials_file", "class", "env", "retry",
          "local", "memory", "s3", "gcs", "api", "cache", "source", "sha1", "uri", "auto", "token", "x"]
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 10**12), st.floats(allow_nan=True),
                     st.sampled_from(_WORDS), st.text(max_size=12),
                     st.sampled_from(["mem://x/", "s3://b/p/", "gs://b/", "file:///tmp/x", "rel/dir", "/", ""]))
_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(_WORDS) | st.text(max_size=5), inner, max_size=4)),
    max_leaves=12)
_valid_tiers = st.sampled_from([
    {"type": "memory"}, {"type": "memory", "role": "cache", "max_bytes": 10}, {"type": "local", "prefix": "rel/dir"},
    {"type": "local", "prefix": "/", "role": "cache", "read": False}, {"type": "memory", "verify": True},
    {"type": "s3", "prefix": "s3://b/p/", "attempts": 3}, {"type": "gcs", "prefix": "gs://b/", "anonymous": True},
])
# Near-valid tiers (a valid one with some keys replaced or added) reach the deeper checks; random ones the rest.
_tier = st.one_of(
    _valid_tiers,
    st.builds(lambda base, changes: {**base, **changes}, _valid_tiers,
              st.dictionaries(st.sampled_from(_WORDS), _values, max_size=2)),
    st.dictionaries(st.sampled_from(_WORDS), _values, max_size=6).map(
        lambda d: d if "type" in d else {**d, "type": "memory"}),
)
_spec = st.fixed_dictionaries({"tier": st.lists(_tier, min_size=1, max_size=4)}, optional={
    "keys": st.sampled_from(["sha1", "uri"]) | _scalars,
    "max_workers": _scalars, "name": _scalars, "retry": _values, "extra": _values,
}) | st.dictionaries(st.sampled_from(_WORDS), _values, max_size=4)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_spec)
def test_malformed_specs_raise_only_spec_errors(raw):
    try:
        spec = load_spec(raw)
    except SpecError as exc:
        assert exc.key is None or isinstance(exc.key, str)
        return
    assert isinstance(spec, Spec) and spec.tiers
    if all(t["type"] in ("local", "memory") for t in spec.tiers):
        store = spec.build()  # must not raise for a spec that validated
        assert len(store.sources) + (store.cache is not None and store.cache not in store.sources) == len(spec.tiers)


def test_the_specs_guide_example_is_valid(tmp_path):
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "guides" / "specs.md").read_text(encoding="utf-8")
    example = re.search(r"```toml\n(.*?)```", text, re.S).group(1)
    spec = load_spec(write(tmp_path / "store.toml", example))
    assert [t["type"] for t in spec.tiers] == ["local", "s3", "gcs", "api", "memory"]
    assert spec.cache_index == 0 and spec.tiers[0]["prefix"] == str(tmp_path / "cache" / "blobs") + os.sep
    assert spec.tiers[1]["retry"] == {"attempts": 5, "base_delay": 0.05, "max_delay": 2.0}


# --- s3 and gcs tiers, against the test servers --------------------------------------------------------
def test_s3_tier_options_reach_s3raw(monkeypatch):
    from bitstore.backends.s3 import S3Raw

    monkeypatch.setenv("KEY_ID_VAR", "AKIDEXAMPLE")
    monkeypatch.setenv("SECRET_VAR", CANARY)
    spec = load_spec({"retry": {"attempts": 3}, "tier": [{
        "type": "s3", "prefix": "s3://bucket/files/", "endpoint_url": "http://127.0.0.1:9", "region": "eu-west-1",
        "credentials_env": {"aws_access_key_id": "KEY_ID_VAR", "aws_secret_access_key": "SECRET_VAR"},
        "base_delay": 0.5, "max_blob_bytes": 1000, "transport": "sdk", "max_connections": 7, "name": "archive",
    }]})
    assert spec.tiers[0]["retry"] == {"attempts": 3, "base_delay": 0.5}
    assert CANARY not in repr(spec)
    tier = spec.build().sources[0]
    raw = tier.base_store
    assert isinstance(raw, S3Raw) and tier.name == "archive" and tier.prefix == "s3://bucket/files/"
    assert raw.endpoint_url == "http://127.0.0.1:9" and raw.max_blob_bytes == 1000 and raw.transport == "sdk"
    assert (raw.retry.attempts, raw.retry.base_delay, raw.max_pool_connections) == (3, 0.5, 7)
    from bitstore.backends._client import EnvVar, resolve_env

    assert raw.credentials == [{"aws_access_key_id": EnvVar("KEY_ID_VAR"),
                                "aws_secret_access_key": EnvVar("SECRET_VAR"), "region_name": "eu-west-1"}]
    assert resolve_env(raw.credentials[0]) == {"aws_access_key_id": "AKIDEXAMPLE", "aws_secret_access_key": CANARY,
                                               "region_name": "eu-west-1"}
    profile = from_spec({"tier": [{"type": "s3", "prefix": "s3://b/", "profile": "prod"}]}).sources[0].base_store
    assert profile.credentials == [{"profile_name": "prod"}]
    anonymous = from_spec({"tier": [{"type": "s3", "prefix": "s3://b/", "anonymous": True}]}).sources[0].base_store
    assert anonymous.credentials == ["anonymous"]
    assert from_spec({"tier": [{"type": "s3", "prefix": "s3://b/"}]}).sources[0].base_store.credentials == [None]


def test_gcs_tier_options_reach_gsraw(tmp_path, monkeypatch):
    from bitstore.backends.gcs import GSRaw

    path = write(tmp_path / "s.toml", '[[tier]]\ntype = "gcs"\nprefix = "gs://b/x/"\nproject = "p"\n'
                                      'credentials_file = "sa.json"\nendpoint = "http://127.0.0.1:9/"\nattempts = 2\n')
    raw = from_spec(path).sources[0].base_store
    assert isinstance(raw, GSRaw) and raw.credentials == str(tmp_path / "sa.json") and raw.project == "p"
    assert raw.endpoint == "http://127.0.0.1:9" and raw.retry.attempts == 2
    monkeypatch.setenv("SA_PATH", "/keys/sa.json")
    raw = from_spec({"tier": [{"type": "gcs", "prefix": "gs://b/", "credentials_env": "SA_PATH"}]}).sources[0]
    assert raw.base_store.credentials == "/keys/sa.json"
    with pytest.raises(SpecError, match="not both"):
        load_spec({"tier": [{"type": "gcs", "prefix": "gs://b/", "credentials_env": "A", "credentials_file": "f"}]})


def test_specs_read_through_s3_and_gcs_servers_with_write_back(s3, gcs, tmp_path):
    blobs = {sha1(d): d for d in [b"on s3", b"on gcs", b""]}
    on_s3, on_gcs, empty = blobs
    s3.create_bucket("archive")
    s3.put("archive", f"files/{on_s3}", b"on s3")
    s3.put("archive", f"files/{empty}", b"")
    gcs.create_bucket("lake")
    gcs.put("lake", f"blobs/{on_gcs}", b"on gcs")
    store = from_spec({"retry": {"attempts": 2, "base_delay": 0.001}, "tier": [
        {"type": "local", "prefix": str(tmp_path / "cache"), "role": "cache"},
        {"type": "s3", "prefix": "s3://archive/files/", "endpoint_url": s3.endpoint_url, "name": "s3-archive"},
        {"type": "gcs", "prefix": "gs://lake/blobs/", "endpoint": gcs.endpoint, "project": "test",
         "cache_result": True, "verify": True},
    ]})
    results = {r.key: r for r in store.get_many([on_s3, on_gcs, empty, MISSING_KEY], max_workers=4)}
    assert [(results[k].status, results[k].source, results[k].data) for k in blobs] == [
        ("found", "s3-archive", b"on s3"), ("found", "gs://lake/blobs/", b"on gcs"), ("found", "s3-archive", b"")]
    assert results[MISSING_KEY].status == "missing"
    assert (tmp_path / "cache" / on_gcs).read_bytes() == b"on gcs"  # gcs hits are written back, s3 ones not
    assert not (tmp_path / "cache" / on_s3).exists()
    assert pickle.loads(pickle.dumps(store)).get(on_s3) == b"on s3"


MISSING_KEY = sha1(b"nowhere")


def test_keys_that_name_or_count_secrets_are_not_refused():
    tier = {"type": "api", "class": "tests.test_spec:TextAPI", "name": "t"}
    for key in ["token_url", "secret_name", "max_tokens", "credentials_path", "api_key_env", "auth_uri"]:
        spec = load_spec({"tier": [{**tier, key: "value"}]})
        assert spec.tiers[0][key] == "value"
    for key in ["basic_auth", "github_token", "db_password", "aws_session_token"]:
        with pytest.raises(SpecError, match="inline secret"):
            load_spec({"tier": [{**tier, key: "value"}]})


def test_credentials_from_env_are_not_stored_on_the_s3_tier(monkeypatch):
    import pickle

    from bitstore.spec import load_spec

    monkeypatch.setenv("CANARY_KEY_ID", "AKIACANARYKEYID00000")
    monkeypatch.setenv("CANARY_SECRET", "canary-secret-value-123")
    spec = {"tier": [{"type": "s3", "prefix": "s3://bucket/files/", "endpoint_url": "http://127.0.0.1:9",
                      "credentials_env": {"aws_access_key_id": "CANARY_KEY_ID",
                                          "aws_secret_access_key": "CANARY_SECRET"}}]}
    tier = load_spec(spec).build().sources[0]
    raw = pickle.dumps(tier)
    assert b"canary-secret-value-123" not in raw and b"AKIACANARYKEYID00000" not in raw
    assert b"CANARY_SECRET" in raw  # the reference travels, and is read again where the client is built
