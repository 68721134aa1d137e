"""``import bitstore`` stays light: no cloud SDK, Beam, Arrow or obstore is imported with it."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

HEAVY = ["boto3", "botocore", "google.cloud.storage", "apache_beam", "pyarrow", "obstore", "pyspark", "ray"]


def _modules_after(code: str) -> set[str]:
    probe = f"import sys\n{code}\nimport json\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return set(json.loads(out.splitlines()[-1]))


def _heavy_in(modules: set[str]) -> list[str]:
    return [name for name in HEAVY if any(m == name or m.startswith(name + ".") for m in modules)]


def test_import_bitstore_imports_nothing_heavy():
    modules = _modules_after("import bitstore")
    assert "bitstore" in modules
    assert _heavy_in(modules) == []


def test_using_the_core_imports_nothing_heavy():
    code = """
import bitstore
store = bitstore.Sha1Composite()
store.append_source(bitstore.Sha1Store(bitstore.MemoryRaw(), "mem://"))
list(store.get_many(["0" * 40, "bad"]))
bitstore.LocalRaw(".").is_valid("x")
"""
    assert _heavy_in(_modules_after(code)) == []


@pytest.mark.skipif(not all(importlib.util.find_spec(f"bitstore.backends.{m}") for m in ("s3", "gcs")),
                    reason="cloud backends not in this checkout")
def test_star_import_and_lazy_backends_import_nothing_heavy():
    code = "from bitstore import *\nS3Raw, GSRaw, from_spec"
    assert _heavy_in(_modules_after(code)) == []


def test_loading_and_building_a_cloud_spec_imports_nothing_heavy():
    """``load_spec`` reads each tier type's declaration from its backend module; those import no SDK, and
    neither does building the store (clients are made on first use). Importing the spec module alone
    imports no cloud backend at all."""
    code = """
import bitstore.spec
assert "bitstore.backends.s3" not in sys.modules and "bitstore.backends.gcs" not in sys.modules
spec = bitstore.spec.load_spec({"tier": [{"type": "s3", "prefix": "s3://b/", "anonymous": True},
                                         {"type": "gcs", "prefix": "gs://b/", "anonymous": True}]})
spec.build()
"""
    modules = _modules_after(code)
    assert "bitstore.backends.s3" in modules and "bitstore.backends.gcs" in modules
    assert _heavy_in(modules) == []


def test_the_probe_detects_a_heavy_import():
    """Guards the test above against passing vacuously."""
    assert "pyarrow" in _heavy_in(_modules_after("import pyarrow"))


def test_public_names():
    import bitstore

    core = ["Store", "Composite", "Sha1Store", "Sha1Cache", "Sha1APISource", "Sha1Composite", "Sha1FormatMixin",
            "VerifySha1Mixin", "LocalRaw", "MemoryRaw", "FetchResult", "BitstoreError", "NotFoundInStore",
            "StoreNotAvailable", "InvalidURI", "InvalidDataFound", "FetchFailed"]
    for name in core:
        assert name in bitstore.__all__
        assert getattr(bitstore, name).__name__ == name
    from bitstore.core.sha1 import InvalidDataFound

    assert InvalidDataFound is bitstore.InvalidDataFound  # importable from where the original had it


_CLI = """
import sys
from bitstore.cli.main import main
code = main({argv!r})
assert code == 0, code
"""
_SDKS = ["boto3", "botocore", "google", "azure", "obstore", "pyarrow"]


def test_cli_help_ls_scrub_and_a_local_replicate_import_no_sdk(tmp_path):
    """The shell commands that touch no cloud store start light: no SDK, obstore or Arrow (and a replicate
    with nothing left to copy starts no threads: the pool's library is not imported)."""
    import hashlib

    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    for data in (b"one", b"two", b"three"):
        (src / hashlib.sha1(data).hexdigest()).write_bytes(data)
    runs = {
        "--help": ["--help"],
        "ls": ["ls", "--url", str(src)],
        "scrub": ["scrub", "--url", str(src), "--no-progress"],
        "replicate": ["replicate", "--from", str(src), "--to", str(dst), "--no-progress"],
        "rerun": ["replicate", "--from", str(src), "--to", str(dst), "--no-progress"],
    }
    for name, argv in runs.items():
        probe = _CLI.format(argv=argv) if name != "--help" else (
            "from bitstore.cli.main import main\nassert main(['--help']) == 0")
        modules = _modules_after(probe)
        assert [m for m in _SDKS if m in modules or any(k.startswith(m + ".") for k in modules)] == [], name
        if name == "rerun":
            assert "ultima" not in modules
    assert len(list(dst.iterdir())) == 3  # the replicate did copy (the probe ran the command)
