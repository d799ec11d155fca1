"""SIGER: semantic item graph enhancement for multimodal recommendation.

Zhang, Zhou, Zeng, Niyato, Shen, "Semantic Item Graph Enhancement for Multimodal
Recommendation", arXiv 2508.06154 (2025). The paper's code is not public; the abstract fixes
three mechanisms and the rest is our design, explained in docs/models/siger.md.

Design choices where the paper is not public (each mechanism switchable for ablation):

1. Collaborative signals infused into each modality's item semantic graph
   (``cooccurrence_infusion``): Ŝ_m = rownorm((1 − β) S_m + β C), S_m the unit-weight kNN
   graph of modality m (D^-1/2 · D^-1/2 normalised, docs/graphs.md §2; k = ``item_knn_k``), C the
   top-``item_co_k`` item co-occurrence graph with row-normalised counts, β = ``item_co_weight``
   (the graph store's ``enhanced_item_graph``). Frozen after construction.
   Switched off: Ŝ_m = rownorm(S_m).
2. Representations. Behaviour: LightGCN over Â (mean of layers 0..L) → b. Semantics per
   modality: h_I^m = Ŝ_m^{L_s} proj_m(X_m) (L_s = ``n_item_layers``), h_U^m = R̄ h_I^m (R̄ the row-normalised train
   matrix: the mean over the user's train items). Fused: h^f = Σ_m a_m h^m with
   a = softmax(learned logits). Final z = b + h^f, score ⟨z_u, z_i⟩.
   Since proj_m(x) = W x + c is affine and Ŝ, R̄ are constants, h^m = (P X_m) Wᵀ + (P 1) cᵀ
   with P = Ŝ_m^{L_s} (items) or R̄ Ŝ_m^{L_s} (users); P X_m and P 1 are computed once, so a
   batch only projects the rows it uses. This is the same function, reordered.
   Leave-one-out (``leave_one_out``, default on): in the BPR term the user's semantic mean
   omits the positive item being scored (h_U^m over N(u) − {i}). Otherwise h_U ∋ h_i/d_u and
   the projection learns to amplify item-unique feature directions, scoring a train pair by the
   item's similarity to itself, a shortcut that does not carry over to held-out items.
   Ranking uses the full mean (held-out items are never in N(u)).
3. Modulus-based personalised perturbation (``perturbation``): two views of the behaviour
   propagation with noise after every layer, ε_n = ε ‖e_n‖ / mean ‖e‖, ε = ``noise_norm``
   (:mod:`recsys.nn.perturbation`; ``noise_scaling: constant`` gives SimGCL's uniform ε).
   L_pert = InfoNCE(view1, view2) over the batch's unique users and, separately, its unique
   positive items (SimGCL's choice of item nodes), summed.
4. Dual representation alignment over the same nodes:
   anchor-based (``anchor_alignment``): L_anchor = Σ_m anchor-InfoNCE(anchor b, positive h^m);
   behaviour–fused (``fuse_alignment``): L_fuse = symmetric InfoNCE(b, h^f). In both, b is
   the anchor; ``detach_anchor`` (default off, as specified) stops their gradient into b, so
   the alignment moves only the semantic side.

The contrastive node sets are all unique users / positive items of the batch; with
``cl_max_nodes`` set, a uniform sample of at most that many of each (an efficiency option for
large batches: InfoNCE costs O(n²) in the set size; default null keeps all, as specified).

Objective: BPR(z) + λ_p L_pert + λ_a L_anchor + λ_f L_fuse + λ_reg Σ‖E⁰‖²/(2B) over the
batch's ID embeddings (λ_p = ``pert_weight``, λ_a = ``anchor_weight``, λ_f = ``fuse_weight``,
λ_reg = ``reg_weight``). All InfoNCE terms use the temperature τ = ``temperature``.
"""
from __future__ import annotations

import torch
from torch import nn

from recsys.losses import anchor_info_nce, bpr_loss, info_nce, l2_reg
from recsys.models.base import Recommender, feature_widths
from recsys.models.registry import register
from recsys.nn import compact_csr, propagate
from recsys.nn.modalities import select_modalities
from recsys.nn.perturbation import SCALINGS, perturbed_propagate


@register
class SIGER(Recommender):
    name = "siger"
    renamed_keys = {"n_mm_layers": "n_item_layers", "knn_k": "item_knn_k", "co_k": "item_co_k",
                    "co_weight": "item_co_weight", "eps": "noise_norm", "tau": "temperature",
                    "lambda_pert": "pert_weight", "lambda_anchor": "anchor_weight", "lambda_fuse": "fuse_weight"}

    @classmethod
    def default_config(cls) -> dict:
        return {
            "embedding_size": 64,
            "n_layers": 2,
            "n_item_layers": 1,
            "item_knn_k": 10,
            "item_co_k": 10,
            "item_co_weight": 0.5,
            "noise_norm": 0.1,
            "temperature": 0.2,
            "pert_weight": 0.1,
            "anchor_weight": 0.05,
            "fuse_weight": 0.05,
            "reg_weight": 1e-4,
            "cooccurrence_infusion": True,
            "perturbation": True,
            "noise_scaling": "modulus",
            "anchor_alignment": True,
            "fuse_alignment": True,
            "detach_anchor": False,
            "cl_max_nodes": None,
            "leave_one_out": True,
            "modalities": None,
        }

    @classmethod
    def step_memory(cls, config, stats, batch) -> dict[str, int]:
        """With N = U + I nodes, n_g the contrastive node sets (the batch's distinct users and
        positive items, at most ``cl_max_nodes``) and c the InfoNCE calls per set (1 for the
        perturbation, M anchor terms, 2 for the symmetric fused term): kept for the backward
        pass, the behaviour table and the two perturbed views (3·N·d), one n_g² matrix of
        log-probabilities per call, the semantic rows gathered for the batch and the sets
        (3·B + Σ n_g rows of each D_m); on top, the largest temporary: a propagation (4·N·d),
        a perturbed view before its mean ((2L + 3)·N·d) or a call's logits (2·n²)."""
        dim, layers, size = int(config["embedding_size"]), int(config["n_layers"]), int(batch["size"])
        nodes = stats["users"] + stats["items"]
        widths = feature_widths(config, stats)
        cap = config["cl_max_nodes"]
        sets = [min(float(batch[key]), float(cap) if cap is not None else float("inf")) for key in ("users", "items")]
        calls = int(bool(config["perturbation"])) + len(widths) * int(bool(config["anchor_alignment"])) \
            + 2 * int(bool(config["fuse_alignment"]))
        table = 4 * nodes * dim
        views = 2 if config["perturbation"] else 0
        largest = max(4 * table, (2 * layers + 3) * table if views else 0, 2 * 4 * int(max(sets) ** 2))
        return {"behaviour and views": (1 + views) * table,
                "contrastive logits": 4 * calls * int(sum(n * n for n in sets)),
                "semantic rows": 4 * int(3 * size + sum(sets)) * sum(widths.values()),
                "largest temporary": largest}

    @classmethod
    def ranking_memory(cls, config, stats) -> dict[str, int]:
        """z = b + Σ a_m h^m kept for scoring; the behaviour propagation and the M semantic
        tables while computing it."""
        table = 4 * (stats["users"] + stats["items"]) * int(config["embedding_size"])
        return {"representations": table, "temporaries": (4 + len(feature_widths(config, stats))) * table}

    def __init__(self, dataset, config, graphs) -> None:
        super().__init__(dataset, config, graphs)
        cfg = self.config
        if cfg["noise_scaling"] not in SCALINGS:
            raise ValueError(f"model.noise_scaling must be one of {SCALINGS}, got '{cfg['noise_scaling']}'")
        if not 0.0 <= float(cfg["item_co_weight"]) <= 1.0:
            raise ValueError(f"model.item_co_weight must lie in [0, 1], got {cfg['item_co_weight']}")
        dim = int(cfg["embedding_size"])
        self.n_layers = int(cfg["n_layers"])
        self.modalities = select_modalities(dataset, cfg["modalities"])
        self.embedding = nn.Parameter(torch.empty(self.n_users + self.n_items, dim))
        nn.init.xavier_uniform_(self.embedding)
        self.register_buffer("adjacency", compact_csr(graphs.user_item()), persistent=False)
        self.projections = nn.ModuleDict({m: nn.Linear(dataset.features[m].shape[1], dim) for m in self.modalities})
        self.modality_logits = nn.Parameter(torch.zeros(len(self.modalities)))

        beta = float(cfg["item_co_weight"]) if cfg["cooccurrence_infusion"] else 0.0
        mean_user = graphs.user_mean_items()
        degree = torch.as_tensor(dataset.csr("train").getnnz(axis=1), dtype=torch.float32, device=graphs.device)
        self.register_buffer("user_degree", degree[:, None], persistent=False)
        for m in self.modalities:
            item_graph = graphs.enhanced_item_graph(m, int(cfg["item_knn_k"]), int(cfg["item_co_k"]), beta)
            x = torch.as_tensor(dataset.features[m], dtype=torch.float32, device=graphs.device)
            ones = torch.ones(x.shape[0], 1, device=graphs.device)
            for _ in range(int(cfg["n_item_layers"])):
                x, ones = torch.sparse.mm(item_graph, x), torch.sparse.mm(item_graph, ones)
            # rows 0..U-1 users (R̄ Ŝ^L), U..U+I-1 items (Ŝ^L): the node indexing of the behaviour side
            self.register_buffer(f"semantic_x_{m}", torch.cat([torch.sparse.mm(mean_user, x), x]), persistent=False)
            self.register_buffer(f"semantic_1_{m}", torch.cat([torch.sparse.mm(mean_user, ones), ones]),
                                 persistent=False)

    def modality_weights(self) -> torch.Tensor:
        return torch.softmax(self.modality_logits, dim=0)

    def _semantic_inputs(self, m: str) -> tuple[torch.Tensor, torch.Tensor]:
        return getattr(self, f"semantic_x_{m}"), getattr(self, f"semantic_1_{m}")

    def _project(self, m: str, x: torch.Tensor, ones: torch.Tensor) -> torch.Tensor:
        proj = self.projections[m]
        return x @ proj.weight.T + ones * proj.bias

    def semantic(self, nodes: torch.Tensor | None = None) -> list[torch.Tensor]:
        """h^m of ``nodes`` (indices into users ++ items; all nodes when None), per modality."""
        out = []
        for m in self.modalities:
            x, ones = self._semantic_inputs(m)
            if nodes is not None:
                x, ones = x[nodes], ones[nodes]
            out.append(self._project(m, x, ones))
        return out

    def user_semantic_without(self, users: torch.Tensor, items: torch.Tensor) -> list[torch.Tensor]:
        """h_U^m of ``users`` with the train item ``items`` (one per user) left out of the mean.

        mean over N(u) − {i} = (d_u · mean over N(u) − Ŝ-row of i) / (d_u − 1); a user whose only
        train item is i gets 0. Exact, because the user rows are R̄ times the item rows.
        """
        degree = self.user_degree[users]
        rest = (degree - 1).clamp_min(1)
        out = []
        for m in self.modalities:
            x, ones = self._semantic_inputs(m)
            item_rows = items + self.n_users
            x_u = (degree * x[users] - x[item_rows]) / rest
            ones_u = (degree * ones[users] - ones[item_rows]) / rest
            out.append(self._project(m, x_u, ones_u))
        return out

    def fuse(self, per_modality: list[torch.Tensor]) -> torch.Tensor:
        weights = self.modality_weights()
        return sum(w * h for w, h in zip(weights, per_modality))

    def behaviour(self) -> torch.Tensor:
        return propagate(self.adjacency, self.embedding, self.n_layers, symmetric=True)

    def loss(self, users, pos, neg):
        cfg = self.config
        behaviour = self.behaviour()
        nodes = torch.cat([users, pos + self.n_users, neg + self.n_users])
        b = behaviour[nodes]
        if cfg["leave_one_out"]:
            items = torch.cat([pos, neg]) + self.n_users
            per_modality = [torch.cat([h_u, h_i]) for h_u, h_i in
                            zip(self.user_semantic_without(users, pos), self.semantic(items))]
        else:
            per_modality = self.semantic(nodes)
        u, p, n = (b + self.fuse(per_modality)).chunk(3)
        bpr = bpr_loss((u * p).sum(1), (u * n).sum(1))
        reg = float(cfg["reg_weight"]) * l2_reg(*self.embedding[nodes].chunk(3))
        terms = {"bpr": bpr, "reg": reg}

        tau = float(cfg["temperature"])
        groups = [self._subsample(torch.unique(users)), self._subsample(torch.unique(pos) + self.n_users)]
        if cfg["perturbation"]:
            eps, scaling = float(cfg["noise_norm"]), cfg["noise_scaling"]
            view1, view2 = (perturbed_propagate(self.adjacency, self.embedding, self.n_layers, eps, scaling)
                            for _ in range(2))
            terms["pert"] = float(cfg["pert_weight"]) * sum(info_nce(view1[g], view2[g], tau) for g in groups)
        if cfg["anchor_alignment"] or cfg["fuse_alignment"]:
            anchor = fuse = 0.0
            for g in groups:
                b_g, h_g = behaviour[g], self.semantic(g)
                if cfg["detach_anchor"]:
                    b_g = b_g.detach()
                if cfg["anchor_alignment"]:
                    anchor = anchor + sum(anchor_info_nce(b_g, h, tau) for h in h_g)
                if cfg["fuse_alignment"]:
                    fuse = fuse + info_nce(b_g, self.fuse(h_g), tau, symmetric=True)
            if cfg["anchor_alignment"]:
                terms["anchor"] = float(cfg["anchor_weight"]) * anchor
            if cfg["fuse_alignment"]:
                terms["fuse"] = float(cfg["fuse_weight"]) * fuse
        return {"loss": sum(terms.values()), **terms}

    def _subsample(self, nodes: torch.Tensor) -> torch.Tensor:
        """At most ``cl_max_nodes`` of ``nodes``, drawn uniformly without replacement (all when null)."""
        cap = self.config["cl_max_nodes"]
        if cap is None or nodes.numel() <= int(cap):
            return nodes
        return nodes[torch.randperm(nodes.numel(), device=nodes.device)[: int(cap)]]

    @torch.no_grad()
    def embeddings(self):
        z = self.behaviour() + self.fuse(self.semantic())
        return z[: self.n_users], z[self.n_users:]

