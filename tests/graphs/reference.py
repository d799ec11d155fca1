"""Dense brute-force references for the graph builders (small random inputs only)."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def random_interactions(n_users: int, n_items: int, n: int, seed: int,
                        active_users: int | None = None, active_items: int | None = None) -> sp.csr_matrix:
    """Binary R with interactions only among the first active users/items (the rest isolated)."""
    rng = np.random.default_rng(seed)
    users = rng.integers(0, active_users or n_users, n)
    items = rng.integers(0, active_items or n_items, n)
    matrix = sp.csr_matrix((np.ones(n, np.float32), (users, items)), shape=(n_users, n_items))
    matrix.data[:] = 1.0
    return matrix


def ordered_topk(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the k best entries per row: score descending, then index ascending."""
    columns = np.tile(np.arange(scores.shape[1]), (scores.shape[0], 1))
    return np.lexsort((columns, -scores), axis=1)[:, :k]


def cosine(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    unit = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
    return unit @ unit.T


def knn_dense(x: np.ndarray, k: int, weighted: bool = True) -> np.ndarray:
    """D^-1/2 S D^-1/2 of the top-k cosine graph (own row included), dense."""
    sims = cosine(x)
    n = sims.shape[0]
    k = min(k, n)
    top = ordered_topk(np.float32(sims), k)
    out = np.zeros((n, n))
    rows = np.repeat(np.arange(n), k)
    out[rows, top.ravel()] = np.take_along_axis(sims, top, 1).ravel() if weighted else 1.0
    return out / k


def mean_items(r: sp.csr_matrix) -> np.ndarray:
    dense = r.toarray().astype(np.float64)
    degree = dense.sum(1, keepdims=True)
    return np.divide(dense, degree, out=np.zeros_like(dense), where=degree > 0)


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()
