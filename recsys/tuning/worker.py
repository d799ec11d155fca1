"""One worker process: start trials until the study holds the requested number of finished ones.

A trial samples its parameters, trains with :func:`recsys.training.train` and reports the
best valid objective so far after every evaluation, so the pruner can stop it early
(``optuna.TrialPruned``). Its value is the objective at its best-valid epoch. All trials of a
study share one graph cache (``<study folder>/cache`` unless the spec names another; keyed by
dataset fingerprint and graph parameters), so graphs that do not depend on the trial's
parameters are built once.
Trials that diverge (:class:`~recsys.training.NonFiniteLossError`) are recorded as FAIL.
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import optuna
import torch
from optuna.trial import TrialState

from recsys.errors import NonFiniteLossError, RecsysError
from recsys.runs import train
from recsys.tuning.spec import StudySpec
from recsys.tuning.storage import (
    WORKER_ATTR,
    AdmissionLock,
    fail_orphaned_trials,
    open_storage,
    retry_failed_trial,
    storage_url,
    worker_identity,
)

log = logging.getLogger("recsys.tune")

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
POLL_SECONDS = 2.0


class StudyExhaustedError(RecsysError, RuntimeError):
    """Too many trials failed in a row for the study to make progress."""


def trial_dir(spec: StudySpec, number: int) -> Path:
    return spec.study_dir / "trials" / f"{number:04d}"


class Objective:
    """Train one trial; ``gate`` is released as soon as the trial is tagged with this worker."""

    def __init__(self, spec: StudySpec, gate: AdmissionLock) -> None:
        self.spec = spec
        self.gate = gate
        self.identity = worker_identity()
        self.last_number: int | None = None

    def __call__(self, trial: optuna.Trial) -> float:
        trial.set_user_attr(WORKER_ATTR, self.identity)
        self.gate.release()
        self.last_number = trial.number
        spec, metric = self.spec, self.spec.metric
        config = spec.trial_config(spec.space.suggest(trial))
        run_dir = trial_dir(spec, trial.number)
        config.update(output_dir=str(run_dir.parent), run_name=run_dir.name,
                      cache_dir=str(spec.graph_cache))
        config["train"]["progress"] = False
        best = -float("inf")

        def report(epoch: int, valid: dict[str, float]) -> None:
            nonlocal best
            best = max(best, valid[metric])
            trial.report(best, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {epoch} with best valid {metric} {best:.5f}")

        try:
            results = train(config, run_dir=run_dir, on_evaluate=report)
        finally:
            for checkpoint in run_dir.glob("*.pt"):
                checkpoint.unlink()
        for key in ("valid", "test"):
            trial.set_user_attr(key, results[key])
        trial.set_user_attr("best_epoch", results["best_epoch"])
        trial.set_user_attr("epochs_run", results["epochs_run"])
        return results["valid"][metric]


def _counts(study: optuna.Study) -> tuple[int, int]:
    trials = study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING))
    finished = sum(t.state in FINISHED for t in trials)
    return finished, len(trials) - finished


def run_worker(spec: StudySpec, worker_index: int = 0, n_workers: int = 1, deadline: float | None = None) -> int:
    """Run trials until ``spec.trials`` are finished (or ``deadline``); returns trials run here.

    Ctrl-C fails the running trial (Optuna) and queues it again, so re-running resumes it.

    Deciding to start a trial and creating it happen under the study folder's admission lock,
    counting RUNNING trials of the other workers, so the study never overshoots ``spec.trials``
    on one machine; a worker waits while the remaining trials are running elsewhere (they may
    still fail and need to be run again).
    """
    if n_workers > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // n_workers))
    storage = open_storage(storage_url(spec.storage, spec.study_dir), spec.heartbeat_interval)
    probe = optuna.load_study(study_name=spec.name, storage=storage)
    seed_offset = len(probe.get_trials(deepcopy=False)) * n_workers + worker_index
    study = optuna.load_study(study_name=spec.name, storage=storage, sampler=spec.make_sampler(seed_offset),
                              pruner=spec.make_pruner())
    gate = AdmissionLock(spec.study_dir / ".admission.lock")
    objective = Objective(spec, gate)
    ran = failures = 0
    while deadline is None or time.time() < deadline:
        objective.last_number = None
        gate.acquire()
        try:
            failed = fail_orphaned_trials(study)
            if failed:
                log.warning("trials %s of dead workers marked failed and queued again", failed)
            finished, running = _counts(study)
            if finished >= spec.trials:
                break
            if finished + running >= spec.trials:
                gate.release()
                time.sleep(POLL_SECONDS)
                continue
            study.optimize(objective, n_trials=1, catch=(NonFiniteLossError,))
        except KeyboardInterrupt:
            if objective.last_number is not None:  # Optuna failed the interrupted trial: queue it again
                retry_failed_trial(study, study.get_trials(deepcopy=False)[objective.last_number])
            raise
        finally:
            gate.release()
        ran += 1
        if objective.last_number is not None and \
                study.get_trials(deepcopy=False)[objective.last_number].state == TrialState.FAIL:
            failures += 1
            if failures > max(3, spec.trials):
                raise StudyExhaustedError(f"{failures} trials failed in this worker (diverging losses); narrow the "
                                          f"search space of {spec.name} (e.g. lower train.lr)")
    return ran


def run_worker_process(spec: StudySpec, worker_index: int, n_workers: int, deadline: float | None) -> None:
    """Entry point of a spawned worker process (logs to stderr, tagged with the worker index)."""
    logging.basicConfig(level=logging.INFO, format=f"[worker {worker_index}] %(levelname)s %(name)s: %(message)s")
    run_worker(spec, worker_index, n_workers, deadline)
