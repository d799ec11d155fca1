"""A small REARM input that the public reference code and recsys both read: the most popular
items of a real split, their well-observed users, real text and stand-in image features.

From a REARM split folder (``train.npy``/``valid.npy``/``test.npy``, int64 (2, N), and
``text_feat.npy``; e.g. ../shared/data/amazon/sports):

1. keep the ``n_items`` items with the most train interactions (ties: lower item index);
2. restrict every split to those items and keep the users that still have at least
   ``min_train`` train interactions and at least one valid and one test interaction;
3. restrict every split to those users, drop items left without any interaction, and
   renumber users and items densely in the order of their original index (the reference
   counts users and items as the distinct ids over all splits, so ids must be dense);
4. text features: the source's ``text_feat.npy`` rows of the kept items; image features:
   seeded standard-normal stand-ins of ``image_dim`` columns (``numpy.random.default_rng(seed)``),
   since no image features are available here.

The folder is written with :func:`recsys.data.rearm.write_rearm`: ``train/valid/test.npy``,
``image_feat.npy``, ``text_feat.npy`` (the reference's ``data/<name>/`` layout, which is also
ours) plus ``item_ids.tsv``/``user_ids.tsv`` mapping each new index to the source's raw id (its
ASIN for the Amazon items; read by recsys, ignored by the reference). Both sides therefore read the same files.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from recsys.data import SPLITS, DataError, Dataset
from recsys.data.rearm import read_rearm, write_rearm


def _count(values: np.ndarray, size: int) -> np.ndarray:
    return np.bincount(values, minlength=size)


def select_parity_subset(dataset: Dataset, n_items: int, min_train: int) -> tuple[np.ndarray, np.ndarray]:
    """Source indices of the kept users and items (ascending), per steps 1-3 of the module doc."""
    if n_items < 1 or min_train < 1:
        raise ValueError(f"n_items ({n_items}) and min_train ({min_train}) must be positive")
    popularity = _count(dataset.train[1], dataset.n_items)
    ranked = np.lexsort((np.arange(dataset.n_items), -popularity))
    popular = np.zeros(dataset.n_items, dtype=bool)
    popular[ranked[:n_items]] = True
    per_user = {s: _count(dataset.split(s)[0][popular[dataset.split(s)[1]]], dataset.n_users) for s in SPLITS}
    users = np.flatnonzero((per_user["train"] >= min_train) & (per_user["valid"] >= 1) & (per_user["test"] >= 1))
    if users.size == 0:
        raise DataError(f"no user of '{dataset.name}' keeps {min_train} train interactions and a valid and a "
                        f"test interaction among its {n_items} most popular items; lower min_train or raise n_items")
    kept_user = np.zeros(dataset.n_users, dtype=bool)
    kept_user[users] = True
    seen = np.zeros(dataset.n_items, dtype=bool)
    for split in SPLITS:
        u, i = dataset.split(split)
        seen[i[kept_user[u] & popular[i]]] = True
    return users, np.flatnonzero(seen)


def build_parity_dataset(source: str | Path, out: str | Path, n_items: int = 3000, min_train: int = 5,
                         image_dim: int = 4096, seed: int = 0, name: str | None = None) -> Dataset:
    """Build the subset of ``source`` described in the module docstring, write it to ``out``
    (created) and return it (modalities ``image`` and ``text``)."""
    source = Path(source)
    if not (source / "text_feat.npy").is_file():
        raise DataError(f"{source / 'text_feat.npy'} is missing: the parity input uses the source's real "
                        "text features (a REARM folder with text_feat.npy, e.g. ../shared/data/amazon/sports)")
    full = read_rearm(source, modalities=["text"])
    users, items = select_parity_subset(full, n_items, min_train)
    user_index = np.full(full.n_users, -1, dtype=np.int64)
    user_index[users] = np.arange(users.size)
    item_index = np.full(full.n_items, -1, dtype=np.int64)
    item_index[items] = np.arange(items.size)
    splits = {}
    for split in SPLITS:
        u, i = full.split(split)
        keep = (user_index[u] >= 0) & (item_index[i] >= 0)
        splits[split] = np.stack([user_index[u[keep]], item_index[i[keep]]])
    rng = np.random.default_rng(seed)
    features = {"image": rng.standard_normal((items.size, image_dim), dtype=np.float32),
                "text": np.ascontiguousarray(full.features["text"][items], dtype=np.float32)}
    subset = Dataset(name or f"{full.name}-top{n_items}", int(users.size), int(items.size), splits["train"],
                     splits["valid"], splits["test"], features, user_ids=full.user_ids[users], item_ids=full.item_ids[items])
    write_rearm(subset, out)
    return subset
