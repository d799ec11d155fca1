"""Storage choice and recovery of trials left RUNNING by dead workers (no training)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import warnings

import optuna
import pytest
from optuna.trial import TrialState

from recsys.errors import ConfigError
from recsys.tuning.storage import WORKER_ATTR, fail_orphaned_trials, open_storage, storage_url, worker_identity


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_storage_urls(tmp_path):
    assert storage_url(None, tmp_path) == f"sqlite:///{tmp_path.resolve()}/study.db"
    assert storage_url("journal", tmp_path) == f"journal:{tmp_path.resolve()}/journal.log"
    assert storage_url("postgresql://u@h/db", tmp_path) == "postgresql://u@h/db"
    with pytest.raises(ConfigError, match="SQLAlchemy URL"):
        storage_url("study.db", tmp_path)


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_trials_of_dead_local_workers_are_failed_and_retried_with_the_same_parameters(tmp_path, kind):
    url = storage_url(None if kind == "sqlite" else "journal", tmp_path)
    study = optuna.create_study(storage=open_storage(url, 60), study_name="s", direction="maximize")
    tags = {
        "dead": f"{socket.gethostname()}:{_dead_pid()}:",
        "recycled": f"{socket.gethostname()}:{os.getpid()}:1",  # our pid, another start time
        "alive": worker_identity(),
        "elsewhere": "another-host:1:1",
    }
    numbers, xs = {}, {}
    for name, tag in tags.items():
        trial = study.ask()
        xs[name] = trial.suggest_float("x", 0.0, 1.0)
        trial.set_user_attr(WORKER_ATTR, tag)
        numbers[name] = trial.number

    failed = fail_orphaned_trials(study)

    assert sorted(failed) == sorted([numbers["dead"], numbers["recycled"]])
    states = {name: study.trials[n].state for name, n in numbers.items()}
    assert states == {"dead": TrialState.FAIL, "recycled": TrialState.FAIL,
                      "alive": TrialState.RUNNING, "elsewhere": TrialState.RUNNING}
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert sorted(t.system_attrs["failed_trial"] for t in waiting) == sorted(failed)
    retry = study.ask()  # a worker picks up a queued retry first, with the original parameters
    retried = study.trials[retry.number].system_attrs["failed_trial"]
    original = next(name for name, n in numbers.items() if n == retried)
    assert retry.suggest_float("x", 0.0, 1.0) == xs[original]
    assert WORKER_ATTR not in study.trials[retry.number].user_attrs
    assert fail_orphaned_trials(study) == []


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_rdb_heartbeat_fails_silent_trials_and_queues_a_retry(tmp_path):
    storage = open_storage(storage_url(None, tmp_path), heartbeat_interval=1)
    study = optuna.create_study(storage=storage, study_name="s", direction="maximize")
    trial = study.ask()
    x = trial.suggest_float("x", 0.0, 1.0)
    storage.record_heartbeat(trial._trial_id)
    time.sleep(3.1)  # grace period: two heartbeat intervals (SQLite clock: whole seconds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optuna.storages.fail_stale_trials(study)
    assert study.trials[trial.number].state == TrialState.FAIL
    retry = study.ask()
    assert study.trials[retry.number].system_attrs["failed_trial"] == trial.number
    assert retry.suggest_float("x", 0.0, 1.0) == x
