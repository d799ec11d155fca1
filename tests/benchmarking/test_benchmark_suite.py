"""recsys benchmark on a tiny synthetic suite: valid-only selection, seeds, leaderboard, resume."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import torch

from recsys import runs as runs_module
from recsys.benchmark import runner
from recsys.benchmark.suite import load_suite
from recsys.compose import build
from recsys.errors import ConfigError, RunFolderError
from recsys.tuning import worker
from recsys.tuning.runner import open_study

REPO = Path(__file__).resolve().parents[2]

SUITE = """
name: tiny
seeds: 2
baseline: bpr
config:
  threads: 1
  device: cpu
  train: {epochs: EPOCHS, eval_every: 1, patience: 3, batch_size: 512, lr: 0.01}
  eval: {ks: [10, 20], metrics: [recall, ndcg]}
datasets:
  synth: {format: synthetic, synthetic: {n_users: 120, n_items: 60, interactions_per_user: 10}}
search:
  trials: 3
  sampler: {name: random, seed: 3}
  pruner: {name: none}
models:
  bpr: {}
  lightgcn:
    space:
      model.n_layers: {type: int, low: 1, high: 3}
      train.lr: {type: float, low: 1.0e-3, high: 3.0e-2, log: true}
"""


def write_suite(folder: Path, epochs: int = 2, text: str = SUITE) -> Path:
    path = folder / "tiny.yaml"
    path.write_text(text.replace("EPOCHS", str(epochs)))
    return path


class CountingTrain:
    """Stands in for recsys.runs.train/resume (and the tuning worker's train): counts calls and
    raises KeyboardInterrupt (Ctrl-C) in call number ``interrupt_at``: before it starts, or with
    ``after_first_epoch``, once its first epoch is written (last.pt and metrics.jsonl)."""

    def __init__(self, monkeypatch, interrupt_at: int | None = None, after_first_epoch: bool = False) -> None:
        self.calls: list[str] = []
        real_train, real_resume = runs_module.train, runs_module.resume

        def stop(epoch, valid):
            raise KeyboardInterrupt

        def counted(kind, real):
            def call(*args, **kwargs):
                self.calls.append(kind)
                if len(self.calls) == interrupt_at:
                    if not after_first_epoch:
                        raise KeyboardInterrupt
                    kwargs["on_evaluate"] = stop
                return real(*args, **kwargs)
            return call

        monkeypatch.setattr(runner, "train", counted("train", real_train))
        monkeypatch.setattr(runner, "resume", counted("resume", real_resume))
        monkeypatch.setattr(worker, "train", counted("trial", real_train))


def test_selection_is_the_best_valid_trial_and_every_seed_is_trained(tmp_path, monkeypatch):
    suite = load_suite(write_suite(tmp_path), output_dir=tmp_path / "out")
    counter = CountingTrain(monkeypatch)
    lines: list[str] = []
    selection = runner.run_suite(suite, report=lines.append)
    assert counter.calls == ["train", "train", "trial", "trial", "trial", "train", "train"]

    study = open_study(suite.study("synth", "lightgcn"))
    completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = max(completed, key=lambda t: t.value)
    assert all(t.value == t.user_attrs["valid"]["recall@20"] for t in completed)  # the objective is valid
    chosen = selection["synth"]["lightgcn"]
    assert chosen["trial"] == best.number and chosen["valid_at_search"] == best.value
    for seed in (0, 1):
        run_dir = suite.folder / "runs" / "synth" / "lightgcn" / f"seed-{seed}"
        config = json.loads(json.dumps(runs_module.io.load_yaml(run_dir / "config.yaml")))
        assert config["seed"] == seed and config["model"]["n_layers"] == best.params["model.n_layers"]
        assert config["train"]["lr"] == pytest.approx(best.params["train.lr"])
        assert (run_dir / "per_user_test.npz").is_file()
    assert selection["synth"]["bpr"]["chosen_by"] == "fixed"

    board = (suite.folder / "leaderboard.md").read_text()
    assert "| **bpr** (baseline) |" in board and "| lightgcn |" in board and "Paired tests" in board
    assert (suite.folder / "leaderboard.csv").read_text().count("\n") == 3
    assert (suite.folder / "leaderboard-synth.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((suite.folder / "progress.json").read_text())["runs_done"] == 4
    assert any("synth / lightgcn / seed 1: training (run 4 of 4)" in line for line in lines)


def test_an_interrupted_benchmark_resumes_without_redoing_finished_work(tmp_path, monkeypatch):
    suite = load_suite(write_suite(tmp_path), output_dir=tmp_path / "out")
    first = CountingTrain(monkeypatch, interrupt_at=4)  # bpr seeds 0 and 1, trial 0, then Ctrl-C in trial 1
    with pytest.raises(KeyboardInterrupt):
        runner.run_suite(suite, report=lambda line: None)
    assert first.calls == ["train", "train", "trial", "trial"]
    finished = {p: p.stat().st_mtime_ns for p in (suite.folder / "runs").rglob("results.json")}
    assert len(finished) == 2

    second = CountingTrain(monkeypatch, interrupt_at=3, after_first_epoch=True)  # trial 1 again, trial 2, seed 0
    with pytest.raises(KeyboardInterrupt):
        runner.run_suite(suite, report=lambda line: None)
    assert second.calls == ["trial", "trial", "train"]
    seed_0 = suite.folder / "runs" / "synth" / "lightgcn" / "seed-0"
    assert (seed_0 / "last.pt").is_file() and not (seed_0 / "results.json").exists()

    third = CountingTrain(monkeypatch)
    runner.run_suite(suite, report=lambda line: None)
    assert third.calls == ["resume", "train"]  # seed 0 continued from its last.pt, seed 1 trained
    epochs = [json.loads(line)["epoch"] for line in (seed_0 / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2]
    study = open_study(suite.study("synth", "lightgcn"))
    assert len(study.get_trials(states=worker.FINISHED)) == 3
    assert all(p.stat().st_mtime_ns == mtime for p, mtime in finished.items())
    assert len(list((suite.folder / "runs").rglob("results.json"))) == 4


def test_report_rewrites_selection_and_leaderboard_from_finished_work_without_training(tmp_path, monkeypatch):
    suite = load_suite(write_suite(tmp_path), output_dir=tmp_path / "out")
    CountingTrain(monkeypatch, interrupt_at=6)  # bpr's two seeds and lightgcn's three trials, then Ctrl-C
    with pytest.raises(KeyboardInterrupt):
        runner.run_suite(suite, report=lambda line: None)
    (suite.folder / "selection.json").write_text("{}")  # e.g. overwritten by another process
    quiet = CountingTrain(monkeypatch)
    selection = runner.report_suite(suite, report=lambda line: None)
    assert quiet.calls == [], "a report trains nothing"
    best = open_study(suite.study("synth", "lightgcn")).best_trial
    assert selection["synth"]["lightgcn"]["trial"] == best.number and selection["synth"]["bpr"]["chosen_by"] == "fixed"
    assert json.loads((suite.folder / "selection.json").read_text()) == selection
    board = (suite.folder / "leaderboard.md").read_text()
    assert "| **bpr** (baseline) | `" in board and "| lightgcn | `" not in board, "only finished seed runs are listed"
    assert "| lightgcn | search: best of 3 trials" in board, "its choice is reported"

    larger = load_suite(write_suite(tmp_path), output_dir=tmp_path / "out", trials=5)
    lines: list[str] = []
    assert "lightgcn" not in runner.report_suite(larger, report=lines.append)["synth"]
    assert quiet.calls == [] and any("search not finished, left out" in line for line in lines)

@pytest.mark.slow
def test_a_killed_benchmark_process_resumes_and_counts_its_runs(tmp_path):
    suite_file = write_suite(tmp_path, epochs=6, text=SUITE.replace("  lightgcn:\n    space:\n      model.n_layers: "
                                                                     "{type: int, low: 1, high: 3}\n      train.lr: "
                                                                     "{type: float, low: 1.0e-3, high: 3.0e-2, log: "
                                                                     "true}\n", "  lightgcn: {}\n"))
    command = [sys.executable, "-m", "recsys", "benchmark", str(suite_file), "--output-dir", str(tmp_path / "out")]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    runs_dir = tmp_path / "out" / "tiny" / "runs"
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    deadline = time.time() + 120
    while not list(runs_dir.rglob("results.json")) and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = {p: p.read_bytes() for p in runs_dir.rglob("results.json")}
    assert 1 <= len(finished) < 4
    rerun = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    started = rerun.count(": training (run") + rerun.count(": continuing the interrupted run")
    assert started == 4 - len(finished)
    assert all(p.read_bytes() == content for p, content in finished.items())
    assert len(list(runs_dir.rglob("results.json"))) == 4 and "runs 4/4" in rerun


def test_a_finished_run_of_another_config_is_not_mixed_in(tmp_path):
    suite = load_suite(write_suite(tmp_path), tmp_path / "out")
    progress = runner.Progress(suite, lambda line: None)
    runner.train_seed(suite, suite.fixed_config("synth", "bpr"), "synth", "bpr", 0, progress)
    assert progress.runs_done == 1
    changed = load_suite(write_suite(tmp_path, text=SUITE.replace("  bpr: {}", "  bpr: {config: {model: "
                                                                                "{reg_weight: 0.5}}}")), tmp_path / "out")
    with pytest.raises(RunFolderError, match="another configuration"):
        runner.train_seed(changed, changed.fixed_config("synth", "bpr"), "synth", "bpr", 0,
                          runner.Progress(changed, lambda line: None))


@pytest.mark.parametrize("change, message", [
    ("  bpr: {}", "  bpr: {trials: 50}"),
    ("baseline: bpr", "baseline: vbpr"),
    ("seeds: 2", "seeds: [1, 1]"),
    ("  bpr: {}", "  bpr-fast: {}"),
    ("  bpr: {}", "  bpr: {config: {model: {n_layerz: 2}}}"),
])
def test_suite_errors_name_the_file_and_the_fix(tmp_path, change, message):
    text = SUITE.replace(change, message)
    expected = {"  bpr: {trials: 50}": "cannot be set per model", "baseline: vbpr": "is not one of the models",
                "seeds: [1, 1]": "list of distinct", "  bpr-fast: {}": "set config.model.name",
                "  bpr: {config: {model: {n_layerz: 2}}}": "unknown config key 'model.n_layerz'"}[message]
    with pytest.raises(ConfigError, match=expected) as error:
        load_suite(write_suite(tmp_path, text=text))
    assert "tiny.yaml" in str(error.value)


def test_the_suite_budget_wins_over_model_files_and_inline_model_config_wins_over_both(tmp_path):
    model_file = tmp_path / "model.yaml"
    model_file.write_text("model: {name: lightgcn, n_layers: 4}\ntrain: {lr: 1.0e-4, epochs: 900, optimizer: adamw}\n")
    text = SUITE.replace("  bpr: {}", f"  bpr: {{}}\n  deep: {{base_config: {model_file}, config: {{model: "
                                       "{n_layers: 2}, train: {patience: 7}}}")
    suite = load_suite(write_suite(tmp_path, text=text), tmp_path / "out")
    config = suite.fixed_config("synth", "deep")
    assert config["train"]["lr"] == 0.01 and config["train"]["epochs"] == 2  # the suite's budget
    assert config["train"]["optimizer"] == "adamw"  # the model file where the suite is silent
    assert config["model"]["n_layers"] == 2 and config["train"]["patience"] == 7  # the model's inline config
    assert config["train"]["monitor"] == "recall@20"


@pytest.mark.parametrize("name", ["sports", "toys"])
def test_shipped_suites_are_valid_and_give_every_model_the_same_budget(name):
    suite = load_suite(REPO / "configs" / "benchmarks" / f"{name}.yaml")
    assert suite.baseline == "lightgcn" and len(suite.seeds) == 3
    assert set(suite.models) == {"bpr", "lightgcn", "vbpr", "freedom", "siger", "rearm"}
    budgets = set()
    for dataset, model in suite.pairs():
        spec = suite.study(dataset, model)
        config = spec.trial_config(spec.space.decode({}))
        budgets.add((spec.trials, json.dumps(spec.pruner), config["train"]["epochs"], config["train"]["batch_size"],
                     config["train"]["lr"], config["train"]["eval_every"], config["train"]["patience"]))
        assert config["dataset"]["path"].endswith(f"amazon/{name}")
    assert len(budgets) == 1
    assert load_suite(REPO / "configs" / "benchmarks" / f"{name}.yaml").study(name, "rearm").base["model"][
        "train_user_interest"] is True


@pytest.mark.parametrize("name", ["sports", "toys"])
def test_every_model_of_a_shipped_suite_builds_on_its_modalities(name, planted, tmp_path):
    """Each model's resolved config (search space at its first values) is accepted by the model on
    a dataset with the suite's modalities (text alone): a merged config the model rejects, like
    modality weights for a modality the dataset lacks, fails here and not in the benchmark."""
    suite = load_suite(REPO / "configs" / "benchmarks" / f"{name}.yaml")
    assert set(planted.features) == set(suite.datasets[name]["modalities"])
    for dataset, model in suite.pairs():
        spec = suite.study(dataset, model)
        config = spec.trial_config(spec.space.decode({}))
        config["cache_dir"] = str(tmp_path / "cache")
        built = build(config, torch.device("cpu"), planted)
        assert built.model.n_items == planted.n_items, model

def test_sports_defaults_suite_trains_every_model_at_its_defaults_under_the_sports_budget(planted, tmp_path):
    full = load_suite(REPO / "configs" / "benchmarks" / "sports.yaml")
    suite = load_suite(REPO / "configs" / "benchmarks" / "sports_defaults.yaml")
    assert set(suite.models) == {"lightgcn", "freedom", "siger", "rearm"} and not any(
        m.space for m in suite.models.values())
    assert suite.datasets["sports"] == full.datasets["sports"] and suite.baseline == "lightgcn"
    for dataset, model in suite.pairs():
        config = suite.fixed_config(dataset, model)
        spec = full.study(dataset, model)
        searched = spec.trial_config(spec.space.decode({}))
        budget = ("epochs", "batch_size", "lr", "eval_every", "patience", "optimizer")
        assert [config["train"][k] for k in budget] == [searched["train"][k] for k in budget], model
        config["cache_dir"] = str(tmp_path / "cache")
        assert build(config, torch.device("cpu"), planted).model.n_items == planted.n_items, model


def test_command_line_overrides_make_a_quick_check_of_a_suite(tmp_path):
    suite = load_suite(write_suite(tmp_path), tmp_path / "out", trials=1, seeds=1,
                       overrides={"train": {"epochs": 1}, "threads": 2})
    assert suite.search["trials"] == 1 and suite.seeds == [0]
    assert suite.fixed_config("synth", "bpr")["train"]["epochs"] == 1
    spec = suite.study("synth", "lightgcn")
    assert spec.trials == 1 and spec.trial_config({})["threads"] == 2
