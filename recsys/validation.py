"""Value checks of a resolved run config, run by :func:`recsys.compose.resolve`.

:func:`recsys.config.merge` checks that every key exists; this module checks what the values
can be, so that a config that cannot run fails when it is read, before any data is loaded or
any epoch is trained (a monitored metric that evaluation never computes used to fail after
the first epoch). Each error is a :class:`~recsys.errors.ConfigError` naming the key, the
value and the fix. Checked:

* ``dataset``, ``train``, ``graphs`` and ``eval`` are sections (mappings), not single values;
* ``graphs.knn_backend`` and the ``graphs.faiss`` parameters
  (:func:`recsys.graphs.ann.search_settings`; whether FAISS is installed is checked when a
  graph is built);
* ``eval.ks`` (non-empty positive integers) and ``eval.metrics`` (known names), and
  ``train.monitor``, which must be one of the ``{metric}@{k}`` the evaluation computes;
* ``train.optimizer``, ``train.amp`` and ``train.negatives_exclude`` against the values
  the trainer and the task implement;
* positive integers (``train.batch_size``, ``epochs``, ``eval_every``, ``patience``,
  ``eval.batch_size``; ``threads`` when set), ``train.lr`` > 0, ``train.weight_decay`` ≥ 0,
  ``train.grad_clip`` null or > 0, ``train.lr_plateau`` null or {factor in (0, 1), patience,
  min_lr}, ``seed`` an integer, booleans, and ``device`` a device
  name torch understands (whether that device is present is checked when a run starts, so
  a run trained on a GPU can still be read on a CPU-only machine).

Model hyper-parameters are checked by each model class when it is built.
"""
from __future__ import annotations

from numbers import Real
from typing import Any, Mapping

import torch

from recsys.config import CORE_DEFAULTS
from recsys.data.defaults import DATASET_DEFAULTS
from recsys.errors import ConfigError
from recsys.evaluation.metrics import validate as validate_metrics
from recsys.graphs.ann import search_settings
from recsys.training.tasks import NEGATIVE_EXCLUSIONS
from recsys.training.trainer import AMP_DTYPES, OPTIMIZERS

POSITIVE_INTEGERS = (("train", "batch_size"), ("train", "epochs"), ("train", "eval_every"), ("train", "patience"),
                     ("eval", "batch_size"))
BOOLEANS = (("train", "progress"), ("train", "tensorboard"), ("train", "tables_in_backward"))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _choice(config: dict, section: str, key: str, choices) -> None:
    value = config[section][key]
    if value not in choices:
        shown = ", ".join("null" if c is None else repr(c) for c in choices)
        raise ConfigError(f"{section}.{key} = {value!r} is not supported; set {section}.{key} to one of {shown}")


def evaluated_metrics(config: dict) -> list[str]:
    """The ``{metric}@{k}`` names the evaluation of ``config`` computes (its valid monitor values)."""
    try:
        ks, metrics = validate_metrics(config["eval"]["ks"], config["eval"]["metrics"])
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return [f"{m}@{k}" for m in metrics for k in ks]


def check_monitor(config: dict) -> None:
    """``train.monitor`` is one of the metrics evaluation computes."""
    produced = evaluated_metrics(config)
    monitor = config["train"]["monitor"]
    if monitor not in produced:
        raise ConfigError(f"train.monitor = '{monitor}' is not among the evaluated metrics {produced}; "
                          f"set train.monitor to one of them or add its metric/cut-off to eval.metrics/eval.ks")


def _check_numbers(config: dict) -> None:
    for section, key in POSITIVE_INTEGERS:
        value = config[section][key]
        if not _is_int(value) or value < 1:
            raise ConfigError(f"{section}.{key} = {value!r} must be a positive integer")
    threads = config["threads"]
    if threads is not None and (not _is_int(threads) or threads < 1):
        raise ConfigError(f"threads = {threads!r} must be a positive integer, or null for torch's default")
    if not _is_int(config["seed"]):
        raise ConfigError(f"seed = {config['seed']!r} must be an integer")
    train = config["train"]
    if not _is_number(train["lr"]) or not train["lr"] > 0:
        raise ConfigError(f"train.lr = {train['lr']!r} must be a positive number, e.g. 1e-3")
    if not _is_number(train["weight_decay"]) or not train["weight_decay"] >= 0:
        raise ConfigError(f"train.weight_decay = {train['weight_decay']!r} must be a number >= 0")
    clip = train["grad_clip"]
    if clip is not None and (not _is_number(clip) or not clip > 0):
        raise ConfigError(f"train.grad_clip = {clip!r} must be a positive number (the largest gradient norm), "
                          "or null for no clipping")
    _check_lr_plateau(train["lr_plateau"])
    for section, key in BOOLEANS:
        if not isinstance(config[section][key], bool):
            raise ConfigError(f"{section}.{key} = {config[section][key]!r} must be true or false")


def _check_device(config: dict) -> None:
    name = config["device"]
    if name == "auto":
        return
    try:
        torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"device = {name!r} is not a device name; use auto, cpu, cuda or cuda:N") from None


def _check_sections(config: dict) -> None:
    """``dataset``, ``train``, ``graphs`` and ``eval`` are sections, not values (``--set train=1``)."""
    for section, defaults in (("dataset", DATASET_DEFAULTS), ("train", CORE_DEFAULTS["train"]),
                              ("graphs", CORE_DEFAULTS["graphs"]), ("eval", CORE_DEFAULTS["eval"])):
        if not isinstance(config[section], Mapping):
            keys = ", ".join(f"{section}.{key}" for key in defaults)
            raise ConfigError(f"'{section}' names a section, not a value ({section} = {config[section]!r}); "
                              f"set its keys instead: {keys}")


def validate_config(config: dict) -> None:
    """Raise a ConfigError for the first value of the resolved ``config`` that cannot run."""
    _check_sections(config)
    check_monitor(config)
    _check_numbers(config)
    if str(config["train"]["optimizer"]).lower() not in OPTIMIZERS:
        raise ConfigError(f"train.optimizer = {config['train']['optimizer']!r} is not supported; set "
                          f"train.optimizer to one of {', '.join(OPTIMIZERS)}")
    _choice(config, "train", "amp", (None, *AMP_DTYPES))
    _choice(config, "train", "negatives_exclude", NEGATIVE_EXCLUSIONS)
    try:
        search_settings(config["graphs"])
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    _check_device(config)


LR_PLATEAU_KEYS = ("factor", "patience", "min_lr")


def _check_lr_plateau(plateau) -> None:
    """``train.lr_plateau``: null, or {factor in (0, 1), patience a positive integer, min_lr >= 0}."""
    if plateau is None:
        return
    example = "e.g. {factor: 0.5, patience: 3, min_lr: 1.0e-5}"
    if not isinstance(plateau, dict) or set(plateau) != set(LR_PLATEAU_KEYS):
        raise ConfigError(f"train.lr_plateau = {plateau!r} must be null or a mapping with exactly the keys "
                          f"{', '.join(LR_PLATEAU_KEYS)}, {example}")
    if not _is_number(plateau["factor"]) or not 0 < plateau["factor"] < 1:
        raise ConfigError(f"train.lr_plateau.factor = {plateau['factor']!r} must lie strictly between 0 and 1")
    if not _is_int(plateau["patience"]) or plateau["patience"] < 1:
        raise ConfigError(f"train.lr_plateau.patience = {plateau['patience']!r} must be a positive integer "
                          "(evaluations without gain before the learning rate is lowered)")
    if not _is_number(plateau["min_lr"]) or not plateau["min_lr"] >= 0:
        raise ConfigError(f"train.lr_plateau.min_lr = {plateau['min_lr']!r} must be a number >= 0")
