"""Stores from URLs: ``parse_url`` for every scheme, ``from_url``/``from_urls`` against real servers (moto,
fake-gcs-server, the http blob server), spec tiers with ``url = ...``, ``type = "http"``, and ``--url`` in the CLI."""
from __future__ import annotations

import hashlib
import os
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bitstore
from bitstore import NotFoundInStore, SpecError, from_spec, from_url, from_urls
from bitstore.spec import load as spec_load
from bitstore.spec.url_stores import url_spec
from bitstore.spec.urls import parse_url, url_of

DATA = b"blob from a URL"
SHA1 = hashlib.sha1(DATA).hexdigest()


# --- parsing ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("url", "kind", "prefix", "extra"), [
    ("s3://bucket/files/", "s3", "s3://bucket/files/", {}),
    ("s3://bucket", "s3", "s3://bucket/", {}),
    ("gs://bucket/a/b/", "gcs", "gs://bucket/a/b/", {}),
    ("az://container/p/", "azure", "az://container/p/", {}),
    ("azure://container/p/", "azure", "az://container/p/", {}),
    ("abfs://container@acct.dfs.core.windows.net/p/", "azure", "az://container/p/", {"account_name": "acct"}),
    ("file:///var/blobs/", "local", "/var/blobs/", {}),
    ("file://localhost/var/blobs/", "local", "/var/blobs/", {}),
    ("/var/blobs/", "local", "/var/blobs/", {}),
    ("relative/dir/", "local", "relative/dir/", {}),
    ("mem://name/", "memory", "mem://name/", {}),
    ("https://cdn.example.com/blobs/", "http", "https://cdn.example.com/blobs/", {}),
    ("https://cdn.example.com", "http", "https://cdn.example.com/", {}),
    ("https://api.example.com/v1/files?hash={sha1}", "http", "https://api.example.com/v1/files?hash={sha1}", {}),
    ("HTTP://127.0.0.1:8080/blobs/{sha1}/raw", "http", "HTTP://127.0.0.1:8080/blobs/{sha1}/raw", {}),
])
def test_parse_url(url, kind, prefix, extra):
    assert parse_url(url) == (kind, prefix, extra)


@pytest.mark.parametrize(("url", "words"), [
    ("ftp://host/dir/", "unknown URL scheme 'ftp'"),
    ("s3://", "s3://bucket/folder/"),
    ("gs:///x", "gs://bucket/folder/"),
    ("s3:bucket/x", "scheme://"),
    ("https://user:pw@example.com/x/", "credentials do not go in a URL"),
    ("https://example.com/x?a=b", "needs {sha1}"),
    ("https://example.com/{sha1}/{sha1}", "once"),
    ("https://example.com/{key}", "placeholder"),
    ("https://example.com:99999/", "not a valid URL"),
    ("file://otherhost/x", "file:///absolute/path/"),
    ("mem://", "mem://name/"),
    ("", "not a store URL"),
    (42, "a string"),
])
def test_bad_urls_are_spec_errors_naming_what_is_wrong(url, words):
    with pytest.raises(SpecError, match=None) as raised:
        parse_url(url)
    assert words in str(raised.value)
    assert "pw" not in str(raised.value).replace("pw@", "")  # no password shown


_NAME = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=20)
_PATH = st.lists(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=1, max_size=10).filter(
    lambda s: s not in (".", "..")), max_size=4).map(lambda parts: "".join(p + "/" for p in parts))


@settings(max_examples=200, deadline=None)
@given(kind=st.sampled_from(["s3", "gcs", "azure", "memory", "local", "http"]), name=_NAME, path=_PATH,
       template=st.booleans(), https=st.booleans())
def test_parse_url_round_trips(kind, name, path, template, https):
    prefix = {"s3": f"s3://{name}/{path}", "gcs": f"gs://{name}/{path}", "azure": f"az://{name}/{path}",
              "memory": f"mem://{name}/{path}", "local": f"/{name}/{path}",
              "http": f"{'https' if https else 'http'}://{name}.example.com/{path}{'{sha1}' if template else ''}"}[kind]
    url = url_of(kind, prefix)
    assert parse_url(url) == (kind, prefix, {})
    assert url_of(*parse_url(url)[:2]) == url


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=40))
def test_parse_url_never_crashes(text):
    try:
        kind, prefix, extra = parse_url(text)
    except SpecError:
        return
    assert kind in spec_load.TIER_TYPES and isinstance(prefix, str) and isinstance(extra, dict)


# --- from_url / from_urls ----------------------------------------------------------------------------------------
def test_from_url_file_and_plain_path(tmp_path, monkeypatch):
    store = from_url(f"file://{tmp_path}/blobs/")
    store.put(SHA1, DATA)
    assert (tmp_path / "blobs" / SHA1).read_bytes() == DATA
    monkeypatch.chdir(tmp_path)
    again = from_url("blobs/")
    assert again.get(SHA1.upper()) == DATA
    assert pickle.loads(pickle.dumps(again)).get(SHA1) == DATA
    with pytest.raises(NotFoundInStore):
        again.get("0" * 40)


def test_from_url_memory_with_options():
    store = from_url("mem://scratch/", max_bytes=100, verify=False, name="scratch")
    store.put(SHA1, DATA)
    assert store.get(SHA1) == DATA and store.name == "scratch"


def test_from_url_s3_against_moto(s3):
    s3.create_bucket("url-bucket")
    s3.put("url-bucket", f"files/{SHA1}", DATA)
    store = from_url("s3://url-bucket/files/", endpoint_url=s3.endpoint_url, transport="sdk", attempts=2)
    assert store.get(SHA1) == DATA
    assert [r.status for r in store.get_many([SHA1, "1" * 40], progress=False)] == ["found", "missing"]
    store.put(hashlib.sha1(b"new").hexdigest(), b"new")
    assert s3.client.get_object(Bucket="url-bucket", Key=f"files/{hashlib.sha1(b'new').hexdigest()}")[
        "Body"].read() == b"new"


def test_from_url_gs_against_fake_gcs(gcs):
    gcs.create_bucket("url-bucket")
    gcs.put("url-bucket", f"blobs/{SHA1}", DATA)
    store = from_url("gs://url-bucket/blobs/", endpoint=gcs.endpoint, anonymous=True, attempts=2)
    assert store.get(SHA1) == DATA
    with pytest.raises(NotFoundInStore):
        store.get("2" * 40)


def test_from_url_http(blob_server):
    blob_server.put(DATA)
    assert from_url(f"{blob_server.url}/blobs/").get(SHA1) == DATA
    assert from_url(blob_server.url + "/api/files?hash={sha1}", transport="sdk").get(SHA1) == DATA
    with pytest.raises(NotImplementedError, match="read-only"):
        from_url(f"{blob_server.url}/blobs/").tiers[0].store.put(SHA1, DATA)


def test_from_urls_writes_hits_back_to_the_cache(tmp_path, blob_server):
    blob_server.put(DATA)
    store = from_urls(["mem://empty/", f"{blob_server.url}/blobs/"], cache=f"file://{tmp_path}/cache/")
    assert store.get(SHA1) == DATA
    assert (tmp_path / "cache" / SHA1).read_bytes() == DATA  # written back before get returned
    blob_server.reset()
    assert store.get(SHA1) == DATA  # now from the cache
    assert [t.name for t in store.tiers][0].startswith("local:")


def test_from_urls_per_tier_options(tmp_path):
    store = from_urls([("mem://a/", {"max_bytes": 10}), f"file://{tmp_path}/b/"], missing_ttl=5)
    assert len(store.tiers) == 2
    with pytest.raises(SpecError, match="max_bytes"):
        from_urls(["mem://a/", ("mem://b/", {"max_bytes": "lots"})])


@pytest.mark.parametrize(("call", "key"), [
    (lambda: from_url("s3://b/p/", endpointurl="http://x"), "endpointurl"),
    (lambda: from_url("mem://x/", headers_env={"A": "B"}), "headers_env"),
    (lambda: from_url("https://example.com/p/", endpoint_url="x"), "endpoint_url"),
    (lambda: from_url("gopher://x/"), "url"),
    (lambda: from_url("s3://b/p/", type="gcs"), "type"),
    (lambda: from_urls(["mem://a/", "ftp://b/"]), "urls[2]"),
    (lambda: from_url("http://blobs.example.com/p/"), "url"),
    (lambda: from_url("mem://x/", keys="uri"), "keys"),
])
def test_unknown_options_and_schemes_are_spec_errors_naming_them(call, key):
    with pytest.raises(SpecError) as raised:
        call()
    assert raised.value.key == key, str(raised.value)
    assert key in str(raised.value)


def test_keys_passes_through_to_the_spec():
    assert url_spec(["mem://x/"], keys="sha256")["keys"] == "sha256"
    assert url_spec(["mem://x/"])["tier"][0] == {"type": "memory", "prefix": "mem://x/"}


def test_from_url_is_exported_lazily():
    assert bitstore.from_url is from_url and bitstore.from_urls is from_urls
    assert "from_url" in bitstore.__all__ and "HTTPRaw" in bitstore.__all__


# --- azure: declared, and a clear error when its backend is absent ----------------------------------------------
def test_azure_urls_need_the_azure_backend(monkeypatch):
    monkeypatch.setitem(spec_load._DECLARED_IN, "azure", "bitstore.backends._azure_not_here")
    with pytest.raises(SpecError, match="azure backend is not installed"):
        from_url("az://container/p/")
    with pytest.raises(SpecError, match="azure backend is not installed"):
        from_spec({"tier": [{"url": "abfs://container/p/"}]})


# --- spec tiers with url = ... and type = "http" ------------------------------------------------------------------
def test_spec_url_replaces_type_and_prefix(tmp_path):
    spec = spec_load.load_spec({"tier": [{"url": f"file://{tmp_path}/c/", "role": "cache"}, {"url": "mem://m/"}]})
    assert [(t["type"], t["prefix"]) for t in spec.tiers] == [("local", f"{tmp_path}/c/"), ("memory", "mem://m/")]


@pytest.mark.parametrize(("tier", "key"), [
    ({"url": "mem://m/", "type": "memory"}, "tier[1].type"),
    ({"url": "mem://m/", "prefix": "mem://n/"}, "tier[1].prefix"),
    ({"type": "http", "url": "https://example.com/a/", "prefix": "https://example.com/b/"}, "tier[1].prefix"),
    ({"type": "http", "url": "s3://bucket/p/"}, "tier[1].url"),
    ({"url": "nope://x/"}, "tier[1].url"),
    ({"type": "http", "url": "https://example.com/a/", "headers_env": {"Authorization": "not a name"}},
     "tier[1].headers_env.Authorization"),
    ({"type": "http", "url": "https://example.com/a/", "headers_env": {"Authorization": "UNSET_VAR_FOR_URL_TEST"}},
     "tier[1].headers_env.Authorization"),
    ({"type": "http", "prefix": "https://example.com/a/", "role": "cache"}, "tier[1].role"),
])
def test_spec_url_errors_name_the_key(tier, key, monkeypatch):
    monkeypatch.delenv("UNSET_VAR_FOR_URL_TEST", raising=False)
    with pytest.raises(SpecError) as raised:
        from_spec({"tier": [tier]})
    assert raised.value.key == key, str(raised.value)


def test_spec_http_tier(blob_server, monkeypatch, tmp_path):
    blob_server.put(DATA)
    blob_server.token = "spec-token"
    monkeypatch.setenv("SPEC_TOKEN", "Bearer spec-token")
    toml = tmp_path / "spec.toml"
    toml.write_text(f'[[tier]]\ntype = "http"\nurl = "{blob_server.url}/blobs/"\n'
                    'headers_env = {{ Authorization = "SPEC_TOKEN" }}\nmax_concurrency = 4\nattempts = 2\n'
                    .replace("{{", "{").replace("}}", "}"))
    store = from_spec(str(toml))
    assert store.get(SHA1) == DATA
    assert b"spec-token" not in pickle.dumps(store)


def test_api_tiers_keep_their_url_argument():
    spec = spec_load.load_spec({"tier": [{"type": "api", "class": "bitstore:Sha1APISource",
                                          "url": "https://blobs.example.com"}]})
    assert spec.tiers[0]["url"] == "https://blobs.example.com"


# --- the CLI: --url and --cache-url --------------------------------------------------------------------------
def test_cli_url_and_cache_url(tmp_path, capsys):
    from bitstore.cli.main import main

    source = tmp_path / "source"
    (tmp_path / "f.bin").write_bytes(DATA)
    assert main(["put", str(tmp_path / "f.bin"), "--url", f"file://{source}/"]) == 0
    assert SHA1 in capsys.readouterr().out
    out = tmp_path / "out.bin"
    assert main(["get", SHA1, "--url", "mem://empty/", "--url", f"file://{source}/", "-o", str(out)]) == 0
    assert out.read_bytes() == DATA
    keys = tmp_path / "keys.txt"
    keys.write_text(SHA1 + "\n")
    assert main(["warm", "--input", str(keys), "--url", f"file://{source}/", "--cache-url",
                 f"file://{tmp_path}/cache/"]) == 0
    assert (tmp_path / "cache" / SHA1).read_bytes() == DATA
    assert main(["get", "0" * 40, "--url", f"file://{source}/", "-o", str(out)]) == 1
    assert main(["get", SHA1, "--url", "ftp://x/"]) == 2
    assert "unknown URL scheme 'ftp'" in capsys.readouterr().err
    assert main(["get", SHA1, "--url", "mem://x/", "--spec", os.devnull]) == 2


def test_sha256_templates_and_the_cli_keys_option(tmp_path, blob_server, capsys):
    """A SHA-256 store's key goes where ``{sha256}`` stands; a placeholder of the other family is refused by name;
    ``--keys sha256`` makes the ``--url`` tiers SHA-256 stores."""
    import hashlib

    from bitstore import from_url
    from bitstore.cli.main import main

    key = hashlib.sha256(DATA).hexdigest()
    blob_server.put(DATA, name=key)
    store = from_url(f"{blob_server.url}/blobs/{{sha256}}", keys="sha256")
    assert store.get(key) == DATA
    assert store.fetch(SHA1).status == "invalid"  # a SHA1 given to a SHA-256 store: invalid, never missing
    with pytest.raises(SpecError, match=r"placeholder is \{sha1\}, not \{sha256\}"):
        from_url(f"{blob_server.url}/blobs/{{sha256}}")
    with pytest.raises(SpecError, match="may appear once"):
        from_url(f"{blob_server.url}/{{sha1}}/{{sha256}}")
    source = tmp_path / "source"
    (tmp_path / "f.bin").write_bytes(DATA)
    assert main(["put", str(tmp_path / "f.bin"), "--url", f"file://{source}/", "--keys", "sha256"]) == 0
    assert key in capsys.readouterr().out and (source / key).read_bytes() == DATA
    assert main(["get", key, "--url", f"file://{source}/", "--keys", "sha1"]) == 2  # not a SHA1: invalid
    assert main(["get", key, "--keys", "sha256"]) == 2  # --keys without --url
    assert "--keys goes with --url" in capsys.readouterr().err
