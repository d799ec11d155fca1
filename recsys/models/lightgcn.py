"""LightGCN: simplified graph convolution for recommendation.

He et al., "LightGCN: Simplifying and Powering Graph Convolution Network for
Recommendation", SIGIR 2020 (docs/models/lightgcn.md). With Â the symmetric-normalised
user-item adjacency (docs/graphs.md §1) and E⁰ the ID embeddings, E^(l+1) = Â E^(l) and the
representation is E = mean(E⁰..E^L). Loss: BPR on E plus λ Σ‖E⁰‖² / (2B) on the batch's ego embeddings.
"""
from __future__ import annotations

import torch
from torch import nn

from recsys.losses import bpr_loss, l2_reg
from recsys.models.base import Recommender
from recsys.models.registry import register
from recsys.nn import compact_csr, propagate


@register
class LightGCN(Recommender):
    name = "lightgcn"

    @classmethod
    def default_config(cls) -> dict:
        return {"embedding_size": 64, "n_layers": 3, "reg_weight": 1e-4}

    @classmethod
    def step_memory(cls, config, stats, batch) -> dict[str, int]:
        """Propagation: at its peak a layer's input, output and two running sums ((U+I)·d
        each), as many in the backward pass; the batch's gathered rows (6·B·d)."""
        nodes, dim = stats["users"] + stats["items"], int(config["embedding_size"])
        return {"propagation": 4 * 4 * nodes * dim, "batch embeddings": 4 * 6 * int(batch["size"]) * dim}

    @classmethod
    def ranking_memory(cls, config, stats) -> dict[str, int]:
        """The propagated table kept for scoring, and three more while propagating."""
        table = 4 * (stats["users"] + stats["items"]) * int(config["embedding_size"])
        return {"representations": table, "temporaries": 3 * table}

    def __init__(self, dataset, config, graphs) -> None:
        super().__init__(dataset, config, graphs)
        dim = int(self.config["embedding_size"])
        self.n_layers = int(self.config["n_layers"])
        self.embedding = nn.Parameter(torch.empty(self.n_users + self.n_items, dim))
        nn.init.xavier_uniform_(self.embedding)
        self.register_buffer("adjacency", compact_csr(graphs.user_item()), persistent=False)

    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        out = propagate(self.adjacency, self.embedding, self.n_layers, symmetric=True)
        return out[: self.n_users], out[self.n_users:]

    def loss(self, users, pos, neg):
        out = propagate(self.adjacency, self.embedding, self.n_layers, symmetric=True)
        nodes = torch.cat([users, pos + self.n_users, neg + self.n_users])
        u, p, n = out[nodes].chunk(3)
        bpr = bpr_loss((u * p).sum(1), (u * n).sum(1))
        reg = self.config["reg_weight"] * l2_reg(*self.embedding[nodes].chunk(3))
        return {"loss": bpr + reg, "bpr": bpr, "reg": reg}

    @torch.no_grad()
    def embeddings(self):
        return self.propagate()
