"""User interest vectors and the user interest kNN graph (docs/graphs.md §3; REARM, Ma et al. 2025).

P_m = R̄ X_m with R̄ = D_U^-1 R the row-normalised train matrix: the mean feature vector of a
user's train items. A user without train items gets a zero row (the reference code divides
0 by 0 there and gets NaN). The user graph is the cosine kNN graph of the rows of P_m
(:mod:`recsys.graphs.knn`).

Two exact ways to get the similarities, chosen by ``method``:

- ``"direct"``: top-k of P̂ P̂ᵀ in symmetric blocks, O(U² D / 2) products and O(chunk × U)
  memory.
- ``"gram"``: P Pᵀ = R̄ (X Xᵀ) R̄ᵀ, so with the item Gram matrix K = X Xᵀ (I² D / 2 products,
  4·I² bytes held) each block of user rows is R̄_c K R̄ᵀ, two sparse-dense products. Cheaper
  when there are fewer items than users and D is large (Clothing: 39,387 users, 23,033 items,
  4096-d image features: about 2.8 times fewer products), at the price of a dense I × I matrix.
Either way the float32 products only propose candidates and the kept neighbours are decided
exactly (:func:`recsys.graphs.knn.exact_topk`), so both methods keep the same neighbours;
only the float32 rounding of some similarity values can differ.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp
import torch

from recsys.graphs.knn import (MARGIN, as_float32, cosine_topk, default_chunk, exact_topk, highest_precision,
                              knn_size, neighbour_graph, random_projection)
from recsys.graphs.planning import GraphSize
from recsys.graphs.sparse import to_torch_csr

METHODS = ("direct", "gram")


def mean_items_matrix(interactions: sp.spmatrix) -> sp.csr_matrix:
    """R̄ = D_U^-1 R (binarised), float32 CSR; rows of users without items are zero."""
    binary = sp.csr_matrix(interactions, dtype=np.float32, copy=True)
    binary.sum_duplicates()
    binary.data[:] = 1.0
    degree = np.diff(binary.indptr).astype(np.float64)
    inverse = np.divide(1.0, degree, out=np.zeros_like(degree), where=degree > 0)
    return (sp.diags(inverse) @ binary).tocsr().astype(np.float32)


def user_interest(interactions: sp.spmatrix, features, device: torch.device | str = "cpu") -> torch.Tensor:
    """P = R̄ X as a dense float32 U × D tensor on ``device``."""
    mean = to_torch_csr(mean_items_matrix(interactions), device)
    return torch.sparse.mm(mean, as_float32(features, device))


def user_interest_size(n_users: int, dim: int) -> GraphSize:
    """Size of :func:`user_interest`: a dense U × D matrix."""
    return GraphSize((int(n_users), int(dim)), int(n_users) * int(dim), exact=True, dense=True)


def interest_knn_size(n_users: int, n_items: int, k: int, dim: int, method: str = "direct",
                      chunk_size: int | None = None) -> GraphSize:
    """Size of :func:`interest_knn_graph`: that of a kNN graph over the U interest vectors
    (:func:`recsys.graphs.knn.knn_size`), whose work also holds P = R̄X (U·D floats), or, with
    ``method="gram"``, the item Gram matrix (I² floats) instead."""
    size = knn_size(n_users, k, dim, chunk_size)
    held = int(n_items) ** 2 if method == "gram" else int(n_users) * int(dim)
    return dataclasses.replace(size, work=size.work + 4 * held)


def _gram_candidates(mean_np: sp.csr_matrix, x: torch.Tensor, k: int,
                     chunk: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Float32 top-k candidates of the cosine of P = R̄X from K = X Xᵀ, and per-row error bounds.

    The bound for row u is (D + max degree + 10)·2^-23 · a_u · max_v a_v with
    a_u = (Σ_i R̄_ui ‖x_i‖) / ‖P_u‖: the float32 errors of K and of the sparse sums are
    relative to Σ R̄ R̄ ‖x_i‖ ‖x_j‖, not to ‖P_u‖ ‖P_v‖.
    """
    n_items, dim = x.shape
    gram = torch.empty(n_items, n_items, device=x.device)
    step = default_chunk(n_items)
    for start in range(0, n_items, step):
        block = x[start:start + step] @ x[start:].T
        gram[start:start + step, start:] = block
        gram[start + step:, start:start + step] = block[:, step:].T
        del block
    mean = to_torch_csr(mean_np, x.device)
    n_users = mean.shape[0]
    norms = torch.empty(n_users, device=x.device)
    for start in range(0, n_users, chunk):
        norms[start:start + chunk] = torch.sparse.mm(to_torch_csr(mean_np[start:start + chunk], x.device), x).norm(dim=1)
    inverse = torch.where(norms > 0, 1.0 / norms, torch.zeros_like(norms))
    spread = torch.sparse.mm(mean, x.norm(dim=1, keepdim=True)).flatten() * inverse
    max_degree = int(np.diff(mean_np.indptr).max(initial=0))
    error = (dim + max_degree + 10) * 2.0 ** -23 * spread * spread.max()
    values = torch.empty(n_users, k, device=x.device)
    indices = torch.empty(n_users, k, dtype=torch.long, device=x.device)
    for start in range(0, n_users, chunk):
        rows = to_torch_csr(mean_np[start:start + chunk], x.device)
        left = torch.sparse.mm(rows, gram)                       # R̄_c K, c × I
        sims = torch.sparse.mm(mean, left.T.contiguous()).T       # R̄_c K R̄ᵀ, c × U
        sims = sims * inverse[start:start + chunk, None] * inverse[None, :]
        values[start:start + chunk], indices[start:start + chunk] = torch.topk(sims, k, dim=1)
    return values, indices, error


def interest_topk(interactions: sp.spmatrix, features, k: int, method: str = "direct",
                  chunk_size: int | None = None,
                  device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top-k cosine neighbours of the user interest vectors: (similarities, indices)."""
    if method not in METHODS:
        raise ValueError(f"method '{method}' is not one of {METHODS}")
    if method == "direct":
        return cosine_topk(user_interest(interactions, features, device), k, chunk_size, device)
    mean_np = mean_items_matrix(interactions)
    x = as_float32(features, device)
    n_users = mean_np.shape[0]
    k = min(int(k), n_users)
    chunk = int(chunk_size) if chunk_size else default_chunk(max(n_users, x.shape[0]))
    with highest_precision():
        values, indices, error = _gram_candidates(mean_np, x, min(n_users, k + MARGIN), chunk)
        return exact_topk(user_interest(interactions, x, device), values, indices, k, error, chunk)


def interest_knn_graph(interactions: sp.spmatrix, features, k: int, weighted: bool = True,
                       method: str = "direct", chunk_size: int | None = None,
                       device: torch.device | str = "cpu", projection: int | None = None,
                       seed: int = 0) -> torch.Tensor:
    """Normalised cosine kNN graph (U × U sparse CSR) of the user interest vectors R̄X.

    Exact unless ``projection`` is set: then the item features are randomly projected first
    (:func:`recsys.graphs.knn.random_projection`; R̄(XΩ) = (R̄X)Ω, so this is the projection
    of the interest vectors), an explicit approximation.
    """
    if int(k) < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    features = random_projection(features, projection, seed, device)
    values, indices = interest_topk(interactions, features, k, method, chunk_size, device)
    return neighbour_graph(values, indices, weighted)
