"""BPR-MF: matrix factorisation trained with the BPR loss.

Rendle et al., "BPR: Bayesian Personalized Ranking from Implicit Feedback", UAI 2009.
score(u, i) = e_uᵀ e_i; loss = −mean log σ(s(u,p) − s(u,n)) + λ Σ‖e‖² / (2B) over the batch's
embeddings (λ = ``reg_weight``). Embeddings initialised xavier-uniform (MMRec's BPR uses
xavier-normal; docs/models/bpr.md).
"""
from __future__ import annotations

import torch
from torch import nn

from recsys.losses import bpr_loss, l2_reg
from recsys.models.base import Recommender
from recsys.models.registry import register


@register
class BPRMF(Recommender):
    name = "bpr"

    @classmethod
    def default_config(cls) -> dict:
        return {"embedding_size": 64, "reg_weight": 1e-4}

    @classmethod
    def step_memory(cls, config, stats, batch) -> dict[str, int]:
        """The batch's gathered embeddings u, p, n and their gradients (6·B·d floats)."""
        return {"batch embeddings": 4 * 6 * int(batch["size"]) * int(config["embedding_size"])}

    def __init__(self, dataset, config, graphs) -> None:
        super().__init__(dataset, config, graphs)
        dim = int(self.config["embedding_size"])
        self.user_embedding = nn.Parameter(torch.empty(self.n_users, dim))
        self.item_embedding = nn.Parameter(torch.empty(self.n_items, dim))
        nn.init.xavier_uniform_(self.user_embedding)
        nn.init.xavier_uniform_(self.item_embedding)

    def loss(self, users, pos, neg):
        u, p, n = self.user_embedding[users], self.item_embedding[pos], self.item_embedding[neg]
        bpr = bpr_loss((u * p).sum(1), (u * n).sum(1))
        reg = self.config["reg_weight"] * l2_reg(u, p, n)
        return {"loss": bpr + reg, "bpr": bpr, "reg": reg}

    def embeddings(self):
        return self.user_embedding, self.item_embedding
