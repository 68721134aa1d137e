"""The house stays in shape: no import circle, no import of a higher layer, every layer says what it owns, the
engine names no store class (a user's own store takes the loop's fast path by answering its protocol), and every
public name imports from where it always did."""
from __future__ import annotations

import ast
import asyncio
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tools.import_graph import LAYERS, PACKAGE, Graph, layer_of, report

PUBLIC = {
    "bitstore": ["Store", "FetchResult", "BlobInfo", "PutResult", "Composite", "Sha1Store", "Sha1Cache",
                 "Sha1APISource", "Sha1Composite", "Sha1FormatMixin", "VerifySha1Mixin", "sha1_hex",
                 "Sha256Store", "Sha256Cache", "Sha256APISource", "Sha256Composite", "Sha256FormatMixin",
                 "VerifySha256Mixin", "sha256_hex", "LocalRaw",
                 "MemoryRaw", "S3Raw", "GSRaw", "from_spec", "RetryPolicy", "BitstoreError", "NotFoundInStore",
                 "InvalidDataFound", "StoreNotAvailable", "InvalidURI", "FetchFailed", "BlobTooLarge", "SpecError",
                 "Throttled", "__version__"],
    "bitstore.arrow": ["enrich_table", "enrich_batches", "ColumnError", "MissingColumn", "ColumnTypeError",
                       "ColumnExists", "DATASET_BATCH_ROWS"],
    "bitstore.spark": ["enrich_dataframe", "local_session", "check_java", "JavaNotFound", "JAVA_INSTALL_HINT"],
    "bitstore.ray": ["enrich_dataset", "local_cluster", "ACTOR_NUM_CPUS"],
    "bitstore.spec": ["Spec", "load_spec", "from_spec", "default_spec", "TIER_TYPES"],
    "bitstore.exc": ["StoreNotAvailable", "NotFoundInStore", "InvalidURI", "ParameterizedException", "BitstoreError",
                     "InvalidDataFound", "FetchFailed", "BlobTooLarge", "SpecError"],
    "bitstore.aws": ["S3Raw", "ANONYMOUS", "Store", "NotFoundInStore", "StoreNotAvailable"],
    "bitstore.gcp": ["GSRaw", "ANONYMOUS", "Store", "NotFoundInStore", "StoreNotAvailable"],
    "bitstore.sha1": ["Sha1FormatMixin", "InvalidDataFound", "VerifySha1Mixin", "Sha1Store", "Sha1APISource",
                      "Sha1Composite", "Sha1Cache", "sha1_hex"],
    "bitstore.store": ["Store", "FetchResult", "Status", "DEFAULT_MAX_BYTES_IN_FLIGHT"],
    "bitstore.composite": ["Composite"],
    "bitstore.cli": ["main", "EXIT_OK", "EXIT_MISSING", "EXIT_USAGE", "EXIT_FAILED"],
    "beam_transforms": ["FetchBlobs", "FetchBlobsResult", "EnrichWithBlobs", "BitstoreEnrichmentHandler"],
}


def test_no_circles_and_no_upward_imports():
    status, text = report(Graph.read())
    assert status == 0, text


def test_the_check_finds_a_circle_and_an_upward_import(tmp_path):
    """The checker is not blind: a tree with both faults reports both."""
    root = tmp_path / "bitstore"
    for folder in ("ground", "core"):
        (root / folder).mkdir(parents=True)
        (root / folder / "__init__.py").write_text('"""x"""\n')
    (root / "__init__.py").write_text("")
    (root / "ground" / "a.py").write_text("from ..core import b\n")  # ground imports core: upward
    (root / "core" / "b.py").write_text("def f():\n    from ..ground import a\n")  # lazy, and a circle
    graph = Graph.read(root)
    assert graph.circles() == [["bitstore.core.b", "bitstore.ground.a"]]
    assert ("bitstore.ground.a", "bitstore.core.b") in graph.upward()


def test_the_check_runs_as_a_command():
    out = subprocess.run([sys.executable, "-m", "tests.tools.import_graph"], capture_output=True, text=True,
                         cwd=PACKAGE.parent, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 circles, 0 upward imports" in out.stdout


def test_every_module_is_on_a_layer_and_every_layer_says_what_it_owns_and_may_import():
    graph = Graph.read()
    assert {LAYERS[layer_of(name)][0] for name in graph.edges} == {name for name, _ in LAYERS}
    for name, _ in LAYERS[:-1]:
        init = PACKAGE / name / "__init__.py"
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert "import" in doc.lower() and len(doc) > 80, f"{init} must say what the layer owns and what it may import"


STORE_CLASSES = {"Store", "LocalRaw", "MemoryRaw", "CloudRaw", "S3Raw", "GSRaw", "Sha1Store", "Sha1Cache",
                 "Sha1Composite", "Composite", "Tier"}


def test_the_engine_names_no_store_class():
    for path in (PACKAGE / "engine").glob("*.py"):
        tree = ast.parse(path.read_text())
        named = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        named |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        assert not named & STORE_CLASSES, f"{path.name} names {sorted(named & STORE_CLASSES)}"


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_every_public_name_imports_from_where_it_did(module):
    imported = importlib.import_module(module)
    missing = [name for name in PUBLIC[module] if not hasattr(imported, name)]
    assert missing == []
    if hasattr(imported, "__all__"):
        assert set(PUBLIC[module]) - {"__version__"} <= set(imported.__all__)


def test_a_users_own_store_takes_the_loops_fast_path():
    """A store of the user's answers ``async_route`` with a ``Route``: the event-loop engine makes its attempts on
    the loop (no thread), and what the attempt cannot answer goes to the store's own ``get``."""
    from bitstore import NotFoundInStore, Store
    from bitstore.engine.routes import Fallback, Route

    class Remote(Store):
        def __init__(self):
            self.on_loop, self.on_threads = [], []

        def is_valid(self, uri):
            return isinstance(uri, str)

        def get(self, uri):
            self.on_threads.append(uri)
            if uri == "flaky":
                return b"from get"
            raise NotFoundInStore(self, uri)

        def async_route(self):
            return Route(self, self._attempt, lambda: True)

        async def _attempt(self, uri, views):
            asyncio.get_running_loop()  # raises unless on the engine's loop
            self.on_loop.append(uri)
            if uri == "flaky":
                raise Fallback
            return NotFoundInStore(self, uri) if uri == "gone" else uri.encode()

    store = Remote()
    results = list(store.get_many(["a", "gone", "flaky", "b"], engine="async", max_workers=4))
    assert [(r.status, r.data) for r in results] == [
        ("found", b"a"), ("missing", None), ("found", b"from get"), ("found", b"b")]
    assert sorted(store.on_loop) == ["a", "b", "flaky", "gone"]
    assert store.on_threads == ["flaky"]
    threads_only = Remote()
    assert [r.status for r in threads_only.get_many(["a", "gone"], engine="threads")] == ["missing", "missing"]
    assert threads_only.on_loop == []


def test_facades_only_reexport():
    """``bitstore.arrow`` and friends hold no code of their own: the module a user imports is a path into
    ``integrations``."""
    for name in ("arrow", "spark", "ray", "exc", "aws", "gcp", "sha1", "store", "composite"):
        tree = ast.parse((PACKAGE / f"{name}.py").read_text())
        kinds = {type(node).__name__ for node in tree.body}
        assert kinds <= {"Expr", "ImportFrom", "Assign"}, (name, kinds)


def test_layer_map_lists_every_subpackage():
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    prefixes = {prefix.split(".")[1] for _, group in LAYERS for prefix in group if prefix.count(".") == 1}
    assert packages <= prefixes, packages - prefixes


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([str(Path(__file__))]))
