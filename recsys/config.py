"""Run configuration mechanics and the core defaults.

A run is ``dataset`` + ``model`` + ``train`` + ``graphs`` + ``eval`` sections plus a few top-level
keys. This module holds the defaults of the core sections (top-level keys, ``train``,
``graphs``, ``eval``), the recursive merge that validates keys against defaults, and ``--set``
override parsing.
The data layer owns the ``dataset`` defaults (:mod:`recsys.data.defaults`) and each model
class its ``model`` defaults; :func:`recsys.compose.resolve` puts them together. Every key
a user writes must exist in the defaults of its section; an unknown key is an error that
names the closest valid key. Overrides use dotted paths: ``--set train.lr=1e-3 model.n_layers=3``.
"""
from __future__ import annotations

import copy
import difflib
from typing import Any, Mapping

from recsys.errors import ConfigError
from recsys.io import yaml_load

CORE_DEFAULTS: dict[str, Any] = {
    "seed": 2024,
    "device": "auto",
    "threads": None,
    "output_dir": "runs",
    "run_name": None,
    "cache_dir": ".cache/recsys",
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
        "lr_plateau": None,
        "amp": None,
        "tables_in_backward": True,
        "progress": True,
        "tensorboard": False,
    },
    "graphs": {
        "knn_backend": "exact",
        "faiss": {
            "index": "auto",
            "flat_max_rows": 200_000,
            "hnsw_m": 32,
            "ef_construction": 128,
            "ef_search": 128,
            "seed": 0,
        },
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
