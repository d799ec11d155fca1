"""bench/gpu_check.sh: refuses to report figures off CUDA, checks itself with --device cpu --smoke,
and builds the REARM parity input as defined."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]


def _gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "bench" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without CUDA")
def test_without_cuda_it_refuses_and_names_the_smoke_mode(capsys, tmp_path):
    gpu_check = _gpu_check()
    assert gpu_check.main(["--out", str(tmp_path / "x.json")]) == 2
    assert "CUDA is not available" in capsys.readouterr().err
    assert gpu_check.main(["--device", "cpu", "--out", str(tmp_path / "x.json")]) == 2
    assert "use --smoke" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


@pytest.mark.slow
@pytest.mark.integration
def test_smoke_mode_runs_the_script_and_labels_its_report(shared_data, tmp_path):
    out = tmp_path / "report.json"
    done = subprocess.run(["bash", str(REPO / "bench" / "gpu_check.sh"), "--device", "cpu", "--smoke",
                           "--steps", "tests", "evaluation", "--out", str(out)],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "RECSYS_SHARED_DATA": str(shared_data)})
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    assert report["smoke"] is True and report["device"] == "cpu" and report["torch"] == torch.__version__
    assert {"commit", "date", "device_name", "cuda"} <= set(report)
    tests, evaluation = report["steps"]["tests"], report["steps"]["evaluation"]
    assert tests["status"] == "ok" and "passed" in tests["summary"]
    assert evaluation["status"] == "ok" and evaluation["dataset"] == "clothing-first2000"
    assert 0 < evaluation["best_seconds"] <= min(evaluation["all_seconds"][1:])
    assert list(report["steps"]) == ["tests", "evaluation"]


@pytest.mark.integration
def test_parity_input_keeps_popular_items_and_well_observed_users(shared_data, monkeypatch):
    gpu_check = _gpu_check()
    monkeypatch.setattr(gpu_check, "SHARED_DATA", shared_data)
    subset = gpu_check.parity_dataset(n_items=300, min_train=5, image_dim=8)
    from recsys.data.rearm import read_rearm

    full = read_rearm(shared_data / "amazon" / "sports", modalities=["text"])
    popularity = np.bincount(full.train[1], minlength=full.n_items)
    top = set(np.lexsort((np.arange(full.n_items), -popularity))[:300].tolist())
    item_index = {raw: i for i, raw in enumerate(full.item_ids)}
    source_items = np.array([item_index[raw] for raw in subset.item_ids])
    assert set(source_items.tolist()) <= top and np.all(np.diff(source_items) > 0)
    counts = {s: np.bincount(subset.split(s)[0], minlength=subset.n_users) for s in ("train", "valid", "test")}
    assert counts["train"].min() >= 5 and counts["valid"].min() >= 1 and counts["test"].min() >= 1
    np.testing.assert_array_equal(subset.features["text"], full.features["text"][source_items])
    assert subset.features["image"].shape == (subset.n_items, 8)
