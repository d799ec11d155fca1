"""Study files: what to tune (base run config + search space), how (sampler, pruner) and where.

A study file (``configs/tune/*.yaml``)::

    name: lightgcn_baby            # default: the file name without .yaml
    output_dir: studies            # the study folder is <output_dir>/<name>
    base_config: configs/experiments/lightgcn_baby.yaml   # a path or a list, merged in order
    config:                        # inline run-config sections merged over base_config
      train: {epochs: 60, eval_every: 5, patience: 3}
    objective: {metric: recall@20} # valid-split metric, maximised
    sampler: {name: tpe, seed: 0}  # tpe | random | cmaes (+ keyword arguments of the Optuna class)
    pruner: {name: median}         # median | hyperband | none (+ keyword arguments)
    trials: 30                     # finished (complete + pruned) trials the study should hold
    timeout: null                  # seconds after which no new trial starts
    workers: 1                     # worker processes on this machine
    storage: null                  # null: SQLite in the study folder; journal; journal:PATH; a SQLAlchemy URL
    heartbeat_interval: 60         # seconds; RDB storages fail trials silent for 2 intervals
    space: {...}                   # see recsys.tuning.space

Paths in ``base_config`` are read relative to the current directory, like
``recsys train --config``.
"""
from __future__ import annotations

import copy
import difflib
import importlib.util
import inspect
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import optuna

from recsys.compose import resolve
from recsys.config import merge
from recsys.errors import ConfigError
from recsys.io import load_yaml
from recsys.tuning.space import SearchSpace, nest

STUDY_DEFAULTS: dict[str, Any] = {
    "name": None,
    "output_dir": "studies",
    "base_config": [],
    "config": {},
    "objective": {"metric": "recall@20"},
    "sampler": {"name": "tpe", "seed": 0},
    "pruner": {"name": "median"},
    "trials": 20,
    "timeout": None,
    "workers": 1,
    "storage": None,
    "heartbeat_interval": 60,
    "space": None,
}

SAMPLERS = {
    "tpe": optuna.samplers.TPESampler,
    "random": optuna.samplers.RandomSampler,
    "cmaes": optuna.samplers.CmaEsSampler,
}
PRUNERS = {
    "median": optuna.pruners.MedianPruner,
    "hyperband": optuna.pruners.HyperbandPruner,
    "none": optuna.pruners.NopPruner,
}

# Run-config keys a trial sets itself; they never change a trial's metrics.
_PER_RUN_KEYS = ("output_dir", "run_name", "cache_dir", "device")


def _unknown(key: str, valid, where: str) -> ConfigError:
    match = difflib.get_close_matches(key, list(valid), n=1)
    hint = f" Did you mean '{match[0]}'?" if match else ""
    return ConfigError(f"{where}: unknown key '{key}'.{hint} Valid keys: {', '.join(sorted(valid))}.")


def _factory_section(raw: Any, registry: Mapping[str, type], where: str) -> dict[str, Any]:
    """Validate ``{name: ..., **kwargs}`` against the keyword arguments of the Optuna class."""
    if not isinstance(raw, Mapping) or "name" not in raw:
        raise ConfigError(f"{where} must be a mapping with 'name' ({' | '.join(registry)})")
    section = dict(raw)
    name = str(section["name"]).lower()
    if name not in registry:
        raise ConfigError(f"{where}.name '{section['name']}' is not one of {', '.join(registry)}")
    accepted = [p for p in inspect.signature(registry[name]).parameters if p != "self"]
    for key in section:
        if key != "name" and key not in accepted:
            raise _unknown(key, ["name", *accepted], f"{where} ({name})")
    section["name"] = name
    return section


def _metric(raw: Any, config: Mapping[str, Any]) -> str:
    if not isinstance(raw, Mapping):
        raise ConfigError("objective must be a mapping like {metric: recall@20}")
    for key in raw:
        if key != "metric":
            raise _unknown(key, ["metric"], "objective")
    metric = str(raw.get("metric", "recall@20"))
    match = re.fullmatch(r"([a-z_]+)@(\d+)", metric)
    if not match:
        raise ConfigError(f"objective.metric '{metric}' must look like name@k, e.g. recall@20")
    name, k = match.group(1), int(match.group(2))
    if name not in config["eval"]["metrics"] or k not in config["eval"]["ks"]:
        raise ConfigError(f"objective.metric '{metric}' is not computed by the run config: eval.metrics is "
                          f"{config['eval']['metrics']} and eval.ks is {config['eval']['ks']}; add it there")
    return metric


@dataclass
class StudySpec:
    """A validated study file plus command-line choices; picklable for worker processes."""

    name: str
    study_dir: Path
    base: dict[str, Any]
    metric: str
    sampler: dict[str, Any]
    pruner: dict[str, Any]
    space: SearchSpace
    space_raw: dict[str, Any]
    trials: int
    timeout: float | None
    workers: int
    storage: str | None
    heartbeat_interval: int
    cache_dir: Path | None = None

    @property
    def graph_cache(self) -> Path:
        """Where the trials cache their graphs: ``cache_dir`` when set (several studies sharing
        one cache, e.g. a benchmark), else ``<study folder>/cache``."""
        return self.cache_dir if self.cache_dir is not None else self.study_dir / "cache"

    def trial_config(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The resolved run config of a trial with ``params`` (dotted path → value).

        The objective metric becomes ``train.monitor`` so early stopping and the kept
        checkpoint follow the tuned metric.
        """
        config = resolve(self.base, nest(params))
        config["train"]["monitor"] = self.metric
        return config

    def signature(self) -> str:
        """What must not change when a study is resumed: space, objective and base config."""
        config = resolve(self.base)
        for key in _PER_RUN_KEYS:
            config.pop(key)
        config["train"].pop("progress")
        return json.dumps({"space": self.space_raw, "metric": self.metric, "base": config}, sort_keys=True,
                          default=str)

    def make_sampler(self, seed_offset: int = 0) -> optuna.samplers.BaseSampler:
        """The configured sampler; ``seed_offset`` (0 for a fresh single worker) decorrelates
        workers and resumed runs, which would otherwise replay the same random draws."""
        kwargs = {k: v for k, v in self.sampler.items() if k != "name"}
        if kwargs.get("seed") is not None and seed_offset:
            kwargs["seed"] = int(kwargs["seed"]) + 7919 * seed_offset
        return SAMPLERS[self.sampler["name"]](**kwargs)

    def make_pruner(self) -> optuna.pruners.BasePruner:
        return PRUNERS[self.pruner["name"]](**{k: v for k, v in self.pruner.items() if k != "name"})


def load_spec(path: str | Path, *, trials: int | None = None, workers: int | None = None,
              storage: str | None = None, study: str | None = None, timeout: float | None = None,
              overrides: Mapping[str, Any] | None = None) -> StudySpec:
    """Read and validate a study file; keyword arguments (the command line) win over the file.

    ``overrides`` is a nested run-config mapping merged last (``recsys tune --set``).
    """
    path = Path(path)
    return spec_from_mapping(load_yaml(path), f"study file '{path}'", path.stem, trials=trials, workers=workers,
                             storage=storage, study=study, timeout=timeout, overrides=overrides)


def spec_from_mapping(raw: Mapping[str, Any], source: str, default_name: str, *, trials: int | None = None,
                      workers: int | None = None, storage: str | None = None, study: str | None = None,
                      timeout: float | None = None, overrides: Mapping[str, Any] | None = None) -> StudySpec:
    """Validate the contents of a study file (``source`` names it in errors; ``default_name``
    is the study name when it sets none); the keyword arguments are those of :func:`load_spec`."""
    for key in raw:
        if key not in STUDY_DEFAULTS:
            raise _unknown(key, STUDY_DEFAULTS, source)
    data = {**copy.deepcopy(STUDY_DEFAULTS), **raw}
    cli = {"trials": trials, "workers": workers, "storage": storage, "name": study, "timeout": timeout}
    data.update({k: v for k, v in cli.items() if v is not None})

    files = data["base_config"]
    files = [files] if isinstance(files, (str, Path)) else list(files or [])
    base: dict[str, Any] = {}
    for file in files:
        base = merge(base, load_yaml(file), None)
    if not isinstance(data["config"], Mapping):
        raise ConfigError(f"{source}: 'config' must hold run-config sections (dataset, model, train, ...)")
    base = merge(base, data["config"], None)
    base = merge(base, overrides or {}, None)
    try:
        resolved = resolve(base)
    except (ConfigError, KeyError) as exc:
        raise ConfigError(f"{source}: base run config: {exc.args[0] if exc.args else exc}") from None

    space = SearchSpace.parse(data["space"], f"{source}: space")
    space.validate(base)
    sampler = _factory_section(data["sampler"], SAMPLERS, f"{source}: sampler")
    if sampler["name"] == "cmaes":
        if not space.all_continuous():
            raise ConfigError(f"{source}: the cmaes sampler needs every parameter to be an "
                              "unconditional float; use tpe or random for int, categorical or conditional ones")
        if importlib.util.find_spec("cmaes") is None:
            raise ConfigError("the cmaes sampler needs the 'cmaes' package: pip install cmaes")
    pruner = _factory_section(data["pruner"], PRUNERS, f"{source}: pruner")

    for key in ("trials", "workers", "heartbeat_interval"):
        if isinstance(data[key], bool) or not isinstance(data[key], int) or data[key] < (0 if key == "trials" else 1):
            raise ConfigError(f"{source}: '{key}' must be a positive integer, got {data[key]!r}")
    name = str(data["name"] or default_name)
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ConfigError(f"study name '{name}' may only use letters, digits, '_', '.' and '-'")
    return StudySpec(
        name=name,
        study_dir=Path(data["output_dir"]) / name,
        base=base,
        metric=_metric(data["objective"], resolved),
        sampler=sampler,
        pruner=pruner,
        space=space,
        space_raw=copy.deepcopy(dict(data["space"])),
        trials=data["trials"],
        timeout=None if data["timeout"] is None else float(data["timeout"]),
        workers=data["workers"],
        storage=data["storage"],
        heartbeat_interval=data["heartbeat_interval"],
    )
