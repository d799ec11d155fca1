"""A run folder works from any working directory: trained with a relative dataset path in one
folder, it is exported and evaluated from another; a moved dataset is found with --data."""
from __future__ import annotations

import json

import pandas as pd

from recsys import cli
from recsys.data.loading import write_dataset
from recsys.data.synthetic import generate


def _train_from(workdir, monkeypatch) -> str:
    """Train BPR-MF in ``workdir`` on ``data/toy`` (a relative path); the run folder's path."""
    write_dataset(generate(n_users=60, n_items=40, n_clusters=2, interactions_per_user=6, seed=1),
                  workdir / "data" / "toy", "rearm")
    monkeypatch.chdir(workdir)
    assert cli.main(["train", "--set", "dataset.format=rearm", "dataset.path=data/toy", "model.name=bpr",
                     "run_name=toy", "train.epochs=2", "train.progress=false", "cache_dir=cache"]) == 0
    return str(workdir / "runs" / "toy")


def test_export_and_evaluate_from_another_folder_and_with_moved_data(tmp_path, monkeypatch, capsys):
    trained_in, elsewhere = tmp_path / "repo", tmp_path / "elsewhere"
    trained_in.mkdir()
    elsewhere.mkdir()
    run = _train_from(trained_in, monkeypatch)
    info = json.loads((trained_in / "runs" / "toy" / "run_info.json").read_text())
    assert info["dataset_path"] == str((trained_in / "data" / "toy").resolve())
    assert info["cwd"] == str(trained_in.resolve())

    monkeypatch.chdir(elsewhere)
    assert cli.main(["export", run, "--k", "5", "--format", "csv", "--out", "top.csv", "--no-progress"]) == 0
    rows = pd.read_csv(elsewhere / "top.csv")
    assert len(rows) == 60 * 5
    assert not (elsewhere / ".cache").exists() and not (elsewhere / "cache").exists(), "the run's own cache is used"
    capsys.readouterr()
    assert cli.main(["evaluate", run, "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    results = json.loads((trained_in / "runs" / "toy" / "results.json").read_text())
    assert evaluated["test"]["recall@20"] == results["test"]["recall@20"]

    moved = tmp_path / "moved"
    (trained_in / "data" / "toy").rename(moved)
    assert cli.main(["export", run, "--out", "again.csv", "--format", "csv", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "was read from" in err and "does not exist" in err and "--data PATH" in err
    assert cli.main(["export", run, "--out", "again.csv", "--format", "csv", "--no-progress", "--k", "5",
                     "--data", str(moved)]) == 0
    assert pd.read_csv(elsewhere / "again.csv").equals(rows)
    capsys.readouterr()
    assert cli.main(["evaluate", run, "--json", "--data", str(moved)]) == 0
    assert json.loads(capsys.readouterr().out) == evaluated
