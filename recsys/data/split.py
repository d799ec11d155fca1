"""Seeded per-user ratio split (RecBole's ``RS`` split with ``group_by: user``).

For a user with ``n`` interactions and ratios ``(r_train, r_valid, r_test)`` (normalised to
sum 1), valid gets ``floor(r_valid n)`` and test ``floor(r_test n)`` interactions; a held-out
split whose share rounds to zero still gets one interaction while at least two remain for
train. Train keeps the rest, so every user with an interaction keeps at least one train
item. Within a user the interactions are ordered at random (seeded) or by timestamp
(``order="time"``: the earliest go to train, the latest to test; ties keep file order).
"""
from __future__ import annotations

import numpy as np

from recsys.errors import DataError

_EPS = 1e-9


def check_ratios(ratios) -> np.ndarray:
    values = np.asarray(ratios, dtype=np.float64)
    if values.shape != (3,) or not np.isfinite(values).all() or (values < 0).any() or values[0] <= 0:
        raise DataError(f"dataset.split_ratios = {list(ratios)} is invalid; give three non-negative "
                        f"numbers (train, valid, test) with train > 0, e.g. [0.8, 0.1, 0.1]")
    return values / values.sum()


def split_labels(users: np.ndarray, ratios, order: str = "random", seed: int = 0,
                 timestamps: np.ndarray | None = None) -> np.ndarray:
    """Split label per interaction (0 train, 1 valid, 2 test), in the input order."""
    shares = check_ratios(ratios)
    n = users.shape[0]
    if order == "random":
        key = np.random.default_rng(seed).random(n)
        ranked = np.lexsort((key, users))
    elif order == "time":
        if timestamps is None:
            raise DataError("dataset.split_order = 'time' needs a timestamp column in the interaction "
                            "file; add one or use split_order: random")
        ranked = np.lexsort((np.arange(n), timestamps, users))
    else:
        raise DataError(f"dataset.split_order = '{order}' is invalid; use 'random' or 'time'")
    sorted_users = users[ranked]
    counts = np.bincount(users) if n else np.zeros(0, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]) if counts.size else counts
    rank = np.arange(n) - starts[sorted_users]
    total = counts[sorted_users]
    held = [np.floor(shares[k] * total + _EPS).astype(np.int64) for k in (1, 2)]
    for k in (1, 2):
        bump = (held[k - 1] == 0) & (shares[k] > 0) & (total - held[0] - held[1] >= 2)
        held[k - 1] = held[k - 1] + bump
    n_train = total - held[0] - held[1]
    sorted_labels = np.where(rank < n_train, 0, np.where(rank < n_train + held[0], 1, 2))
    labels = np.empty(n, dtype=np.int64)
    labels[ranked] = sorted_labels
    return labels
