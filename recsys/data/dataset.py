"""The one dataset type every reader produces and every model consumes."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import scipy.sparse as sp


SPLITS = ("train", "valid", "test")


@dataclass(eq=False)
class Dataset:
    """Implicit-feedback data with a fixed train/valid/test split.

    ``train``/``valid``/``test`` are int64 arrays of shape (2, N): row 0 holds user indices
    in ``[0, n_users)``, row 1 item indices in ``[0, n_items)`` (the REARM ``.npy`` layout).
    ``features`` maps a modality name (``"text"``, ``"image"``, ...) to a float32 array with
    one row per item. ``user_ids``/``item_ids`` hold the raw ids of each index, so outputs
    can be mapped back to the ids of the original files.
    """

    name: str
    n_users: int
    n_items: int
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    features: dict[str, np.ndarray] = field(default_factory=dict)
    user_ids: np.ndarray | None = None
    item_ids: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.user_ids is None:
            self.user_ids = np.arange(self.n_users).astype(str)
        if self.item_ids is None:
            self.item_ids = np.arange(self.n_items).astype(str)

    def split(self, name: str) -> np.ndarray:
        if name not in SPLITS:
            raise KeyError(f"unknown split '{name}', expected one of {SPLITS}")
        return getattr(self, name)

    def csr(self, name: str) -> sp.csr_matrix:
        """Binary n_users × n_items matrix of one split (float32, sorted indices)."""
        return self._csr_cache[name]

    @cached_property
    def _csr_cache(self) -> dict[str, sp.csr_matrix]:
        out = {}
        for name in SPLITS:
            users, items = self.split(name)
            matrix = sp.csr_matrix(
                (np.ones(users.shape[0], dtype=np.float32), (users, items)),
                shape=(self.n_users, self.n_items),
            )
            matrix.sum_duplicates()
            matrix.data[:] = 1.0
            matrix.sort_indices()
            out[name] = matrix
        return out

    def known_csr(self) -> sp.csr_matrix:
        """All interactions of all splits (for negatives that exclude every known item)."""
        total = self.csr("train") + self.csr("valid") + self.csr("test")
        total.data[:] = 1.0
        return total

    def fingerprint(self) -> str:
        """Content hash of the splits and features (keys graph caches)."""
        digest = hashlib.sha256()
        digest.update(f"{self.n_users},{self.n_items}".encode())
        for name in SPLITS:
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(self.split(name), dtype=np.int64).tobytes())
        for modality in sorted(self.features):
            feat = np.ascontiguousarray(self.features[modality])
            digest.update(modality.encode())
            digest.update(str(feat.shape).encode())
            digest.update(feat.tobytes())
        return digest.hexdigest()[:20]

    def to_pyg(self):
        """This dataset as a ``torch_geometric.data.HeteroData`` (user and item nodes, item features
        by modality, train/valid/test edges); needs ``pip install 'recsys[pyg]'``. See
        :mod:`recsys.data.pyg`."""
        from recsys.data.pyg import to_hetero_data

        return to_hetero_data(self)

    def stats(self) -> dict:
        """Users, items, interactions per split, density and feature shapes."""
        n_train = int(self.train.shape[1])
        total = n_train + int(self.valid.shape[1]) + int(self.test.shape[1])
        return {
            "name": self.name,
            "users": self.n_users,
            "items": self.n_items,
            "interactions": total,
            "train": n_train,
            "valid": int(self.valid.shape[1]),
            "test": int(self.test.shape[1]),
            "sparsity": 1.0 - total / max(1, self.n_users * self.n_items),
            "features": {m: list(f.shape) for m, f in self.features.items()},
        }
