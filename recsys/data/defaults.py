"""Defaults of a run config's ``dataset`` section (owned by the data layer).

``format`` picks the reader (``synthetic``, ``rearm``, ``mmrec``, ``recbole``, ``bundle_csv``,
``clhe``); ``path`` its folder; ``modalities`` the feature files to load (None: all found);
``split_*`` split RecBole files and bundles; ``synthetic`` parametrises the built-in generator
(:mod:`recsys.data.synthetic`).
"""
from __future__ import annotations

from typing import Any

DATASET_DEFAULTS: dict[str, Any] = {
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
        "n_clusters": 32,
        "interactions_per_user": 10,
        "noise_dim": 32,
        "informative_dim": 32,
        "popularity_skew": 1.0,
        "seed": 0,
    },
}
