"""Suite files: which datasets and models a benchmark runs, how configurations are chosen.

A suite file (``configs/benchmarks/*.yaml``)::

    name: sports                    # default: the file name without .yaml
    output_dir: benchmarks          # the benchmark folder is <output_dir>/<name>
    seeds: 3                        # retraining seeds of each chosen config: N (0..N-1) or a list;
                                    # the search runs at the config's own seed, so the reported runs
                                    # are fresh draws, not the one that won the search
    metric: recall@20               # VALID metric of every choice (search objective, early stopping)
    baseline: lightgcn              # the model the others are tested against (a key of models)
    base_config: []                 # run-config files under everything (paths from the current folder)
    config: {train: {...}, eval: {...}}   # inline run-config sections common to every run
    datasets:                       # name → run-config dataset section
      sports: {format: rearm, path: ../shared/data/amazon/sports, name: sports, modalities: [text]}
    search:                         # the one search budget of every model with a space
      trials: 8                     # finished (complete + pruned) trials per searched model
      sampler: {name: tpe, seed: 0}
      pruner: {name: median, n_startup_trials: 3, n_warmup_steps: 6}
    models:                         # label → fixed config, or config + search space
      bpr: {space: {model.reg_weight: {type: float, low: 1.0e-5, high: 1.0e-1, log: true}}}
      lightgcn: {config: {model: {n_layers: 3}}}          # fixed: trained with its seeds only
      rearm: {base_config: [configs/models/rearm.yaml], config: {model: {name: rearm}}, space: {...}}

A model's run config is, each merged over the previous: the model's ``base_config`` files (a
model's own defaults, e.g. configs/models/rearm.yaml) ← the suite's ``base_config`` files and
``config`` (the budget every model shares wins over the model files) ← the dataset section ←
the model's ``config`` (its explicit deviations, visible in the suite file) ← the command
line's ``--set`` overrides (e.g. ``train.epochs=1`` for a quick check of a suite). ``model.name``
defaults to the label.
Its ``space`` uses the study-file syntax of :mod:`recsys.tuning.space`. A model section
cannot set its own trial budget: every searched model gets ``search.trials``.
"""
from __future__ import annotations

import copy
import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from recsys.compose import resolve
from recsys.config import merge
from recsys.errors import ConfigError
from recsys.io import load_yaml
from recsys.models import get_model_class
from recsys.tuning.spec import STUDY_DEFAULTS, StudySpec, spec_from_mapping

SUITE_KEYS = {"name", "output_dir", "seeds", "metric", "baseline", "base_config", "config", "datasets", "search",
              "models"}
SEARCH_KEYS = {"trials", "sampler", "pruner", "timeout", "storage"}
MODEL_KEYS = {"base_config", "config", "space"}
DEFAULT_SEEDS = 3
_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def _unknown(key: str, valid, where: str) -> ConfigError:
    match = difflib.get_close_matches(key, list(valid), n=1)
    hint = f" Did you mean '{match[0]}'?" if match else ""
    return ConfigError(f"{where}: unknown key '{key}'.{hint} Valid keys: {', '.join(sorted(valid))}.")


def _check_keys(section: Any, valid: set[str], where: str) -> dict:
    if not isinstance(section, Mapping):
        raise ConfigError(f"{where} must be a mapping, got {type(section).__name__}")
    for key in section:
        if key not in valid:
            raise _unknown(str(key), valid, where)
    return dict(section)


def _files(value: Any) -> list[str]:
    return [value] if isinstance(value, (str, Path)) else [str(v) for v in (value or [])]


def _label(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ConfigError(f"{where} '{value}' may only use letters, digits, '_', '.' and '-'")
    return value


@dataclass(frozen=True)
class ModelEntry:
    """One model of a suite: its label, its files' config, its inline config and its search space."""

    label: str
    files: dict
    inline: dict
    space: dict | None


@dataclass
class Suite:
    """A validated suite file."""

    name: str
    folder: Path
    seeds: list[int]
    metric: str
    baseline: str | None
    datasets: dict[str, dict]
    models: dict[str, ModelEntry]
    common: dict
    search: dict
    source: str
    overrides: dict = field(default_factory=dict)

    def run_config(self, dataset: str, model: str) -> dict:
        """The (unresolved) run config of ``model`` on ``dataset`` (merge order: module docstring)."""
        entry = self.models[model]
        config = merge(merge(entry.files, self.common, None), {"dataset": self.datasets[dataset]}, None)
        return merge(merge(config, entry.inline, None), self.overrides, None)

    def fixed_config(self, dataset: str, model: str) -> dict:
        """The resolved config of a model without a search space (early stopping on ``metric``)."""
        config = resolve(self.run_config(dataset, model))
        config["train"]["monitor"] = self.metric
        return config

    def study(self, dataset: str, model: str) -> StudySpec:
        """The Optuna study that chooses ``model``'s configuration on ``dataset`` (valid split)."""
        raw = {"name": f"{dataset}-{model}", "output_dir": str(self.folder / "studies"),
               "config": self.run_config(dataset, model), "objective": {"metric": self.metric},
               "space": self.models[model].space, **copy.deepcopy(self.search)}
        spec = spec_from_mapping(raw, f"{self.source}: models['{model}'] on dataset '{dataset}'", raw["name"])
        spec.cache_dir = self.folder / "cache"
        return spec

    def pairs(self) -> list[tuple[str, str]]:
        """(dataset, model) in the order the suite runs them."""
        return [(dataset, model) for dataset in self.datasets for model in self.models]


def load_suite(path: str | Path, output_dir: str | Path | None = None, trials: int | None = None,
               seeds: int | list[int] | None = None, overrides: dict | None = None) -> Suite:
    """Read and validate a suite file; the keyword arguments (the command line: benchmark folder
    parent, search trials, seeds, run-config overrides of every run) win over the file."""
    path = Path(path)
    source = f"suite file '{path}'"
    raw = _check_keys(load_yaml(path), SUITE_KEYS, source)
    name = _label(raw.get("name") or path.stem, f"{source}: name")
    folder = Path(output_dir or raw.get("output_dir") or "benchmarks") / name

    common: dict = {}
    for file in _files(raw.get("base_config")):
        common = merge(common, load_yaml(file), None)
    common = merge(common, raw.get("config") or {}, None)

    datasets = raw.get("datasets")
    if not isinstance(datasets, Mapping) or not datasets:
        raise ConfigError(f"{source}: 'datasets' must map dataset names to run-config dataset sections")
    datasets = {_label(k, f"{source}: dataset name"): dict(v or {}) for k, v in datasets.items()}

    models_raw = raw.get("models")
    if not isinstance(models_raw, Mapping) or not models_raw:
        raise ConfigError(f"{source}: 'models' must map model labels to {{config, space}} sections")
    models = {}
    for label, section in models_raw.items():
        where = f"{source}: models['{label}']"
        budget = SEARCH_KEYS & set(section or {})
        if budget:
            raise ConfigError(f"{where}: {', '.join(sorted(budget))} cannot be set per model: every searched "
                              "model gets the suite's one search budget (set it under 'search')")
        section = _check_keys(section or {}, MODEL_KEYS, where)
        files: dict = {}
        for file in _files(section.get("base_config")):
            files = merge(files, load_yaml(file), None)
        inline = merge({}, section.get("config") or {}, None)
        if "name" not in inline.get("model", {}) and "name" not in files.get("model", {}):
            try:
                get_model_class(label)
            except ConfigError:
                raise ConfigError(f"{where}: set config.model.name (the label '{label}' is not a model name)") \
                    from None
            inline.setdefault("model", {})["name"] = label
        space = section.get("space")
        if space is not None and (not isinstance(space, Mapping) or not space):
            raise ConfigError(f"{where}: 'space' must be a non-empty mapping of dotted config paths (or absent)")
        models[_label(label, f"{source}: model label")] = ModelEntry(label, files, inline,
                                                                     dict(space) if space else None)

    search = _check_keys(raw.get("search") or {}, SEARCH_KEYS, f"{source}: search")
    search.setdefault("trials", STUDY_DEFAULTS["trials"])
    if trials is not None:
        search["trials"] = trials
    seeds = _seeds(raw.get("seeds", DEFAULT_SEEDS) if seeds is None else seeds, source)
    suite = Suite(name=name, folder=folder, seeds=seeds, overrides=dict(overrides or {}),
                  metric=str(raw.get("metric", "recall@20")), baseline=raw.get("baseline"), datasets=datasets,
                  models=models, common=common, search=search, source=source)
    if suite.baseline is not None and suite.baseline not in models:
        raise ConfigError(f"{source}: baseline '{suite.baseline}' is not one of the models "
                          f"({', '.join(models)})")
    for dataset, model in suite.pairs():
        try:
            suite.study(dataset, model) if models[model].space else suite.fixed_config(dataset, model)
        except ConfigError as exc:
            message = str(exc)
            raise ConfigError(message if message.startswith(source)
                              else f"{source}: models['{model}'] on dataset '{dataset}': {message}") from None
    return suite


def _seeds(value: Any, source: str) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return list(range(value))
    if isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) for v in value) \
            and len(set(value)) == len(value):
        return list(value)
    raise ConfigError(f"{source}: 'seeds' must be a positive integer N (seeds 0..N-1) or a list of distinct "
                      f"integers, got {value!r}")
