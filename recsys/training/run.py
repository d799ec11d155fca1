"""A training run end to end: config → dataset → graphs → model → trainer → run folder.

Run folder layout: ``config.yaml`` (resolved config, seed included), ``metrics.jsonl``
(one line per epoch), ``best.pt`` (best-valid model), ``last.pt`` (resume state),
``results.json`` (best epoch, valid and test metrics at the best-valid epoch, timings),
``train.log``.
"""
from __future__ import annotations

import logging
import random
import re
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from recsys import io
from recsys.config import ConfigError, dump_yaml, load_yaml, resolve
from recsys.data.loading import load_dataset
from recsys.graphs import GraphStore
from recsys.models import get_model_class
from recsys.training import distributed
from recsys.training.tasks import make_task
from recsys.training.trainer import Trainer

log = logging.getLogger("recsys.train")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device '{name}' was requested but CUDA is not available; use device=cpu or auto")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


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


def build(config: dict, device: torch.device, dataset=None):
    """Dataset, graph store, model and task of a resolved config."""
    dataset = dataset if dataset is not None else load_dataset(config["dataset"])
    graphs = GraphStore(dataset, device, cache_dir=config["cache_dir"])
    seed_everything(int(config["seed"]))
    model_cls = get_model_class(config["model"]["name"])
    try:
        model = model_cls(dataset, config["model"], graphs).to(device)
    except ValueError as exc:
        raise ConfigError(f"model '{config['model']['name']}' rejects its configuration: {exc}") from exc
    task = make_task(getattr(model_cls, "task", "interaction"), dataset, config, device)
    return dataset, model, task


def train(config: dict, run_dir: str | Path | None = None, resume: bool = False,
          on_evaluate: Callable[[int, dict[str, float]], None] | None = None, dataset=None) -> dict:
    """Train per ``config`` (already resolved); returns the results written to results.json.

    ``on_evaluate(epoch, valid_metrics)`` is passed to the :class:`Trainer` (tuning hooks);
    ``dataset`` replaces loading the one the config names (tests, notebooks). Under torchrun
    every rank calls this; rank 0 owns the run folder and the final evaluation.
    """
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
            io.write_text(run_dir / "config.yaml", dump_yaml(config))
    distributed.barrier()
    try:
        started = time.perf_counter()
        dataset, model, task = build(config, device, dataset)
        trainer = Trainer(model, task, config["train"], run_dir, on_evaluate=on_evaluate)
        if resume:
            trainer.resume()
        state = trainer.fit()
        results = _final_results(config, run_dir, device, dataset, model, task, state, started) if main_rank else None
        return distributed.broadcast(results)
    finally:
        if main_rank:
            logging.getLogger("recsys").removeHandler(handler)
            handler.close()


def _final_results(config, run_dir: Path, device, dataset, model, task, state: dict, started: float) -> dict:
    """Reload the best checkpoint, evaluate valid and test, write results.json."""
    best = torch.load(run_dir / "best.pt", map_location=device, weights_only=False)
    model.load_state_dict(best["model"])
    eval_start = time.perf_counter()
    valid = task.evaluate(model, "valid")
    test = task.evaluate(model, "test")
    results = {
        "model": config["model"]["name"],
        "dataset": dataset.name,
        "seed": config["seed"],
        "best_epoch": state["best_epoch"],
        "epochs_run": state["epoch"],
        "valid": valid,
        "test": test,
        "eval_seconds": (time.perf_counter() - eval_start) / 2,
        "total_seconds": time.perf_counter() - started,
        "device": str(device),
        "world_size": distributed.world_size(),
        "run_dir": str(run_dir),
    }
    io.write_json(run_dir / "results.json", results)
    return results


def resume(run_dir: str | Path) -> dict:
    """Continue a killed run from its ``last.pt``."""
    run_dir = Path(run_dir)
    config = resolve(load_yaml(run_dir / "config.yaml"))
    return train(config, run_dir=run_dir, resume=(run_dir / "last.pt").exists())


@dataclass
class LoadedRun:
    run_dir: Path
    config: dict
    dataset: object
    model: torch.nn.Module
    device: torch.device


def load_run(run_dir: str | Path, device: str = "auto") -> LoadedRun:
    """Rebuild a finished run's dataset and model with the best checkpoint, in eval mode."""
    run_dir = Path(run_dir)
    if not (run_dir / "best.pt").exists():
        raise FileNotFoundError(f"'{run_dir}' has no best.pt: it is not a finished training run folder")
    config = resolve(load_yaml(run_dir / "config.yaml"))
    torch_device = resolve_device(device)
    dataset, model, _ = build(config, torch_device)
    best = torch.load(run_dir / "best.pt", map_location=torch_device, weights_only=False)
    model.load_state_dict(best["model"])
    model.eval()
    return LoadedRun(run_dir, config, dataset, model, torch_device)
