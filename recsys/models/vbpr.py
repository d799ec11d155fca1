"""VBPR: visual Bayesian personalised ranking, extended to any item feature modality.

He & McAuley, "VBPR: Visual Bayesian Personalized Ranking from Implicit Feedback", AAAI 2016,
in the form of the MMRec toolbox (Zhou, arXiv 2302.03497; docs/models/vbpr.md): the item
representation is the concatenation of an ID embedding and a linear projection of the item
features,

    z_i = [γ_i ; W x_i + b] ∈ R^{2d},   z_u = θ_u ∈ R^{2d},   score(u, i) = ⟨z_u, z_i⟩,

with x_i the concatenation of the item's features over the chosen modalities (all of the
dataset's, sorted by name, by default). Loss: BPR + λ · Σ‖z‖² / (2B) over the batch's user,
positive and negative representations (``reg_weight``; MMRec uses un-squared norms, we use
the project's ``l2_reg``). Trained with Adam. Initialisation as MMRec: ID embeddings
xavier-uniform, the projection xavier-normal with zero bias.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from recsys.losses import bpr_loss, l2_reg
from recsys.models.base import Recommender, feature_widths
from recsys.models.registry import register
from recsys.nn.modalities import select_modalities


@register
class VBPR(Recommender):
    name = "vbpr"

    @classmethod
    def default_config(cls) -> dict:
        return {"embedding_size": 64, "reg_weight": 1e-4, "modalities": None}

    @classmethod
    def step_memory(cls, config, stats, batch) -> dict[str, int]:
        """The features of the batch's positives and negatives (2·B·F, kept for the projection's
        backward pass) and the 2d-wide representations of u, p, n with their gradients."""
        size, dim = int(batch["size"]), int(config["embedding_size"])
        return {"batch features": 4 * 2 * size * sum(feature_widths(config, stats).values()),
                "batch representations": 4 * 8 * size * 2 * dim}

    @classmethod
    def ranking_memory(cls, config, stats) -> dict[str, int]:
        """The items' [γ_i ; W x_i + b] (I × 2d) kept for scoring and the projection (I × d)."""
        table = 4 * stats["items"] * int(config["embedding_size"])
        return {"representations": 2 * table, "temporaries": table}

    def __init__(self, dataset, config, graphs) -> None:
        super().__init__(dataset, config, graphs)
        dim = int(self.config["embedding_size"])
        modalities = select_modalities(dataset, self.config["modalities"])
        features = np.concatenate([dataset.features[m] for m in modalities], axis=1)
        self.register_buffer("features", torch.as_tensor(features, dtype=torch.float32))
        self.user_embedding = nn.Parameter(torch.empty(self.n_users, 2 * dim))
        self.item_embedding = nn.Parameter(torch.empty(self.n_items, dim))
        self.projection = nn.Linear(features.shape[1], dim)
        nn.init.xavier_uniform_(self.user_embedding)
        nn.init.xavier_uniform_(self.item_embedding)
        nn.init.xavier_normal_(self.projection.weight)
        nn.init.zeros_(self.projection.bias)

    def item_representation(self, items: torch.Tensor | None = None) -> torch.Tensor:
        """``[γ_i ; W x_i + b]`` for ``items`` (all items when None)."""
        if items is None:
            return torch.cat([self.item_embedding, self.projection(self.features)], dim=1)
        return torch.cat([self.item_embedding[items], self.projection(self.features[items])], dim=1)

    def loss(self, users, pos, neg):
        u = self.user_embedding[users]
        p, n = self.item_representation(pos), self.item_representation(neg)
        bpr = bpr_loss((u * p).sum(1), (u * n).sum(1))
        reg = self.config["reg_weight"] * l2_reg(u, p, n)
        return {"loss": bpr + reg, "bpr": bpr, "reg": reg}

    @torch.no_grad()
    def embeddings(self):
        return self.user_embedding, self.item_representation()
