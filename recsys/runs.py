"""Training runs end to end: config → :func:`recsys.compose.build` → trainer → run folder.

Run folder layout: ``config.yaml`` (resolved config, seed included), ``metrics.jsonl``
(one line per epoch), ``best.pt`` (best-valid model), ``last.pt`` (resume state),
``results.json`` (best epoch, valid and test metrics at the best-valid epoch, timings, and
where and when it ran: :func:`recsys.provenance.environment`), ``per_user_test.npz`` (the
test metrics of every evaluated user at the best-valid epoch: ``users`` and one float32
array per metric, read with :func:`read_per_user`), ``train.log`` and ``run_info.json``: the
absolute dataset folder and graph cache the config's paths (often relative, e.g.
``../shared/data/amazon/clothing``) pointed to when the run was trained, so that the run
folder can be resumed, evaluated and exported from any working directory (or with its dataset
elsewhere: ``data=``, ``--data PATH``).
"""
from __future__ import annotations

import json
import logging
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from recsys import io
from recsys.compose import build, resolve, resolve_device
from recsys.errors import RunFolderError
from recsys.evaluation import PerUserMetrics
from recsys.provenance import environment
from recsys.serving import TrainedRun
from recsys.training import Trainer, distributed
from recsys.training.host_memory import fix_mmap_threshold
from recsys.validation import validate_config

log = logging.getLogger("recsys.train")

RUN_INFO = "run_info.json"
PER_USER_FILE = "per_user_test.npz"


def _run_dir(config: dict) -> Path:
    name = config["run_name"]
    if not name:
        dataset = config["dataset"]["name"] or Path(str(config["dataset"]["path"] or config["dataset"]["format"])).name
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{config['model']['name']}-{dataset}-{stamp}")
    return Path(config["output_dir"]) / name


def _attach_log_file(run_dir: Path) -> logging.Handler:
    handler = logging.FileHandler(run_dir / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("recsys").addHandler(handler)
    logging.getLogger("recsys").setLevel(logging.INFO)
    return handler


def train(config: dict, run_dir: str | Path | None = None, resume: bool = False,
          on_evaluate: Callable[[int, dict[str, float]], None] | None = None, dataset=None) -> dict:
    """Train per ``config`` (already resolved); returns the results written to results.json.

    ``on_evaluate(epoch, valid_metrics)`` is passed to the :class:`Trainer` (tuning hooks);
    ``dataset`` replaces loading the one the config names (tests, notebooks). Under torchrun
    every rank calls this; rank 0 owns the run folder and the final evaluation. The config's
    values are checked again first (a caller may have changed it since it was resolved).
    """
    validate_config(config)
    fix_mmap_threshold()
    device = resolve_device(config["device"])
    if config["threads"]:
        torch.set_num_threads(int(config["threads"]))
    if distributed.launched_by_torchrun():
        distributed.init(device)
        device = distributed.local_device(device)
    run_dir = Path(distributed.broadcast(str(run_dir) if run_dir is not None else str(_run_dir(config))))
    main_rank = distributed.is_main()
    if main_rank:
        run_dir.mkdir(parents=True, exist_ok=True)
        handler = _attach_log_file(run_dir)
        if not resume:
            io.write_text(run_dir / "config.yaml", io.dump_yaml(config))
            io.write_json(run_dir / RUN_INFO, _run_info(config))
    distributed.barrier()
    try:
        started = time.perf_counter()
        run = build(config, device, dataset)
        trainer = Trainer(run.model, run.task, config["train"], run_dir, on_evaluate=on_evaluate)
        if resume:
            trainer.resume()
        state = trainer.fit()
        trainer.release()
        results = _final_results(config, run_dir, device, run, state, started) if main_rank else None
        return distributed.broadcast(results)
    finally:
        if main_rank:
            logging.getLogger("recsys").removeHandler(handler)
            handler.close()


def _final_results(config, run_dir: Path, device, run, state: dict, started: float) -> dict:
    """Reload the best checkpoint, evaluate valid and test, write results.json and the
    per-user test metrics (the test means are those of the per-user values: one pass)."""
    load_best_weights(run.model, run_dir, device)
    eval_start = time.perf_counter()
    valid = run.task.evaluate(run.model, "valid")
    test_per_user = run.task.evaluate_per_user(run.model, "test")
    test = test_per_user.means()
    eval_seconds = (time.perf_counter() - eval_start) / 2
    write_per_user(run_dir / PER_USER_FILE, test_per_user)
    epochs = epoch_records(run_dir, state["epoch"])
    results = {
        "model": config["model"]["name"],
        "dataset": run.dataset.name,
        "seed": config["seed"],
        "best_epoch": state["best_epoch"],
        "epochs_run": state["epoch"],
        "valid": valid,
        "test": test,
        "eval_seconds": eval_seconds,
        "train_seconds": sum(e["train_seconds"] for e in epochs),
        "train_cpu_seconds": sum(e.get("train_cpu_seconds", 0.0) for e in epochs),
        "total_seconds": time.perf_counter() - started,
        "device": str(device),
        "world_size": distributed.world_size(),
        "run_dir": str(run_dir),
        "environment": environment(),
    }
    io.write_json(run_dir / "results.json", results)
    return results


def load_best_weights(model, run_dir: Path, device) -> None:
    """Copy ``best.pt``'s weights into ``model``; the checkpoint's own copy of them is freed on
    return, before anything else allocates (an evaluation that kept it would hold the model twice)."""
    model.load_state_dict(torch.load(run_dir / "best.pt", map_location=device, weights_only=False)["model"])


def epoch_records(run_dir: Path, last_epoch: int) -> list[dict]:
    """The metrics.jsonl records of epochs 1..``last_epoch`` (a resumed run's earlier epochs included)."""
    path = run_dir / "metrics.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [record for record in map(json.loads, filter(str.strip, lines)) if record["epoch"] <= last_epoch]


def write_per_user(path: str | Path, metrics: PerUserMetrics) -> None:
    """Save per-user metrics compactly: ``users`` (int64) and one float32 array per metric."""
    io.write_npz(path, {"users": metrics.users.astype(np.int64),
                        **{key: values.astype(np.float32) for key, values in metrics.values.items()}})


def read_per_user(run_dir: str | Path) -> PerUserMetrics:
    """The per-user test metrics a finished run saved (``per_user_test.npz``)."""
    path = Path(run_dir) / PER_USER_FILE
    if not path.is_file():
        raise RunFolderError(f"'{run_dir}' has no {PER_USER_FILE}: it is not a finished run, or it was trained "
                             "before runs saved per-user metrics (re-train it to compare it user by user)")
    with np.load(path) as data:
        return PerUserMetrics(data["users"], {key: data[key].astype(np.float64) for key in data.files
                                              if key != "users"})


def _run_info(config: dict) -> dict:
    """The working directory and the absolute dataset folder and cache of a run being started."""
    path, cache = config["dataset"]["path"], config["cache_dir"]
    return {"cwd": str(Path.cwd()), "dataset_path": str(Path(path).resolve()) if path else None,
            "cache_dir": str(Path(cache).resolve()) if cache else None}


def _run_config(run_dir: Path, data: str | Path | None = None) -> dict:
    """The run's config with its paths made absolute as recorded in ``run_info.json``;
    ``data`` replaces the dataset folder."""
    if not (run_dir / "config.yaml").is_file():
        raise RunFolderError(f"'{run_dir}' has no config.yaml: it is not a training run folder")
    config = resolve(io.load_yaml(run_dir / "config.yaml"))
    info = json.loads((run_dir / RUN_INFO).read_text()) if (run_dir / RUN_INFO).is_file() else {}
    if info.get("cache_dir"):
        config["cache_dir"] = info["cache_dir"]
    if data is not None:
        config["dataset"]["path"] = str(Path(data).resolve())
    elif info.get("dataset_path"):
        config["dataset"]["path"] = info["dataset_path"]
    path = config["dataset"]["path"]
    if data is None and path and not Path(path).exists():
        raise RunFolderError(f"the dataset of run '{run_dir}' was read from '{path}', which does not exist "
                             f"(working directory {Path.cwd()}); point to it with --data PATH (data=PATH)")
    return config


def resume(run_dir: str | Path) -> dict:
    """Continue a killed run from its ``last.pt``."""
    run_dir = Path(run_dir)
    return train(_run_config(run_dir), run_dir=run_dir, resume=(run_dir / "last.pt").exists())


def load_run(run_dir: str | Path, device: str = "auto", data: str | Path | None = None,
             index: str = "exact") -> TrainedRun:
    """A finished run ready to recommend: its dataset and model with the best checkpoint, in
    eval mode (:class:`recsys.serving.TrainedRun`; ``index``: exact or faiss top-K search).
    ``data`` is the dataset folder when it is no longer where the run was trained from."""
    run_dir = Path(run_dir)
    if not (run_dir / "best.pt").exists():
        raise RunFolderError(f"'{run_dir}' has no best.pt: it is not a finished training run folder")
    config = _run_config(run_dir, data)
    torch_device = resolve_device(device)
    components = build(config, torch_device)
    load_best_weights(components.model, run_dir, torch_device)
    return TrainedRun(components.model, components.dataset, torch_device, run_dir=run_dir, config=config,
                      task=components.task, index=index)


def evaluate_run(run: TrainedRun, splits: tuple[str, ...] = ("valid", "test")) -> dict[str, dict[str, float]]:
    """The run's metrics on ``splits`` with its task's protocol (what ``results.json`` holds)."""
    return {split: run.task.evaluate(run.model, split) for split in splits}
