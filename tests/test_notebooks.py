"""Every notebook under notebooks/ runs top to bottom in a Jupyter kernel of this interpreter, and is saved clean."""
from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from bitstore import Composite, LocalRaw, MemoryRaw, S3Raw, Sha1Cache, Sha1Composite, Sha1Store
from bitstore.cli.demo import SimulatedPaidAPI

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
KERNEL = "bitstore-test-python"
CELL_TIMEOUT = 300
#: Absolute paths of any common form (POSIX roots, home folders, Windows drives).
ABSOLUTE_PATH = re.compile(r"""(?:^|[\s'"(=])(?:/(?:home|root|work|tmp|Users|var|opt|usr|mnt)/|~/|[A-Za-z]:\\)""")
URL = re.compile(r"\b(?:https?|s3|gs)://[^\s'\"]*|\bhttps?://\S+")


def test_there_is_a_notebook():
    assert [p.name for p in NOTEBOOKS] == ["explore_bitstore.ipynb"]


@pytest.fixture
def venv_kernel(tmp_path, monkeypatch) -> str:
    """A kernelspec that runs ipykernel under this very interpreter (not whatever ``python`` is on PATH)."""
    spec_dir = tmp_path / "jupyter" / "kernels" / KERNEL
    spec_dir.mkdir(parents=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "bitstore test kernel", "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    return KERNEL


def _streams(nb, name: str) -> str:
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                   for o in c.outputs if o.output_type == "stream" and o.name == name)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executes_without_errors(path: Path, venv_kernel: str, tmp_path: Path):
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import sys; print('kernel interpreter:', sys.executable)"))
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    # Raises CellExecutionError (with the cell and its traceback) on the first cell that fails.
    NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name=venv_kernel,
                   resources={"metadata": {"path": str(workdir)}}).execute()

    stdout, stderr = _streams(nb, "stdout"), _streams(nb, "stderr")
    assert f"kernel interpreter: {sys.executable}\n" in stdout
    assert "Traceback" not in stderr
    assert "TqdmWarning" not in stderr and "IProgress not found" not in stderr
    if importlib.util.find_spec("ipywidgets") is None:
        assert re.search(r"bitstore: 100%\|[^\n]*\| (\d+)/\1 ", stderr), "get_many showed no text progress bar"
    else:
        widgets = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
                   if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
        assert widgets, "get_many showed no widget progress bar"
    assert not list(workdir.iterdir()), "the notebook left files in its working directory"
    html = "".join(o.get("data", {}).get("text/html", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "bitstore tier statistics" in html, "the stats table (Stats._repr_html_) was not shown"
    assert "pass 2: 0 API calls" in stdout and "at most 4 API calls at once" in stdout


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_saved_clean(path: Path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and any(c.cell_type == "markdown" for c in nb.cells)
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None, f"outputs saved in cell: {cell.source[:60]!r}"
    assert "widgets" not in nb.metadata
    for cell in nb.cells:
        assert not ABSOLUTE_PATH.search(cell.source), f"absolute path in cell: {cell.source[:80]!r}"
    for cell in code:
        for url in URL.findall(cell.source):
            assert url.startswith(("http://127.0.0.1", "s3://")), f"network beyond 127.0.0.1: {url}"
    assert str(Path(__file__).resolve().parent.parent) not in path.read_text()


def test_absolute_path_pattern_catches_common_forms():
    for text in ["root = '/home/me/blobs'", 'open("/tmp/x")', "p = ~/data", r"'C:\\data'", "x = '/work/main'"]:
        assert ABSOLUTE_PATH.search(text), text
    for text in ["root / 'archive'", "s3://customer-data/blobs/", "a/b/c", "http://127.0.0.1:5000/"]:
        assert not ABSOLUTE_PATH.search(text), text


def test_composite_html_repr_is_a_table_of_tiers(tmp_path):
    store = Sha1Composite(name="nb<&>")
    store.append_cache(Sha1Cache(LocalRaw(root=tmp_path), "cache/", name="cache"))
    store.append_source(Sha1Store(MemoryRaw(), "mem://a/", name="<script>x</script>"))
    store.append_source(SimulatedPaidAPI({}, name="paid-api"), max_concurrency=4, max_rate=2.5)
    html = store._repr_html_()
    assert html.startswith("<table>") and html.endswith("</table>")
    rows = re.findall(r"<tr><td>(\d)</td><td>(.*?)</td><td>(.*?)</td><td>(\w+)</td><td>(\w*)</td><td>(.*?)</td></tr>",
                      html)
    assert rows == [
        ("1", "cache", "Sha1Cache over LocalRaw", "cache", "", ""),
        ("2", "&lt;script&gt;x&lt;/script&gt;", "Sha1Store over MemoryRaw", "source", "", ""),
        ("3", "paid-api", "SimulatedPaidAPI", "source", "yes", "4 at once, 2.5/s"),
    ]
    assert "nb&lt;&amp;&gt;" in html and "write-back to: cache" in html and "<script>" not in html


def test_composite_html_repr_without_cache_and_without_secrets():
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRET"
    store = Composite()
    store.append_source(S3Raw({"aws_access_key_id": "AKIDEXAMPLE", "aws_secret_access_key": secret},
                              endpoint_url="http://127.0.0.1:9"))
    html = store._repr_html_()
    assert "write-back to: none" in html and "<td>S3Raw</td>" in html
    assert secret not in html and "AKIDEXAMPLE" not in html
