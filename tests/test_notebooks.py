"""The evaluation notebooks run top to bottom on a fresh install (headless, with nbclient), each training
its own small model on generated data; every plot cell draws a PNG and every table cell renders HTML.
They are stored without outputs and hold no logic of their own (that lives in ``vision2seq.viz``)."""

from __future__ import annotations

import ast
import json
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # end-to-end runs; `pytest -m 'not slow'` leaves them out

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
# Cells tagged "plot" / "table", per notebook.
EXPECTED = {
    "evaluate_captioning.ipynb": {"plot": 4, "table": 2},
    "evaluate_video.ipynb": {"plot": 3, "table": 2},
}
KERNEL = "vision2seq-test-python"


def code_cells(nb):
    return [cell for cell in nb.cells if cell.cell_type == "code"]


def tagged(nb, tag):
    return [cell for cell in code_cells(nb) if tag in cell.metadata.get("tags", [])]


@pytest.fixture
def kernel_env(tmp_path, monkeypatch):
    """A kernel spec for this interpreter (not whatever ``python3`` kernel the machine has), the inline
    matplotlib backend, one torch thread, and temporary files under ``tmp_path``."""
    spec = tmp_path / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "vision2seq tests", "language": "python"})
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel picks its inline backend
    # One intra-op thread: on a busy shared machine (CI, several test runs at once) two OpenMP threads
    # spin-waiting for each other make these small models 3-4x slower; alone it costs little.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    work = tmp_path / "tmp"
    work.mkdir()
    monkeypatch.setenv("TMPDIR", str(work))  # tempfile.mkdtemp() in the notebooks
    return tmp_path


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_notebook_is_stored_clean_with_parameters_first(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    for cell in code_cells(nb):
        assert cell.outputs == [] and cell.execution_count is None, f"{name}: saved with outputs"
    first = code_cells(nb)[0]
    assert "parameters" in first.metadata.get("tags", [])
    lines = first.source.splitlines()
    assert lines[0] == "CHECKPOINT = None  # set to a best.pt to evaluate your own model"
    assert lines[1].startswith("OVERRIDES = []")
    for tag, count in EXPECTED[name].items():
        assert len(tagged(nb, tag)) == count, f"{name}: {tag} cells"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_notebook_defines_no_logic(name):
    """Functions, classes and loops belong in the package; a notebook only calls it."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    for cell in code_cells(nb):
        tree = ast.parse(cell.source)
        for node in ast.walk(tree):
            assert not isinstance(
                node,
                ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda | ast.For | ast.While,
            ), f"{name}: {type(node).__name__} in cell:\n{cell.source}"
            if isinstance(node, ast.ImportFrom):
                assert node.module.split(".")[0] == "vision2seq", node.module
            if isinstance(node, ast.Import):
                assert all(alias.name in ("tempfile", "vision2seq") for alias in node.names)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_notebook_runs_headless(name, kernel_env):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name=KERNEL, resources={"metadata": {"path": str(kernel_env)}}
    )
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError naming the cell on any error
    elapsed = time.perf_counter() - start
    print(f"{name}: {elapsed:.1f} s")
    for cell in code_cells(nb):
        assert not [o for o in cell.outputs if o.output_type == "error"]
    # The last cell deletes the temporary folder of the generated model (data, cache, checkpoints).
    assert not list((kernel_env / "tmp").glob("vision2seq-*")), "the notebook left its temporary folder"
    for cell in tagged(nb, "plot"):
        kinds = [o.output_type for o in cell.outputs]
        assert any("image/png" in o.get("data", {}) for o in cell.outputs), f"no image from:\n{cell.source}"
        assert "execute_result" not in kinds, f"a plot cell also printed its return value:\n{cell.source}"
    for cell in tagged(nb, "table"):
        html = [o["data"]["text/html"] for o in cell.outputs if "text/html" in o.get("data", {})]
        assert html and html[0].startswith("<table>"), f"no table from:\n{cell.source}"
    # The trained demo model beats chance clearly (its scores are in the first table).
    first_table = next(o for o in tagged(nb, "table")[0].outputs if "text/plain" in o.get("data", {}))
    text = first_table["data"]["text/plain"]
    key = "bleu_4" if "captioning" in name else "top1"
    score = float(next(line.split()[1] for line in text.splitlines() if line.startswith(key + " ")))
    assert score > (0.3 if key == "bleu_4" else 0.5), text
