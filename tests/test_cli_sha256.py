"""SHA-256 keys through specs, the fetch job and the console script: ``keys = "sha256"`` builds a
``Sha256Composite``; ``bitstore put`` names files by SHA-256; ``get``/``fetch``/``stat``/``warm``/``verify`` take
SHA-256 keys (a SHA1 is ``invalid``); the key column defaults to ``sha256`` (``--column`` overrides it)."""
from __future__ import annotations

import hashlib
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from bitstore import LocalRaw, Sha256APISource, Sha256Cache, Sha256Composite, Sha256Store, SpecError, from_spec
from bitstore.integrations.fetchjob import failure_cause
from bitstore.integrations.inputs import open_keys
from bitstore.spec import load_spec

REPO = Path(__file__).resolve().parents[1]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


class TextAPI(Sha256APISource):
    """An API keyed by SHA-256, built from spec keyword arguments."""

    def __init__(self, texts: dict, name: str = "text-api"):
        super().__init__(name=name)
        self.texts = texts

    def api_get(self, key: str) -> bytes | None:
        text = self.texts.get(key)
        return None if text is None else text.encode()


def spec_for(tmp_path: Path) -> dict:
    return {"keys": "sha256", "tier": [
        {"type": "local", "prefix": str(tmp_path / "cache"), "role": "cache", "name": "cache"},
        {"type": "local", "prefix": str(tmp_path / "archive"), "name": "archive"},
        {"type": "api", "class": "tests.test_cli_sha256:TextAPI", "texts": {sha256(b"from api"): "from api"}},
    ]}


def bitstore(*args, home: Path, cwd: Path):
    env = {**os.environ, "BITSTORE_HOME": str(home), "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "bitstore.cli", *map(str, args)], capture_output=True, env=env,
                          cwd=cwd, timeout=120)


# --- specs -----------------------------------------------------------------------------------------------
def test_a_sha256_spec_builds_a_sha256_composite_and_fetches(tmp_path):
    blob = b"archived"
    (tmp_path / "archive").mkdir()
    LocalRaw(tmp_path).put(str(tmp_path / "archive" / sha256(blob)), blob)
    store = from_spec(spec_for(tmp_path))
    assert isinstance(store, Sha256Composite) and store.name == "Sha256Composite"
    assert isinstance(store.sources[0], Sha256Cache) and isinstance(store.sources[1], Sha256Store)
    assert store.sources[0].verify and not store.sources[1].verify
    assert store.get(f"sha256://{sha256(blob).upper()}") == blob
    assert store.get(sha256(b"from api")) == b"from api"
    assert (tmp_path / "cache" / sha256(b"from api")).read_bytes() == b"from api"  # written back
    results = list(store.get_many([sha256(blob), sha1(blob), sha256(b"nowhere")], progress=False))
    assert [r.status for r in results] == ["found", "invalid", "missing"]
    again = pickle.loads(pickle.dumps(store))  # pickles as its spec
    assert isinstance(again, Sha256Composite) and again.get(sha256(blob)) == blob


def test_spec_keys_are_checked_and_an_api_of_the_other_family_is_refused(tmp_path):
    with pytest.raises(SpecError, match="'sha1', 'sha256', 'uri'") as info:
        load_spec({"keys": "sha512", "tier": [{"type": "memory"}]})
    assert info.value.key == "keys"
    spec = spec_for(tmp_path)
    spec["tier"][2] = {"type": "api", "class": "tests.test_spec:TextAPI", "texts": {}}  # a Sha1APISource
    with pytest.raises(SpecError, match="keyed by SHA1") as info:
        from_spec(spec)
    assert info.value.key == "tier[3].class"


def test_failure_causes_mask_sha256_keys_too():
    key = sha256(b"k")
    assert failure_cause(f"s3 failed for {key} and {sha1(b'k')}") == "s3 failed for <key> and <key>"


def test_text_input_names_its_column_after_the_keys(tmp_path):
    path = tmp_path / "keys.txt"
    path.write_text(f"SHA256\n{sha256(b'a')}\n")
    keys = open_keys(path, text_column="sha256")
    assert list(keys) == [sha256(b"a")] and keys.key_column == "sha256" and keys.column == "sha256"
    assert open_keys(path).key_column == "sha1"


# --- the console script ---------------------------------------------------------------------------------
@pytest.fixture
def spec_file(tmp_path) -> Path:
    spec = tmp_path / "store.toml"
    spec.write_text(f'keys = "sha256"\n[[tier]]\ntype = "local"\nprefix = "{tmp_path / "blobs"}"\nrole = "cache"\n'
                    f'name = "local"\n')
    return spec


def test_put_names_files_by_sha256_and_get_fetch_stat_verify_take_them(tmp_path, spec_file):
    home = tmp_path / "home"
    files = []
    for i, data in enumerate([b"one\n", bytes(range(256)) * 100]):
        files.append(tmp_path / f"f{i}.bin")
        files[-1].write_bytes(data)
    put = bitstore("put", "--spec", spec_file, *files, home=home, cwd=tmp_path)
    assert put.returncode == 0, put.stderr
    keys = [sha256(f.read_bytes()) for f in files]
    assert put.stdout.decode().splitlines() == [f"{k}  {f}" for k, f in zip(keys, files)]
    assert (tmp_path / "blobs" / keys[1]).read_bytes() == files[1].read_bytes()

    out = tmp_path / "got.bin"
    got = bitstore("get", "--spec", spec_file, f"SHA256://{keys[1].upper()}", "-o", out, home=home, cwd=tmp_path)
    assert got.returncode == 0, got.stderr
    assert out.read_bytes() == files[1].read_bytes()
    sha1_key = bitstore("get", "--spec", spec_file, sha1(b"one\n"), "-o", out, home=home, cwd=tmp_path)
    assert sha1_key.returncode == 2 and b"sha256" in sha1_key.stderr  # invalid, never "not found"
    missing = bitstore("get", "--spec", spec_file, sha256(b"nope"), "-o", out, home=home, cwd=tmp_path)
    assert missing.returncode == 1

    listing = tmp_path / "keys.txt"
    listing.write_text("sha256\n" + "\n".join([keys[0], sha1(b"one\n"), sha256(b"nope")]) + "\n")
    table = tmp_path / "out.parquet"
    fetched = bitstore("fetch", "--spec", spec_file, "--input", listing, "-o", table, home=home, cwd=tmp_path)
    assert fetched.returncode == 0, fetched.stderr
    rows = pq.read_table(table).to_pylist()
    assert list(rows[0]) == ["sha256", "blob", "status", "source"]
    assert [(r["sha256"], r["status"]) for r in rows] == [(keys[0], "found"), (sha1(b"one\n"), "invalid"),
                                                          (sha256(b"nope"), "missing")]
    assert rows[0]["blob"] == b"one\n"

    stat = bitstore("stat", "--spec", spec_file, "--input", listing, home=home, cwd=tmp_path)
    assert stat.returncode == 0, stat.stderr
    assert [line.split("\t")[1] for line in stat.stdout.decode().splitlines()] == ["found", "invalid", "missing"]

    (tmp_path / "blobs" / keys[0]).write_bytes(b"rot")  # corrupt the cached copy
    verify = bitstore("verify", "--spec", spec_file, "--input", listing, home=home, cwd=tmp_path)
    assert verify.returncode == 1, verify.stderr
    assert f"{keys[0]}  corrupt in local: data has SHA-256 {sha256(b'rot')}" in verify.stdout.decode()


def test_csv_input_defaults_to_a_sha256_column_and_column_overrides_it(tmp_path, spec_file):
    home = tmp_path / "home"
    data = tmp_path / "x.bin"
    data.write_bytes(b"x")
    assert bitstore("put", "--spec", spec_file, data, home=home, cwd=tmp_path).returncode == 0
    default = tmp_path / "default.csv"
    default.write_text(f"id,sha256\n1,{sha256(b'x')}\n")
    table = tmp_path / "a.parquet"
    done = bitstore("fetch", "--spec", spec_file, "--input", default, "-o", table, home=home, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert pq.read_table(table).to_pylist()[0]["status"] == "found"
    named = tmp_path / "named.csv"
    named.write_text(f"digest\n{sha256(b'x')}\n")
    missing_column = bitstore("fetch", "--spec", spec_file, "--input", named, "-o", table, home=home, cwd=tmp_path)
    assert missing_column.returncode == 2 and b"'sha256'" in missing_column.stderr
    done = bitstore("fetch", "--spec", spec_file, "--input", named, "--column", "digest", "-o", table, home=home,
                    cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert pq.read_table(table).to_pylist() == [{"digest": sha256(b"x"), "blob": b"x", "status": "found",
                                                 "source": "local"}]


def test_warm_fills_a_sha256_cache(tmp_path):
    home = tmp_path / "home"
    (tmp_path / "archive").mkdir()
    (tmp_path / "archive" / sha256(b"w")).write_bytes(b"w")
    spec = tmp_path / "warm.toml"
    spec.write_text(f'keys = "sha256"\n[[tier]]\ntype = "local"\nprefix = "{tmp_path / "cache"}"\nrole = "cache"\n'
                    f'[[tier]]\ntype = "local"\nprefix = "{tmp_path / "archive"}"\n')
    listing = tmp_path / "k.txt"
    listing.write_text(f"{sha256(b'w')}\n{sha1(b'w')}\n")
    warm = bitstore("warm", "--spec", spec, "--input", listing, home=home, cwd=tmp_path)
    assert warm.returncode == 0, warm.stderr
    assert b"cached 1" in warm.stderr and b"invalid 1" in warm.stderr
    assert (tmp_path / "cache" / sha256(b"w")).read_bytes() == b"w"
