"""Run configuration: nested mappings validated against declared defaults.

A run is ``dataset`` + ``model`` + ``train`` + ``eval`` sections plus a few top-level keys.
Every key a user writes must exist in the defaults of its section (the model section's
defaults come from the model class); an unknown key is an error that names the closest
valid key. Overrides use dotted paths: ``--set train.lr=1e-3 model.n_layers=3``.
"""
from __future__ import annotations

import copy
import difflib
import re
from pathlib import Path
from typing import Any, Mapping

import yaml


class _Loader(yaml.SafeLoader):
    """YAML loader that also reads ``1e-3`` (no dot) as a float, as users write it."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def yaml_load(text: str):
    return yaml.load(text, Loader=_Loader)


class ConfigError(ValueError):
    """A configuration that cannot be used; the message says where and how to fix it."""


DEFAULTS: dict[str, Any] = {
    "seed": 2024,
    "device": "auto",
    "threads": None,
    "output_dir": "runs",
    "run_name": None,
    "cache_dir": ".cache/recsys",
    "dataset": {
        "format": "synthetic",
        "path": None,
        "name": None,
        "modalities": None,
        "split_ratios": [0.8, 0.1, 0.1],
        "split_order": "random",
        "split_seed": 2024,
        "synthetic": {
            "n_users": 1000,
            "n_items": 500,
            "n_clusters": 8,
            "interactions_per_user": 20,
            "noise_dim": 32,
            "informative_dim": 32,
            "popularity_skew": 1.0,
            "seed": 0,
        },
    },
    "model": {"name": "lightgcn"},
    "train": {
        "optimizer": "adam",
        "lr": 1e-3,
        "weight_decay": 0.0,
        "batch_size": 2048,
        "epochs": 1000,
        "eval_every": 1,
        "patience": 20,
        "monitor": "recall@20",
        "negatives_exclude": "train",
        "grad_clip": None,
        "amp": None,
        "progress": True,
        "tensorboard": False,
    },
    "eval": {
        "ks": [10, 20],
        "metrics": ["recall", "ndcg", "precision", "map", "hit"],
        "batch_size": 4096,
    },
}


def _closest(key: str, valid: list[str]) -> str:
    match = difflib.get_close_matches(key, valid, n=1)
    hint = f" Did you mean '{match[0]}'?" if match else ""
    return f"{hint} Valid keys: {', '.join(sorted(valid))}."


def merge(base: Mapping[str, Any], override: Mapping[str, Any], schema: Mapping[str, Any] | None,
          where: str = "") -> dict[str, Any]:
    """Recursively merge ``override`` into a copy of ``base``.

    ``schema`` gives the allowed keys at each level (``None`` allows any key). Mappings merge
    key by key; any other value replaces the old one.
    """
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        path = f"{where}.{key}" if where else key
        if schema is not None and key not in schema:
            raise ConfigError(f"unknown config key '{path}'.{_closest(key, list(schema))}")
        sub_schema = schema.get(key) if schema is not None else None
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            child_schema = sub_schema if isinstance(sub_schema, Mapping) else None
            out[key] = merge(out[key], value, child_schema, path)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """Turn ``["a.b=1", "c=[1,2]"]`` into a nested mapping; values are parsed as YAML."""
    result: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override '{item}' must look like key.path=value (for example train.lr=1e-3)")
        dotted, raw = item.split("=", 1)
        node = result
        parts = dotted.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml_load(raw)
    return result


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; errors name the file and the line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file '{path}' does not exist")
    try:
        data = yaml_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file '{path}' is not valid YAML: {exc}") from exc
    if not isinstance(data, Mapping):
        raise ConfigError(f"config file '{path}' must hold a mapping at the top level, got {type(data).__name__}")
    return dict(data)


def resolve(user: Mapping[str, Any] | None = None, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Defaults ← user config ← overrides, with model keys validated against the model class."""
    from recsys.models import get_model_class

    raw = merge({}, user or {}, None)
    raw = merge(raw, overrides or {}, None)
    model_section = dict(raw.pop("model", {}) or {})
    config = merge(DEFAULTS, raw, DEFAULTS)
    name = model_section.get("name", DEFAULTS["model"]["name"])
    model_cls = get_model_class(name)
    model_defaults = {"name": name, **model_cls.default_config()}
    config["model"] = merge(model_defaults, model_section, model_defaults, "model")
    return config


def dump_yaml(config: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(config), sort_keys=False)
