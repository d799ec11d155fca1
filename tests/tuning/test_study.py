"""Whole studies on a tiny synthetic dataset: search, pruning, workers, kill -9 and resume."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
import torch
import yaml
from optuna.trial import TrialState

from recsys.cli import main
from recsys.compose import resolve
from recsys.errors import ConfigError
from recsys.io import load_yaml
from recsys.runs import train
from recsys.tuning.runner import open_study, run_study
from recsys.tuning.spec import load_spec
from recsys.tuning.storage import WORKER_ATTR, open_storage, storage_url

REPO = Path(__file__).resolve().parents[2]
GOOD_LR, BAD_LR = 0.05, 1e-7  # BAD_LR leaves the embeddings at their random start


def _study_file(tmp_path: Path, *, epochs: int = 4, n_users: int = 150, **fields) -> Path:
    data = {
        "output_dir": str(tmp_path / "studies"),
        "config": {
            "dataset": {"format": "synthetic",
                        "synthetic": {"n_users": n_users, "n_items": 80, "interactions_per_user": 12,
                                      "noise_dim": 4, "informative_dim": 4}},
            "model": {"name": "lightgcn", "embedding_size": 16, "n_layers": 1},
            "train": {"lr": GOOD_LR, "batch_size": 256, "epochs": epochs, "patience": 10},
            "eval": {"ks": [20], "metrics": ["recall", "ndcg"], "batch_size": 512},
        },
        "space": {"train.lr": {"type": "categorical", "choices": [BAD_LR, GOOD_LR]}},
        "sampler": {"name": "tpe", "seed": 0},
        "pruner": {"name": "none"},
        "trials": 4,
        **fields,
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These graphs are tiny: one thread is several times faster than two on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _study(spec) -> optuna.Study:
    storage = open_storage(storage_url(spec.storage, spec.study_dir), spec.heartbeat_interval)
    return optuna.load_study(study_name=spec.name, storage=storage)


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """A 4-trial TPE study over a learning rate that trains and one that cannot, via the CLI."""
    tmp_path = tmp_path_factory.mktemp("search")
    path = _study_file(tmp_path)
    assert main(["tune", "--config", str(path)]) == 0
    return load_spec(path), tmp_path


def test_study_finds_the_better_setting(searched):
    spec, _ = searched
    study = _study(spec)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 4
    by_lr = {lr: [t.value for t in complete if t.params["train.lr"] == lr] for lr in (BAD_LR, GOOD_LR)}
    assert by_lr[BAD_LR] and by_lr[GOOD_LR], "the sampler should have tried both settings"
    assert min(by_lr[GOOD_LR]) > 1.5 * max(by_lr[BAD_LR])
    assert study.best_trial.params["train.lr"] == GOOD_LR
    assert study.best_value == max(t.value for t in complete)
    # every evaluation epoch was reported to the study
    assert all(sorted(t.intermediate_values) == [1, 2, 3, 4] for t in complete)


def test_outputs_describe_every_trial(searched):
    spec, _ = searched
    frame = pd.read_csv(spec.study_dir / "trials.csv")
    study = _study(spec)
    assert list(frame["number"]) == [t.number for t in study.trials]
    assert list(frame["value"]) == pytest.approx([t.value for t in study.trials])
    assert {"param:train.lr", "valid:recall@20", "test:recall@20"} <= set(frame.columns)
    summary = yaml.safe_load((spec.study_dir / "summary.json").read_text())
    assert summary["complete"] == 4 and summary["best"]["params"] == {"train.lr": GOOD_LR}
    for name in ("optimization_history", "param_importances", "parallel_coordinate"):
        assert (spec.study_dir / f"{name}.png").stat().st_size > 1000


def test_best_yaml_trains_as_is_and_reproduces_the_best_trial(searched, monkeypatch):
    spec, tmp_path = searched
    monkeypatch.chdir(tmp_path)
    config = resolve(load_yaml(spec.study_dir / "best.yaml"))
    assert config["train"]["lr"] == GOOD_LR and config["output_dir"] == "runs"
    results = train(config)
    best = _study(spec).best_trial
    assert results["valid"]["recall@20"] == pytest.approx(best.value, abs=1e-9)
    assert results["test"] == pytest.approx(best.user_attrs["test"], abs=1e-9)


def test_resuming_with_another_search_space_is_refused(searched, tmp_path):
    spec, _ = searched
    path = _study_file(tmp_path, output_dir=str(spec.study_dir.parent), name=spec.name,
                       space={"train.lr": {"type": "categorical", "choices": [GOOD_LR]}})
    with pytest.raises(ConfigError, match="different search space"):
        open_study(load_spec(path))


def test_median_pruner_stops_trials_that_fall_behind(tmp_path):
    path = _study_file(tmp_path, epochs=6, trials=6, sampler={"name": "random", "seed": 0}, storage="journal",
                       pruner={"name": "median", "n_startup_trials": 1, "n_warmup_steps": 1})
    spec = load_spec(path)
    run_study(spec)
    trials = _study(spec).trials
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    assert len(trials) == 6 and pruned
    for trial in pruned:
        assert trial.params["train.lr"] == BAD_LR
        assert trial.last_step < 6  # stopped before the last epoch
        lines = (spec.study_dir / "trials" / f"{trial.number:04d}" / "metrics.jsonl").read_text().splitlines()
        assert len(lines) == trial.last_step


def test_two_workers_share_one_journal_storage(tmp_path):
    path = _study_file(tmp_path, epochs=3, trials=6, storage="journal", workers=2,
                       sampler={"name": "random", "seed": 0})
    result = run_study(load_spec(path))
    trials = _study(load_spec(path)).trials
    assert result["complete"] == 6 and len(trials) == 6  # exactly the requested total, no overshoot
    assert sorted(t.number for t in trials) == list(range(6))
    assert len({t.user_attrs[WORKER_ATTR] for t in trials}) == 2  # both workers ran trials


def test_kill_minus_nine_then_rerun_completes_the_requested_trials(tmp_path):
    path = _study_file(tmp_path, epochs=30, n_users=300, trials=2, sampler={"name": "random", "seed": 1})
    command = [sys.executable, "-m", "recsys", "tune", "--config", str(path)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    spec = load_spec(path)
    victim = spec.study_dir / "trials" / "0001" / "metrics.jsonl"
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not (victim.exists() and victim.read_text().count("\n") >= 1):
            assert process.poll() is None and time.time() < deadline, "trial 1 never started training"
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    finally:
        if process.poll() is None:
            process.kill()
    assert _study(spec).trials[1].state == TrialState.RUNNING  # left behind by the killed process

    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    trials = _study(spec).trials
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 2
    assert trials[1].state == TrialState.FAIL
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == 1]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].params == trials[1].params


def test_trials_share_the_graph_cache(searched):
    """The user-item graph is built by the first trial and only read by the later ones."""
    spec, _ = searched
    entries = list((spec.study_dir / "cache").rglob("user_item-*.pt"))
    assert len(entries) == 1
    second_start = _study(spec).trials[1].datetime_start.timestamp()
    assert entries[0].stat().st_mtime < second_start


def _fake_train(error):
    def fake(config, run_dir=None, on_evaluate=None, **_):
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        (Path(run_dir) / "last.pt").write_bytes(b"checkpoint")
        raise error
    return fake


def test_diverging_trials_fail_and_a_hopeless_study_stops(tmp_path, monkeypatch):
    from recsys.errors import NonFiniteLossError
    from recsys.tuning import worker

    monkeypatch.setattr(worker, "train", _fake_train(NonFiniteLossError("loss is nan")))
    spec = load_spec(_study_file(tmp_path, storage="journal", trials=2))
    open_study(spec)
    with pytest.raises(worker.StudyExhaustedError, match="narrow the search space"):
        worker.run_worker(spec)
    trials = _study(spec).trials
    assert len(trials) == 4 and all(t.state == TrialState.FAIL for t in trials)
    assert not list((spec.study_dir / "trials").rglob("*.pt"))  # checkpoints of failed trials are removed


def test_ctrl_c_queues_the_interrupted_trial_again(tmp_path, monkeypatch):
    from recsys.tuning import worker

    monkeypatch.setattr(worker, "train", _fake_train(KeyboardInterrupt()))
    spec = load_spec(_study_file(tmp_path, storage="journal"))
    open_study(spec)
    with pytest.raises(KeyboardInterrupt):
        worker.run_worker(spec)
    first, retry = _study(spec).trials
    assert first.state == TrialState.FAIL and retry.state == TrialState.WAITING
    assert retry.params == first.params and retry.system_attrs["failed_trial"] == first.number


def test_no_trial_starts_after_the_timeout(tmp_path):
    spec = load_spec(_study_file(tmp_path, storage="journal"), timeout=0)
    result = run_study(spec)
    assert result["trials"] == 0 and "best" not in result
    assert not (spec.study_dir / "best.yaml").exists() and (spec.study_dir / "trials.csv").exists()
