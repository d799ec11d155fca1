"""Vectorised uniform negative sampling for (user, positive, negative) triples.

For every train pair (u, p) one item n is drawn uniformly from the items u has not
interacted with (``exclude`` = train, the protocol default, or every known item, the REARM
reference's choice). Draws are made for all pairs at once; the few that hit an excluded item
are redrawn, again all at once, until none is left. Membership is tested with a sorted array
of keys u·n_items + i and ``searchsorted``, never a Python loop over interactions.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recsys.errors import DataError


class NegativeSampler:
    def __init__(self, exclude: sp.csr_matrix, max_rounds: int = 100) -> None:
        self.n_items = exclude.shape[1]
        coo = exclude.tocoo()
        self.keys = np.unique(coo.row.astype(np.int64) * self.n_items + coo.col.astype(np.int64))
        degrees = np.diff(exclude.indptr)
        full = np.flatnonzero(degrees >= self.n_items)
        if full.size:
            raise DataError(f"user index {int(full[0])} has interacted with every item in the excluded splits; no "
                            "negative exists for them: remove that user, or set train.negatives_exclude: train")
        self.max_rounds = max_rounds

    def _excluded(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        keys = users * self.n_items + items
        pos = np.searchsorted(self.keys, keys)
        pos = np.minimum(pos, self.keys.size - 1)
        return self.keys[pos] == keys

    def sample(self, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One negative item per entry of ``users``."""
        users = users.astype(np.int64)
        negatives = rng.integers(0, self.n_items, size=users.shape[0], dtype=np.int64)
        bad = np.flatnonzero(self._excluded(users, negatives))
        for _ in range(self.max_rounds):
            if bad.size == 0:
                return negatives
            negatives[bad] = rng.integers(0, self.n_items, size=bad.size, dtype=np.int64)
            bad = bad[self._excluded(users[bad], negatives[bad])]
        raise DataError("negative sampling did not converge: some users have interacted with almost every item; "
                        "remove them, or set train.negatives_exclude: train")
