"""A tiny stand-in for ../shared/data: the layouts the bench scripts read, on synthetic data.

``amazon/{baby,sports,clothing,toys}`` hold REARM split folders (train/valid/test.npy, a
``text_feat.npy`` where the real folder has one); ``bundles/clothing`` a BundleRec CSV folder
with text features and category paths. Everything is small enough for a script to run on it in
seconds; the numbers it produces mean nothing.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from recsys.data.dataset import Dataset
from recsys.data.rearm import write_rearm
from recsys.data.synthetic import generate

WITH_TEXT = ("sports", "toys")


def write_amazon(root: Path, name: str, seed: int) -> None:
    data = generate(n_users=70, n_items=45, n_clusters=3, interactions_per_user=9, informative_dim=8, noise_dim=4,
                    seed=seed, name=name)
    features = {"text": data.features["text"]} if name in WITH_TEXT else {}
    write_rearm(Dataset(name, data.n_users, data.n_items, data.train, data.valid, data.test, features,
                        user_ids=data.user_ids, item_ids=data.item_ids), root / "amazon" / name)


def write_bundles(folder: Path, n_items: int = 40, n_bundles: int = 80, seed: int = 0) -> None:
    """BundleRec CSVs: bundles of 3 to 5 items of one of four clusters, sparse ids."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    item_ids = 1000 + 3 * np.arange(n_items)
    cluster = np.arange(n_items) % 4
    rows, owners = [], {}
    for bundle in range(n_bundles):
        members = np.flatnonzero(cluster == bundle % 4)
        for item in rng.choice(members, size=int(rng.integers(3, 6)), replace=False):
            rows.append((500 + bundle, int(item_ids[item])))
        owners[500 + bundle] = int(rng.integers(0, 20))
    pd.DataFrame(rows, columns=["bundle ID", "item ID"]).to_csv(folder / "bundle_item.csv", index=False)
    pd.DataFrame([(u, b, 1) for b, u in owners.items()], columns=["user ID", "bundle ID", "timestamp"]).to_csv(
        folder / "user_bundle.csv", index=False)
    user_item = sorted({(owners[b], i) for b, i in rows})
    pd.DataFrame([(u, i, 1) for u, i in user_item], columns=["user ID", "item ID", "timestamp"]).to_csv(
        folder / "user_item.csv", index=False)
    pd.DataFrame({"item ID": item_ids, "titles": [f"item {i}" for i in item_ids]}).to_csv(
        folder / "item_titles.csv", index=False)
    pd.DataFrame({"item ID": item_ids, "categories": [f"[[Clothing,Kind {c}]]" for c in cluster]}).to_csv(
        folder / "item_categories.csv", index=False)
    text = np.eye(4, dtype=np.float32)[cluster] + 0.2 * rng.standard_normal((n_items, 4)).astype(np.float32)
    np.save(folder / "text_feat.npy", text)
    np.save(folder / "text_feat_item_ids.npy", item_ids)


def write_shared_data(root: Path) -> Path:
    for seed, name in enumerate(("baby", "sports", "clothing", "toys")):
        write_amazon(root, name, seed)
    write_bundles(root / "bundles" / "clothing")
    return root
