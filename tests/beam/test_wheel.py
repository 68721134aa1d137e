"""The project's wheel and sdist hold both import packages, so Dataflow workers can install them
(``--extra_package`` with the wheel, ``--setup_file=./pyproject.toml`` with the sdist Beam builds)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

from .conftest import ROOT

PROJECT_FILES = ["pyproject.toml", "README.md", "LICENSE", "bitstore", "beam_transforms"]
#: A warning in the build output: setuptools' ``SetuptoolsDeprecationWarning`` / ``WARNING ...`` and its ``!!`` boxes,
#: distutils' ``warning: ...``. Lines naming a file being copied or added are not warnings, whatever the file's name.
WARNING = re.compile(r"warning|deprecat|^\s*!!", re.IGNORECASE)
FILE_LINES = ("copying ", "adding ", "creating ", "removing ", "writing ", "reading ")


def test_wheel_and_sdist_hold_bitstore_and_beam_transforms(tmp_path):
    # Build from a copy: setuptools writes build/ and *.egg-info next to the sources.
    src = tmp_path / "src"
    src.mkdir()
    for name in PROJECT_FILES:
        origin = Path(ROOT) / name
        if origin.is_dir():
            shutil.copytree(origin, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy(origin, src / name)
    # PYTHONDONTWRITEBYTECODE makes distutils print "warning: build_py: byte-compiling is disabled, skipping.",
    # which says nothing about the project: the build runs without it so that any warning left is the project's.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    done = subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--wheel", "--no-isolation", "--outdir", str(tmp_path / "dist"),
         str(src)],
        capture_output=True, text=True, timeout=240, env=env,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    # PEP 639 metadata: no "`project.license` as a TOML table is deprecated", no "License classifiers are deprecated".
    warnings = [line for line in (done.stdout + done.stderr).splitlines()
                if WARNING.search(line) and not line.lower().startswith(FILE_LINES)]
    assert not warnings, "\n".join(warnings)
    wheels = list((tmp_path / "dist").glob("bitstore_tiered-*.whl"))
    assert [w.name for w in wheels] == ["bitstore_tiered-0.1.0-py3-none-any.whl"]  # the name the README uses
    names = set(zipfile.ZipFile(wheels[0]).namelist())
    sources = {str(p.relative_to(ROOT)) for folder in ("bitstore", "beam_transforms")
               for p in (Path(ROOT) / folder).rglob("*.py")}
    assert sources - names == set()  # every module of every subpackage
    assert not any(name.startswith(("tests/", "benchmarks/")) for name in names)
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheels[0]).read(metadata).decode()
    assert "Provides-Extra: beam" in text
    assert "Name: bitstore-tiered" in text  # "bitstore" on the package index is an unrelated project
    headers = text.split("\n\n", 1)[0].splitlines()
    assert "License-Expression: MIT" in headers
    assert "License-File: LICENSE" in headers
    assert not any(h.startswith(("License:", "Classifier: License ::")) for h in headers)
    dist_info = metadata.rsplit("/", 1)[0]
    license_text = zipfile.ZipFile(wheels[0]).read(f"{dist_info}/licenses/LICENSE").decode()
    assert license_text.startswith("MIT License") and "bitstore developers" in license_text

    sdists = list((tmp_path / "dist").glob("bitstore_tiered-*.tar.gz"))
    assert len(sdists) == 1
    with tarfile.open(sdists[0]) as sdist:
        members = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    assert {"pyproject.toml", "LICENSE", "bitstore/__init__.py", "beam_transforms/__init__.py",
            "beam_transforms/_store.py"} <= members
