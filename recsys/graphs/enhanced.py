"""SIGER's enhanced item semantic graphs (docs/graphs.md §6, docs/models/siger.md §1).

Zhang et al., "Semantic Item Graph Enhancement for Multimodal Recommendation", arXiv
2508.06154 (2025). For modality m, with S_m the unit-weight kNN graph of its features
(docs/graphs.md §2, D^-1/2 S D^-1/2 normalised, so every row sums to 1) and C the top-k item
co-occurrence graph with row-normalised counts,

    C_ij = c_ij / Σ_{j' kept} c_ij'      (c = RᵀR with zero diagonal, top-k per row, ties: lower index)
    Ŝ_m  = rownorm((1 − β) S_m + β C),   rownorm(A) = D^-1 A with D the row sums.

Unlike the softmax co-occurrence graph of docs/graphs.md §4 (REARM), rows are neither padded nor
given popular items: an item that co-occurs with nothing has an empty row in C, and the final
row normalisation gives it its kNN row alone. The top-k counts and the mixing are the shared
builders of :mod:`recsys.graphs.cooccurrence` and :func:`recsys.graphs.mix_graphs`.
"""
from __future__ import annotations

import dataclasses

import scipy.sparse as sp
import torch

from recsys.graphs.cooccurrence import cooccurrence_size, cooccurrence_topk
from recsys.graphs.knn import mix_graphs, mix_size, to_csr
from recsys.graphs.planning import GraphSize


def row_normalise(adj: torch.Tensor) -> torch.Tensor:
    """D^-1 A of a sparse CSR matrix: non-empty rows sum to 1, empty rows stay empty."""
    adj = adj if adj.layout == torch.sparse_csr else adj.to_sparse_csr()
    crow, values = adj.crow_indices(), adj.values()
    rows = torch.repeat_interleave(torch.arange(adj.shape[0], device=values.device), crow.diff())
    sums = torch.zeros(adj.shape[0], dtype=torch.float64, device=values.device).index_add_(0, rows, values.double())
    scale = torch.where(sums != 0, 1.0 / sums, torch.zeros_like(sums))
    return torch.sparse_csr_tensor(crow, adj.col_indices(), (values.double() * scale[rows]).to(values.dtype),
                                   adj.shape, device=values.device, check_invariants=False)


def item_cooccurrence_rownorm(interactions: sp.spmatrix, k: int, chunk_size: int | None = None,
                              device: torch.device | str = "cpu") -> torch.Tensor:
    """C with row-normalised top-k counts of RᵀR (I × I sparse CSR on ``device``)."""
    counts, indices, n_neighbours = cooccurrence_topk(sp.csr_matrix(interactions).T, k, chunk_size)
    n, kk = indices.shape
    kept = torch.arange(kk)[None, :] < n_neighbours[:, None]
    weights = counts.double() / counts.double().sum(dim=1, keepdim=True).clamp_min(1.0)
    rows = torch.arange(n)[:, None].expand(n, kk)[kept]
    return to_csr(rows, indices[kept], weights[kept], (n, n)).to(device)


def item_cooccurrence_rownorm_size(n_items: int, k: int, paths: int = 0) -> GraphSize:
    """Size bound of :func:`item_cooccurrence_rownorm`: at most min(k, I − 1) partners per item
    (the diagonal is zero, rows are not padded). Work as
    :func:`recsys.graphs.cooccurrence.cooccurrence_size`."""
    return dataclasses.replace(cooccurrence_size(n_items, k, paths),
                               nnz=int(n_items) * min(int(k), max(int(n_items) - 1, 0)))


def enhanced_item_graph(knn: torch.Tensor, cooccurrence: torch.Tensor | None, beta: float) -> torch.Tensor:
    """Ŝ = rownorm((1 − β) S + β C); ``cooccurrence`` may be None when β = 0."""
    beta = _checked(beta)
    return row_normalise(mix_graphs([(1.0 - beta, knn), (beta, cooccurrence)]))


def enhanced_item_graph_size(knn: GraphSize, cooccurrence: GraphSize | None, beta: float) -> GraphSize:
    """Size bound of :func:`enhanced_item_graph` from the sizes of S and C (their sum)."""
    beta = _checked(beta)
    return mix_size([(1.0 - beta, knn), (beta, cooccurrence)])


def _checked(beta: float) -> float:
    beta = float(beta)
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"co-occurrence weight beta must lie in [0, 1], got {beta}")
    return beta
