"""Degree-sensitive edge pruning of the user-item graph (FREEDOM).

Zhou & Shen, "A Tale of Two Graphs: Freezing and Denoising Graph Structures for Multimodal
Recommendation", ACM MM 2023, §3.2, as in the MMRec code: before every training epoch keep
max(1, ⌊(1 − ρ)|E|⌋) of the train edges, drawn without replacement with probability proportional to

    p_(u,i) = 1 / √(d_u · d_i)          (d = degrees in the full train graph),

so edges between high-degree nodes (the likeliest noise) are dropped more often. The kept
edges form a new bipartite graph, symmetrically normalised with the degrees of the kept graph:
Â' = D'^-1/2 A' D'^-1/2 (docs/graphs.md §1; nodes left without an edge get 0).
"""
from __future__ import annotations

import math

import torch


def normalised_bipartite(users: torch.Tensor, items: torch.Tensor, n_users: int, n_items: int) -> torch.Tensor:
    """Sym-normalised (U+I)×(U+I) adjacency of the edges (users[k], items[k]) as sparse CSR."""
    n_nodes = n_users + n_items
    rows = torch.cat([users, items + n_users])
    cols = torch.cat([items + n_users, users])
    degree = torch.bincount(rows, minlength=n_nodes).to(torch.float32)
    inv_sqrt = degree.pow(-0.5).masked_fill(degree == 0, 0.0)
    values = inv_sqrt[rows] * inv_sqrt[cols]
    adj = torch.sparse_coo_tensor(torch.stack([rows, cols]), values, (n_nodes, n_nodes))
    return adj.coalesce().to_sparse_csr()


def degree_edge_weights(users: torch.Tensor, items: torch.Tensor, n_users: int, n_items: int) -> torch.Tensor:
    """Sampling weights 1/√(d_u d_i) of every edge."""
    d_user = torch.bincount(users, minlength=n_users).to(torch.float32)
    d_item = torch.bincount(items, minlength=n_items).to(torch.float32)
    return (d_user[users] * d_item[items]).rsqrt()


def degree_sensitive_prune(users: torch.Tensor, items: torch.Tensor, n_users: int, n_items: int,
                           drop_ratio: float, weights: torch.Tensor | None = None,
                           generator: torch.Generator | None = None) -> torch.Tensor:
    """Keep max(1, ⌊(1 − drop_ratio)|E|⌋) edges sampled ∝ ``weights`` (default 1/√(d_u d_i)); return Â'."""
    if not 0.0 <= drop_ratio < 1.0:
        raise ValueError(f"edge drop ratio must lie in [0, 1), got {drop_ratio}")
    if drop_ratio == 0.0:
        return normalised_bipartite(users, items, n_users, n_items)
    if weights is None:
        weights = degree_edge_weights(users, items, n_users, n_items)
    n_keep = max(1, math.floor(users.shape[0] * (1.0 - drop_ratio) + 1e-9))  # 1e-9: 5·(1−0.8) is 0.999…
    keep = torch.multinomial(weights, n_keep, replacement=False, generator=generator)
    return normalised_bipartite(users[keep], items[keep], n_users, n_items)
