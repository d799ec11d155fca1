"""Degree-sensitive edge pruning of the user-item graph (FREEDOM).

Zhou & Shen, "A Tale of Two Graphs: Freezing and Denoising Graph Structures for Multimodal
Recommendation", ACM MM 2023, §3.2, as in the MMRec code: before every training epoch keep
max(1, ⌊(1 − ρ)|E|⌋) of the train edges, drawn without replacement with probability
proportional to

    p_(u,i) = 1 / √(d_u · d_i)          (d = degrees in the full train graph),

so edges between high-degree nodes (the likeliest noise) are dropped more often. The kept
edges form a new bipartite graph, normalised like the full one with the degrees of the kept
graph, Â' = D'^-1/2 A' D'^-1/2 (:func:`recsys.graphs.bipartite.build_bipartite`; nodes left
without an edge get 0).

The draw of an epoch is a function of (seed, epoch) alone: a fresh generator keyed by both
(:func:`epoch_generator`), over the edges in CSR order (by user, then item). Every rank of a
data-parallel run, and a run resumed at that epoch, therefore draws the same graph, whatever
else has used the global random state.
"""
from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
import torch

from recsys.graphs.bipartite import build_bipartite


def degree_edge_weights(users: torch.Tensor, items: torch.Tensor, n_users: int, n_items: int) -> torch.Tensor:
    """Sampling weights 1/√(d_u d_i) of every edge (users[k], items[k])."""
    d_user = torch.bincount(users, minlength=n_users).to(torch.float32)
    d_item = torch.bincount(items, minlength=n_items).to(torch.float32)
    return (d_user[users] * d_item[items]).rsqrt()


def kept_edges(n_edges: int, drop_ratio: float) -> int:
    """max(1, ⌊(1 − ρ)|E|⌋) (all edges when ρ = 0); ρ must lie in [0, 1)."""
    if not 0.0 <= drop_ratio < 1.0:
        raise ValueError(f"edge drop ratio must lie in [0, 1), got {drop_ratio}")
    if drop_ratio == 0.0:
        return int(n_edges)
    return max(1, math.floor(n_edges * (1.0 - drop_ratio) + 1e-9))  # 1e-9: 5·(1−0.8) is 0.999…


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A CPU generator seeded from (seed, epoch) through numpy's SeedSequence."""
    state = np.random.SeedSequence([int(seed), int(epoch)]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


def sample_edges(users: torch.Tensor, items: torch.Tensor, n_users: int, n_items: int, drop_ratio: float,
                 generator: torch.Generator) -> torch.Tensor:
    """Positions of the kept edges, drawn without replacement ∝ 1/√(d_u d_i) (all when ρ = 0)."""
    n_keep = kept_edges(users.shape[0], drop_ratio)
    if n_keep == users.shape[0]:
        return torch.arange(n_keep)
    weights = degree_edge_weights(users, items, n_users, n_items)
    return torch.multinomial(weights, n_keep, replacement=False, generator=generator)


def pruned_bipartite(interactions: sp.spmatrix, drop_ratio: float, seed: int, epoch: int,
                     device: torch.device | str = "cpu") -> torch.Tensor:
    """Â' of the edges of ``interactions`` (binarised) kept for ``epoch`` (float32 CSR on ``device``)."""
    binary = sp.csr_matrix(interactions, copy=True)
    binary.sum_duplicates()
    coo = binary.tocoo()
    users, items = torch.from_numpy(coo.row.astype(np.int64)), torch.from_numpy(coo.col.astype(np.int64))
    keep = sample_edges(users, items, *binary.shape, drop_ratio, epoch_generator(seed, epoch)).numpy()
    kept = sp.csr_matrix((np.ones(keep.size, dtype=np.float32), (coo.row[keep], coo.col[keep])), shape=binary.shape)
    return build_bipartite(kept, device)
