"""Shared fixtures: a small planted dataset and the path to ../shared/data."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from recsys.data import Dataset

# Tests use tiny tensors: one thread avoids OpenMP start-up and spin costs that dominate
# them, above all when the 2 CI cores are shared.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("RECSYS_SHARED_DATA", REPO.parent / "shared" / "data"))


def planted_dataset(n_users: int = 240, n_items: int = 120, n_clusters: int = 4, per_user: int = 14,
                    seed: int = 0) -> Dataset:
    """Users and items in clusters; each user interacts only inside their cluster.

    A few globally popular items appear in every cluster, so popularity is a fair but
    beatable baseline. Per user: 2 valid and 2 test items, the rest train.
    """
    rng = np.random.default_rng(seed)
    item_cluster = np.arange(n_items) % n_clusters
    popular = rng.choice(n_items, size=4, replace=False)
    rows = {"train": [], "valid": [], "test": []}
    for user in range(n_users):
        own = np.flatnonzero(item_cluster == user % n_clusters)
        pool = np.union1d(own, popular)
        items = rng.choice(pool, size=min(per_user, pool.size), replace=False)
        for split, chunk in (("valid", items[:2]), ("test", items[2:4]), ("train", items[4:])):
            rows[split].extend((user, int(i)) for i in chunk)
    arrays = {k: np.array(v, dtype=np.int64).T for k, v in rows.items()}
    features = {"text": np.eye(n_clusters, dtype=np.float32)[item_cluster]
                + 0.1 * rng.standard_normal((n_items, n_clusters)).astype(np.float32)}
    return Dataset("planted", n_users, n_items, arrays["train"], arrays["valid"], arrays["test"], features)


@pytest.fixture
def planted():
    return planted_dataset()


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (set RECSYS_SHARED_DATA)")
    return SHARED_DATA
