"""Synthetic bundles with planted structure and a tiny BundleRec CSV folder (test helpers)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from recsys.data.bundles import BundleDataset, split_bundles


def planted_bundles(n_items: int = 120, n_clusters: int = 6, n_bundles: int = 360, n_users: int = 60,
                    seed: int = 0) -> BundleDataset:
    """Items in clusters; every bundle holds 3-6 items of one cluster.

    Item popularity is skewed independently of the clusters (a few hub items per cluster get
    most draws), so popularity is a fair but beatable baseline. Features: a noisy one-hot of
    the cluster ("text") and pure noise ("noise"). Each user owns bundles of one cluster and
    interacts with the items of their train bundles.
    """
    rng = np.random.default_rng(seed)
    cluster = np.arange(n_items) % n_clusters
    weight = rng.pareto(1.5, n_items) + 0.1
    rows = []
    owner = rng.integers(0, n_users, n_bundles)
    for bundle in range(n_bundles):
        members = np.flatnonzero(cluster == owner[bundle] % n_clusters)
        p = weight[members] / weight[members].sum()
        size = int(rng.integers(3, 7))
        rows += [(bundle, int(i)) for i in rng.choice(members, size=size, replace=False, p=p)]
    pairs = np.array(rows, dtype=np.int64).T
    parts = split_bundles(pairs, n_bundles, (0.7, 0.15, 0.15), seed)
    train = parts["train"]
    ui = np.unique(np.stack([owner[train[0]], train[1]]), axis=1)
    features = {
        "text": (np.eye(n_clusters)[cluster] + 0.3 * rng.standard_normal((n_items, n_clusters))).astype(np.float32),
        "noise": rng.standard_normal((n_items, 5)).astype(np.float32),
    }
    empty = np.zeros((2, 0), dtype=np.int64)
    return BundleDataset(name="planted_bundles", n_users=n_users, n_items=n_items, train=ui, valid=empty,
                         test=empty, features=features, n_bundles=n_bundles, bundle_pairs=parts,
                         item_titles=np.array([f"item {i} of cluster {cluster[i]}" for i in range(n_items)],
                                              dtype=object))



def write_bundlerec_folder(folder: Path) -> dict:
    """A 4-bundle BundleRec CSV folder with sparse ids; returns the raw tables for checks."""
    folder.mkdir(parents=True, exist_ok=True)
    bundle_item = {10: [501, 502], 11: [502, 503, 504], 12: [505, 506, 507, 508], 13: [501, 509]}
    owners = {10: 7, 11: 7, 12: 3, 13: 9}
    pd.DataFrame([(b, i) for b, items in bundle_item.items() for i in items],
                 columns=["bundle ID", "item ID"]).to_csv(folder / "bundle_item.csv", index=False)
    pd.DataFrame([(u, b, 100) for b, u in owners.items()],
                 columns=["user ID", "bundle ID", "timestamp"]).to_csv(folder / "user_bundle.csv", index=False)
    ui = sorted({(owners[b], i) for b, items in bundle_item.items() for i in items} | {(5, 503)})
    pd.DataFrame([(u, i, 100) for u, i in ui],
                 columns=["user ID", "item ID", "timestamp"]).to_csv(folder / "user_item.csv", index=False)
    items = sorted({i for items in bundle_item.values() for i in items})
    pd.DataFrame({"item ID": items, "titles": [f"title of {i}" for i in items]}).to_csv(
        folder / "item_titles.csv", index=False)
    categories = {i: ("[[Clothing, Shoes & Jewelry,Women,Shoes]]" if i % 2 else
                      "[[Clothing, Shoes & Jewelry,Women,Clothing],[Clothing, Shoes & Jewelry,Novelty, Costumes & More]]")
                  for i in items}
    pd.DataFrame({"item ID": list(categories), "categories": list(categories.values())}).to_csv(
        folder / "item_categories.csv", index=False)
    shuffled = np.array(items[::-1], dtype=np.int64)
    np.save(folder / "text_feat.npy", (shuffled[:, None] * np.ones((1, 3))).astype(np.float32))
    np.save(folder / "text_feat_item_ids.npy", shuffled)
    return {"bundle_item": bundle_item, "owners": owners, "user_item": ui, "items": items}
