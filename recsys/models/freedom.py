"""FREEDOM: a frozen item semantic graph and a denoised user-item graph.

Zhou & Shen, "A Tale of Two Graphs: Freezing and Denoising Graph Structures for Multimodal
Recommendation", ACM MM 2023, following the MMRec implementation (docs/models/freedom.md):

- Frozen item graph: S = Σ_m w_m S_m, S_m the kNN graph of modality m's features with unit
  weights and D^-1/2 · D^-1/2 normalisation (docs/graphs.md §2), built once; the weights follow
  MMRec's ``mm_image_weight`` (image gets it, the other modalities share the rest).
- Item semantic representation h = S^{L_s} E_I (L_s = ``n_item_layers``) of the item ID
  embeddings E_I.
- Behaviour representation: LightGCN (mean of layers 0..L, L = ``n_layers``) over the
  user-item graph. In training the graph is denoised by degree-sensitive edge pruning
  (drop ratio ``edge_dropout``; the graph store's ``pruned_user_item``), redrawn before every
  epoch by :meth:`FREEDOM.pre_epoch` (MMRec's ``pre_epoch_processing``), which the Trainer
  calls. The draw is a function of the epoch and of a seed the model takes from the seeded
  global generator when it is built, so a resumed run and every rank of a data-parallel run
  draw the same graphs; ranking uses the full graph.
- z_u = b_u, z_i = b_i + h_i, score = ⟨z_u, z_i⟩.
- Loss: BPR(z) + λ Σ_m BPR(z_u, W_m x_i^m) with a linear projection W_m per modality
  (λ = ``modal_bpr_weight``, MMRec's ``reg_weight``). As in MMRec the raw features are trainable
  (``train_features``); the item graph stays the one built from the raw input features.
"""
from __future__ import annotations

import torch
from torch import nn

from recsys.losses import bpr_loss
from recsys.models.base import Recommender, feature_widths
from recsys.models.registry import register
from recsys.nn import compact_csr, propagate, sparse_matmul
from recsys.nn.modalities import image_weighted, select_modalities


@register
class FREEDOM(Recommender):
    name = "freedom"
    renamed_keys = {"n_ui_layers": "n_layers", "n_mm_layers": "n_item_layers", "knn_k": "item_knn_k",
                    "dropout": "edge_dropout", "lambda_mm": "modal_bpr_weight"}

    @classmethod
    def default_config(cls) -> dict:
        return {
            "embedding_size": 64,
            "n_layers": 2,
            "n_item_layers": 1,
            "item_knn_k": 10,
            "mm_image_weight": 0.1,
            "edge_dropout": 0.8,
            "modal_bpr_weight": 1e-4,
            "train_features": True,
            "modalities": None,
        }

    @classmethod
    def step_memory(cls, config, stats, batch) -> dict[str, int]:
        """Propagation over the pruned graph as LightGCN's (4·(U+I)·d at its peak), the item
        semantic side and sum (2·I·d), the batch's rows with gradients (6·B·d) and, per
        modality, the features of the positives and negatives with their gradients (4·B·D_m)."""
        dim, size = int(config["embedding_size"]), int(batch["size"])
        nodes = stats["users"] + stats["items"]
        return {"propagation": 4 * 4 * nodes * dim, "item semantics": 4 * 2 * stats["items"] * dim,
                "batch embeddings": 4 * 6 * size * dim,
                "batch features": 4 * 4 * size * sum(feature_widths(config, stats).values())}

    @classmethod
    def ranking_memory(cls, config, stats) -> dict[str, int]:
        """The propagated table and the item sum kept for scoring, three tables while propagating."""
        table = 4 * (stats["users"] + stats["items"]) * int(config["embedding_size"])
        return {"representations": table + 4 * stats["items"] * int(config["embedding_size"]),
                "temporaries": 3 * table}

    def __init__(self, dataset, config, graphs) -> None:
        super().__init__(dataset, config, graphs)
        dim = int(self.config["embedding_size"])
        self.n_layers = int(self.config["n_layers"])
        self.n_item_layers = int(self.config["n_item_layers"])
        self.edge_dropout = float(self.config["edge_dropout"])
        self.modalities = select_modalities(dataset, self.config["modalities"])
        self.user_embedding = nn.Parameter(torch.empty(self.n_users, dim))
        self.item_embedding = nn.Parameter(torch.empty(self.n_items, dim))
        nn.init.xavier_uniform_(self.user_embedding)
        nn.init.xavier_uniform_(self.item_embedding)
        self.features = nn.ParameterDict({
            m: nn.Parameter(torch.tensor(dataset.features[m], dtype=torch.float32),  # a copy: training moves it
                            requires_grad=bool(self.config["train_features"]))
            for m in self.modalities
        })
        self.projections = nn.ModuleDict({m: nn.Linear(dataset.features[m].shape[1], dim) for m in self.modalities})

        weights = image_weighted(self.modalities, float(self.config["mm_image_weight"]))
        item_graph = graphs.item_knn(weights, int(self.config["item_knn_k"]), weighted=False)
        self.register_buffer("item_graph", compact_csr(item_graph), persistent=False)
        self.register_buffer("item_graph_t", compact_csr(graphs.transpose(item_graph)), persistent=False)
        self.register_buffer("adjacency", compact_csr(graphs.user_item()), persistent=False)
        self.register_buffer("pruned_adjacency", None, persistent=False)
        self.graphs = graphs
        self.prune_seed = int(torch.randint(2**62, ()))

    def pre_epoch(self, epoch: int) -> None:
        """Draw the pruned user-item graph of ``epoch`` (a function of ``prune_seed`` and ``epoch``)."""
        pruned = self.graphs.pruned_user_item(self.edge_dropout, self.prune_seed, epoch)
        self.pruned_adjacency = compact_csr(pruned).to(self.adjacency.device)

    def represent(self, adjacency: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(z_U, z_I) with the behaviour side propagated over ``adjacency``."""
        semantic = self.item_embedding
        for _ in range(self.n_item_layers):
            semantic = sparse_matmul(self.item_graph, semantic, adj_t=self.item_graph_t)
        ego = torch.cat([self.user_embedding, self.item_embedding])
        behaviour = propagate(adjacency, ego, self.n_layers, symmetric=True)
        return behaviour[: self.n_users], behaviour[self.n_users:] + semantic

    def loss(self, users, pos, neg):
        if self.pruned_adjacency is None:
            raise RuntimeError("FREEDOM trains on the pruned graph of the epoch: call pre_epoch(epoch) before "
                               "the epoch's steps (the Trainer does)")
        user_out, item_out = self.represent(self.pruned_adjacency)
        u = user_out[users]
        bpr = bpr_loss((u * item_out[pos]).sum(1), (u * item_out[neg]).sum(1))
        modal = sum(
            bpr_loss((u * self.projections[m](self.features[m][pos])).sum(1),
                     (u * self.projections[m](self.features[m][neg])).sum(1))
            for m in self.modalities
        )
        modal = float(self.config["modal_bpr_weight"]) * modal
        return {"loss": bpr + modal, "bpr": bpr, "modal_bpr": modal}

    @torch.no_grad()
    def embeddings(self):
        return self.represent(self.adjacency)
