"""Bundle data: bundle-item sets, user-item feedback, item features, and the bundle split.

A :class:`BundleDataset` is a :class:`~recsys.data.dataset.Dataset` whose ``train`` split holds
the user-item interactions a model may learn from (item-level user feedback, used for the
user-item graph) and whose ``valid``/``test`` user-item splits are empty; the bundles live in
``bundle_pairs``, int64 arrays of shape (2, N) with row 0 a bundle index and row 1 an item
index, under the parts ``train``, ``valid_input``, ``valid_gt``, ``test_input``, ``test_gt``.

Bundle split (docs/models/clhe.md, as in CLHE's released data, Ma et al., WSDM 2024): bundles are
split into train / valid / test bundles by ``ratios`` (default 8:1:1) with a seeded
permutation; only bundles with at least two items can be held out. For every held-out bundle
of ``n`` items a seeded random ``clamp(floor(n / 2), 1, n - 1)`` items are the input and the
others the ground truth, so input and ground truth are disjoint and both non-empty.

Formats (``dataset.format``): ``bundle_csv`` (BundleRec CSV layout, :mod:`recsys.data.bundle_csv`)
and ``clhe`` (CLHE's released layout, :mod:`recsys.data.clhe_format`).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from recsys.data.dataset import Dataset
from recsys.data.split import check_ratios
from recsys.errors import DataError

BUNDLE_PARTS = ("train", "valid_input", "valid_gt", "test_input", "test_gt")
BUNDLE_FORMATS = ("bundle_csv", "clhe")
HELD_OUT = ("valid", "test")


def _empty_pairs() -> np.ndarray:
    return np.zeros((2, 0), dtype=np.int64)


@dataclass(eq=False)
class BundleDataset(Dataset):
    """Bundles over the items of a user-item :class:`Dataset` (see the module docstring).

    ``bundle_ids`` are the raw ids of the bundle indices, ``item_titles`` an optional title per
    item (for exports), ``cf_features`` an optional pre-trained item embedding shipped with
    the data (CLHE's ``item_cf_feature.pt``).
    """

    n_bundles: int = 0
    bundle_pairs: dict[str, np.ndarray] = field(default_factory=dict)
    bundle_ids: np.ndarray | None = None
    item_titles: np.ndarray | None = None
    cf_features: np.ndarray | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.bundle_ids is None:
            self.bundle_ids = np.arange(self.n_bundles).astype(str)
        for part in BUNDLE_PARTS:
            pairs = np.asarray(self.bundle_pairs.get(part, _empty_pairs()), dtype=np.int64).reshape(2, -1)
            self.bundle_pairs[part] = pairs
            if pairs.size and (pairs[0].min() < 0 or pairs[0].max() >= self.n_bundles
                               or pairs[1].min() < 0 or pairs[1].max() >= self.n_items):
                raise DataError(f"bundle part '{part}' of dataset '{self.name}' has a bundle index outside "
                                f"[0, {self.n_bundles}) or an item index outside [0, {self.n_items})")
        for split in HELD_OUT:
            overlap = self.bundle_csr(f"{split}_input").multiply(self.bundle_csr(f"{split}_gt"))
            if overlap.nnz:
                bundle = int(overlap.tocoo().row[0])
                raise DataError(f"{split} bundle {self.bundle_ids[bundle]} has items both in its input and in "
                                f"its ground truth; the two halves of a held-out bundle must be disjoint")

    def bundle_csr(self, part: str) -> sp.csr_matrix:
        """Binary n_bundles × n_items matrix of one bundle part (float32, sorted indices)."""
        if part not in BUNDLE_PARTS:
            raise KeyError(f"unknown bundle part '{part}', expected one of {BUNDLE_PARTS}")
        bundles, items = self.bundle_pairs[part]
        matrix = sp.csr_matrix((np.ones(bundles.size, dtype=np.float32), (bundles, items)),
                               shape=(self.n_bundles, self.n_items))
        matrix.sum_duplicates()
        matrix.data[:] = 1.0
        matrix.sort_indices()
        return matrix

    def heldout_bundles(self, split: str) -> np.ndarray:
        """Sorted indices of the ``split`` bundles that have ground-truth items."""
        return np.unique(self.bundle_pairs[f"{split}_gt"][0])

    def train_bundles(self) -> np.ndarray:
        return np.unique(self.bundle_pairs["train"][0])

    def fingerprint(self) -> str:
        """Content hash of the user-item data, features and every bundle part."""
        digest = hashlib.sha256(super().fingerprint().encode())
        digest.update(str(self.n_bundles).encode())
        for part in BUNDLE_PARTS:
            digest.update(part.encode())
            digest.update(np.ascontiguousarray(self.bundle_pairs[part]).tobytes())
        if self.cf_features is not None:
            digest.update(np.ascontiguousarray(self.cf_features).tobytes())
        return digest.hexdigest()[:20]

    def stats(self) -> dict:
        out = super().stats()
        out["bundles"] = self.n_bundles
        out.update({f"bundle_{part}": int(self.bundle_pairs[part].shape[1]) for part in BUNDLE_PARTS})
        for split in HELD_OUT:
            out[f"{split}_bundles"] = int(self.heldout_bundles(split).size)
        out["train_bundles"] = int(self.train_bundles().size)
        return out


def padded_rows(csr: sp.csr_matrix, rows: np.ndarray, pad: int) -> np.ndarray:
    """The column indices of ``csr[rows]`` as an int64 (len(rows), max length) array padded with ``pad``."""
    sub = csr[rows]
    lengths = np.diff(sub.indptr)
    out = np.full((len(rows), max(1, int(lengths.max(initial=0)))), pad, dtype=np.int64)
    positions = np.arange(sub.indices.size) - np.repeat(sub.indptr[:-1], lengths)
    out[np.repeat(np.arange(len(rows)), lengths), positions] = sub.indices
    return out


def split_bundles(pairs: np.ndarray, n_bundles: int, ratios=(0.8, 0.1, 0.1), seed: int = 2024) -> dict[str, np.ndarray]:
    """Seeded bundle split with half of each held-out bundle as input (module docstring).

    ``pairs`` is a (2, N) array of (bundle, item) indices without duplicates; the result maps
    each of :data:`BUNDLE_PARTS` to its (2, M) pairs, sorted by bundle then item. The outcome
    depends only on the set of pairs, ``ratios`` and ``seed``.
    """
    shares = check_ratios(ratios)
    order = np.lexsort((pairs[1], pairs[0]))
    bundles, items = pairs[0][order], pairs[1][order]
    sizes = np.bincount(bundles, minlength=n_bundles)
    present = np.flatnonzero(sizes > 0)
    eligible = np.flatnonzero(sizes >= 2)
    rng = np.random.default_rng(seed)
    n_valid = int(round(shares[1] * present.size))
    n_test = int(round(shares[2] * present.size))
    if n_valid + n_test > eligible.size:
        raise DataError(f"the split {list(ratios)} needs {n_valid + n_test} held-out bundles but only "
                        f"{eligible.size} bundles have two or more items; lower the valid/test ratios")
    shuffled = rng.permutation(eligible)
    role = np.zeros(n_bundles, dtype=np.int64)
    role[shuffled[:n_valid]] = 1
    role[shuffled[n_valid:n_valid + n_test]] = 2
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    is_input = np.zeros(bundles.size, dtype=bool)
    for bundle in np.flatnonzero(role > 0):
        n = int(sizes[bundle])
        n_input = min(max(n // 2, 1), n - 1)
        chosen = rng.permutation(n)[:n_input]
        is_input[starts[bundle] + chosen] = True
    item_role = role[bundles]
    masks = {
        "train": item_role == 0,
        "valid_input": (item_role == 1) & is_input,
        "valid_gt": (item_role == 1) & ~is_input,
        "test_input": (item_role == 2) & is_input,
        "test_gt": (item_role == 2) & ~is_input,
    }
    return {part: np.stack([bundles[mask], items[mask]]) for part, mask in masks.items()}

