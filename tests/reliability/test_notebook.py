"""The quickstart notebook runs top to bottom, so it never rots."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

NEEDS = "the notebook test needs the dev extra (nbformat, nbclient, ipykernel)"
nbformat = pytest.importorskip("nbformat", reason=NEEDS)
nbclient = pytest.importorskip("nbclient", reason=NEEDS)

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "quickstart.ipynb"


def test_quickstart_notebook_executes(tmp_path):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), \
        "commit the notebook without outputs"
    client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    start = time.perf_counter()
    client.execute()
    elapsed = time.perf_counter() - start
    outputs = [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    assert sum("image/png" in out.get("data", {}) for out in outputs) >= 2, "the training curves are shown"
    work = tmp_path / "quickstart_runs"
    assert (work / "lightgcn" / "results.json").is_file() and (work / "lightgcn" / "loss.png").is_file()
    assert len((work / "top20.csv").read_text().splitlines()) == 1 + 400 * 20
    study = {p.name for p in (work / "studies" / "quickstart").iterdir()}
    assert {"best.yaml", "trials.csv", "optimization_history.png"} <= study
    assert elapsed < 180, f"the quickstart took {elapsed:.0f} s; keep it under a minute on a quiet machine"
