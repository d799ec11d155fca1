"""Composition: the one place that puts the layers together.

:func:`resolve` builds a run's configuration from the core defaults
(:data:`recsys.config.CORE_DEFAULTS`), the data layer's ``dataset`` defaults
(:data:`recsys.data.defaults.DATASET_DEFAULTS`) and the chosen model class's
``default_config()``, then the user's files and overrides. :func:`build` turns a resolved
configuration into the objects of a run: dataset → graph store → pre-training steps →
model → task. Everything above (training runs, dry runs, loading a finished run, tuning,
the command line) goes through these two functions; nothing below imports this module.
"""
from __future__ import annotations

import copy
import random
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch

from recsys.config import CORE_DEFAULTS, merge
from recsys.data.defaults import DATASET_DEFAULTS
from recsys.data.loading import load_dataset
from recsys.errors import ConfigError, RecsysError
from recsys.graphs import GraphStore
from recsys.models import get_model_class
from recsys.training import make_task, pretraining
from recsys.validation import validate_config


def run_defaults(model_name: str | None = None) -> dict[str, Any]:
    """Every default of a run: top-level keys, ``dataset``, ``model`` (of ``model_name``,
    default LightGCN), ``train``, ``graphs`` and ``eval``, in the order ``config.yaml`` shows them."""
    name = model_name or "lightgcn"
    top = {k: v for k, v in CORE_DEFAULTS.items() if not isinstance(v, Mapping)}
    return copy.deepcopy({**top, "dataset": DATASET_DEFAULTS,
                          "model": {"name": name, **get_model_class(name).default_config()},
                          "train": CORE_DEFAULTS["train"], "graphs": CORE_DEFAULTS["graphs"],
                          "eval": CORE_DEFAULTS["eval"]})


def resolve(user: Mapping[str, Any] | None = None, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Defaults ← user config ← overrides; every key is checked against the defaults of its
    section (the ``model`` section against the chosen model class) and the values of the
    core sections by :func:`recsys.validation.validate_config`, so a config that cannot run
    fails here, before any data is loaded."""
    raw = merge(merge({}, user or {}, None), overrides or {}, None)
    model_section = dict(raw.pop("model", {}) or {})
    defaults = run_defaults(model_section.get("name"))
    core = {k: v for k, v in defaults.items() if k != "model"}
    config = merge(core, raw, core)
    renamed = {old: new for old, new in getattr(get_model_class(defaults["model"]["name"]), "renamed_keys", {}).items()
               if old in model_section and old not in defaults["model"]}
    if renamed:
        moves = ", ".join(f"'model.{old}' is now 'model.{new}'" for old, new in renamed.items())
        raise ConfigError(f"renamed config key(s) of model '{defaults['model']['name']}': {moves}; write the new "
                          "name(s) instead (docs/vocabulary.md lists the shared names)")
    model = merge(defaults["model"], model_section, defaults["model"], "model")
    resolved = {key: model if key == "model" else config[key] for key in defaults}
    validate_config(resolved)
    return resolved


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA when present, else CPU; an unavailable CUDA device is a ConfigError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device '{name}' was requested but CUDA is not available; use device=cpu or auto")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextmanager
def _model_config_errors(config: dict):
    """A model's ValueError about its settings becomes a ConfigError naming the model."""
    try:
        yield
    except RecsysError:
        raise
    except ValueError as exc:
        raise ConfigError(f"model '{config['model']['name']}' rejects its configuration: {exc}") from exc


@dataclass
class Components:
    """The objects of a run: what :func:`build` returns."""

    dataset: Any
    graphs: Any
    model: torch.nn.Module
    task: Any


def build(config: dict, device: torch.device, dataset=None, graphs=None, pretrain: bool = True) -> Components:
    """Dataset, graph store, model and task of a resolved ``config`` on ``device``.

    ``dataset`` replaces loading the one the config names (tests, notebooks); ``graphs``
    replaces the :class:`GraphStore` (a dry run passes a planning store); with
    ``pretrain=False`` the model's pre-training steps are not run and it receives
    placeholders of the same shapes. The model's parameters are drawn after
    ``seed_everything(config["seed"])``; pre-training steps run on their own seeds and leave
    the random state untouched.
    """
    dataset = dataset if dataset is not None else load_dataset(config["dataset"])
    if graphs is None:
        try:
            graphs = GraphStore(dataset, device, cache_dir=config["cache_dir"], graphs=config["graphs"])
        except ValueError as exc:
            raise ConfigError(f"graphs section: {exc}") from exc
    seed_everything(int(config["seed"]))
    model_cls = get_model_class(config["model"]["name"])
    with _model_config_errors(config):
        inputs = model_cls.pretrained_inputs(config["model"], dataset)
    step = pretraining.run_step if pretrain else pretraining.placeholder
    extra = {"pretrained": {name: step(name, settings, dataset, graphs) for name, settings in inputs.items()}} \
        if inputs else {}
    with _model_config_errors(config):
        model = model_cls(dataset, config["model"], graphs, **extra).to(device)
    task = make_task(model_cls.task, dataset, config, device)
    return Components(dataset, graphs, model, task)
