"""Create or resume a study, run its workers, write its outputs.

Re-running the same command continues a study where it stopped: finished trials are kept,
trials left RUNNING by a killed process are failed and run again with the same parameters,
and workers stop when ``trials`` finished (complete + pruned) trials exist.
"""
from __future__ import annotations

import logging
import multiprocessing
import signal
import time
from typing import Any

import optuna

from recsys.errors import ConfigError, RecsysError
from recsys.tuning.outputs import write_outputs
from recsys.tuning.spec import StudySpec
from recsys.tuning.storage import open_storage, storage_url
from recsys.tuning.worker import run_worker, run_worker_process

log = logging.getLogger("recsys.tune")

SIGNATURE_ATTR = "recsys_signature"


def open_study(spec: StudySpec) -> optuna.Study:
    """Create the study, or load it and check it was made from the same space, objective and base."""
    spec.study_dir.mkdir(parents=True, exist_ok=True)
    storage = open_storage(storage_url(spec.storage, spec.study_dir), spec.heartbeat_interval)
    study = optuna.create_study(storage=storage, study_name=spec.name, direction="maximize", load_if_exists=True)
    signature = spec.signature()
    stored = study.user_attrs.get(SIGNATURE_ATTR)
    if stored is None:
        study.set_user_attr(SIGNATURE_ATTR, signature)
    elif stored != signature:
        raise ConfigError(f"study '{spec.name}' in {spec.study_dir} was started with a different search space, "
                          "objective or base config; resume it with the original study file, or choose a new "
                          "name with --study NAME")
    return study


def run_study(spec: StudySpec) -> dict[str, Any]:
    """Run ``spec.workers`` workers on the study until it holds ``spec.trials`` finished trials."""
    study = open_study(spec)
    deadline = None if spec.timeout is None else time.time() + spec.timeout
    if spec.workers == 1:
        run_worker(spec, 0, 1, deadline)
    else:
        context = multiprocessing.get_context("spawn")
        processes = [context.Process(target=run_worker_process, args=(spec, index, spec.workers, deadline),
                                     name=f"recsys-tune-{index}") for index in range(spec.workers)]
        for process in processes:
            process.start()

        def stop_workers(signum, frame):
            for process in processes:
                process.terminate()  # their running trials are failed and retried on resume
            raise SystemExit(128 + signum)

        previous = signal.signal(signal.SIGTERM, stop_workers)
        try:
            for process in processes:
                process.join()
        finally:
            signal.signal(signal.SIGTERM, previous)
        bad = {p.name: p.exitcode for p in processes if p.exitcode != 0}
        if bad:
            raise RecsysError(f"tuning workers exited with errors {bad}; see their log above. Re-running the same "
                               "command resumes the study")
    return write_outputs(spec, study)
