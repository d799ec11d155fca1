"""REARM: refining contrastive learning and homography relations for multi-modal recommendation.

Ma, Zeng, Wu, Xu, ACM MM 2025 (arXiv 2508.13745); reference code github.com/MrShouxingMa/REARM.
docs/models/rearm.md explains the model, its hyper-parameters and the reference code. Notation:
U users, I items, d = ``embedding_size``, modalities m = 1..M with item features X_m (I × D_m),
r = ``rank``; graphs as in docs/graphs.md.

1. Homography. Items: H_I = [E_I ‖ X_1 W_1 + b_1 ‖ … ‖ X_M W_M + b_M], propagated
   ``n_item_layers`` times over G_I = β_I·C_I + (1 − β_I)·S_I (β_I = ``item_co_weight``; item
   co-occurrence and semantic kNN graphs), last layer kept, rows L2-normalised, split into
   e_I and v_I^m. Users likewise with [E_U ‖ P_1 W'_1 + b'_1 ‖ …] over G_U, where P_m is the
   mean of the user's train items' features (``n_user_layers``, β_U = ``user_co_weight``),
   giving e_U and u^m.
2. Attention integration (items): per modality s_m = PReLU(LN(v^m + SelfAttn_m(v^m))), with
   attention over the d entries of the vector (tokens of size 1, ``recsys.nn.attention``;
   attention dropout ``self_attention_dropout``, and ``cross_attention_dropout`` below).
   Then c_m = PReLU(LN(s_m + CrossAttn_m(query = s_other, key = value = s_m))): for M = 2
   s_other is the other modality (the reference's t→v and v→t steps); for M > 2 it is the
   mean of the other modalities (our generalisation); for M = 1 only the self-attention
   step exists and c_1 = s_1. LN and PReLU are one module each, shared by every step (as in
   the reference). Users' modality vectors only pass through the PReLU.
3. Heterography: F⁰ = [u^1 ‖ … ‖ u^M ; c_1 ‖ … ‖ c_M] and Z⁰ = [e_U ; e_I] are propagated
   ``n_layers`` times over the normalised user-item graph Â; F and Z are the layer means.
4. Shared knowledge (meta-network): κ = Linear_type(F) (Md → d, one per node type), detached
   (so those two linear maps keep their initial weights, as in the reference).
   Per node, MLP_1 and MLP_2 (Linear(d → dr) → PReLU → Linear(dr → dr) → L2-normalise; two
   per node type) give W_1 (d × r) and W_2 (r × d); the mean of each over the nodes of that
   type is added as a bias, W_1 is softmax-normalised over its d axis and W_2 over its r
   axis; share = (Z W_1) W_2.
5. Representation: [PReLU(F^1) + Z ‖ … ‖ PReLU(F^M) + Z ‖ PReLU(share) + Z] ((M + 1)·d);
   score(u, i) = dot product.

Loss per batch of (u, p, n) triples: BPR + ``contrast_weight``·(InfoNCE(F^a, F^b) over the
batch's unique items (positives and negatives) + the same over its unique users, with
temperature ``temperature``) + ``orthogonality_weight``·(orthogonality(F^a, F^b) over the batch's
users + over its positive items, duplicates kept, as in the reference). With M > 2 both
terms are averaged over the modality pairs a < b (for M = 2 that is the reference's single
pair); with M = 1 there is no pair and both terms are zero. L2 regularisation is the
optimiser's weight decay (the reference uses AdamW with weight_decay = reg_weight and
lr 5e-5; see configs/models/rearm.yaml).

Implementation choices (same function as the reference, less work):
- User interest tables trained by default (``train_user_interest: true``), the published model:
  the reference builds P_m on the training device, where ``nn.Parameter(P).to(device)`` is the
  parameter itself, so P_m is registered, trained and decayed by AdamW on GPU as on CPU.
  ``train_user_interest: false`` keeps P_m fixed, a cheaper variant that is NOT the published
  model: then P_m W = R̄ (X_m⁰ W) for the row-normalised train matrix R̄ and the initial item
  table X_m⁰, so the I × D_m table is projected and aggregated sparsely instead of training the
  U × D_m table. Users without train items get P_m = 0, hence only the bias (the reference
  gets NaN rows).
- The reference recomputes the whole forward pass per batch and builds every node's
  representation; the forward pass here also runs once per batch (every parameter changes
  each step), but the softmaxes of the meta factors and the final representations are only
  formed for the batch's nodes (the bias needs the MLP outputs of all nodes, which are
  computed), and the graphs, their transposes and R̄ are built once, on the model's device.
- Attention dropout masks: drop probability rounded to a multiple of 2⁻¹⁶ (see
  ``recsys.nn.attention``).
- Speed, with the same values and gradients up to float rounding (a training step's matrix
  products are fixed by the maths: the tables' projections, forward and both gradients, and
  the meta-network's two 448 × 448 layers over every node, forward and backward, are ~90 %
  of its multiply-adds on Sports-sized inputs):
  * dense float32 products on CPU through oneDNN (``recsys.nn.dense``): MKL, PyTorch's
    default, runs AVX2 kernels on non-Intel processors, oneDNN AVX-512 (about 2× here);
  * the trainable tables (X_m, and P_m when trained) through ``recsys.nn.feature_table``:
    the trainer steps them in the backward pass, block of rows by block of rows of
    ∂X = ∂y W, without storing ∂X (``recsys.training.table_step``); otherwise ∂X is written
    into memory kept from step to step instead of a fresh n × D_m gradient per step;
  * the meta-network's heads of a node type in one autograd function with a written-out
    backward that returns only the batch's rows and the mean (``recsys.nn.meta_network``),
    and each distinct user and item of a batch represented once, then gathered;
  * InfoNCE as one autograd function (``recsys.nn.contrastive``);
  * rows gathered with ``index_select``, whose backward pass adds rows (``index_add_``),
    instead of indexing, whose backward pass is an accumulating ``index_put_`` (up to 20×
    slower on CPU for these shapes).
"""
from __future__ import annotations

from itertools import combinations

import torch
import torch.nn.functional as F
from torch import nn

from recsys.losses import bpr_loss, orthogonality_loss
from recsys.models.base import Recommender
from recsys.models.registry import register
from recsys.nn import compact_csr, propagate, sparse_matmul
from recsys.nn.attention import ScalarTokenAttention
from recsys.nn.contrastive import info_nce
from recsys.nn.feature_table import GradientMemory, project_table
from recsys.nn.meta_network import FactorHead, factor_rows_and_mean
from recsys.nn.modalities import select_modalities


@register
class REARM(Recommender):
    name = "rearm"
    renamed_keys = {"n_ii_layers": "n_item_layers", "n_uu_layers": "n_user_layers",
                    "ii_co_weight": "item_co_weight", "uu_co_weight": "user_co_weight",
                    "s_drop": "self_attention_dropout", "m_drop": "cross_attention_dropout",
                    "cl_tmp": "temperature", "cl_loss_weight": "contrast_weight",
                    "diff_loss_weight": "orthogonality_weight"}

    @classmethod
    def default_config(cls) -> dict:
        return {
            "embedding_size": 64,
            "modalities": None,
            "item_modality_weights": None,
            "user_modality_weights": None,
            "n_layers": 4,
            "n_item_layers": 1,
            "n_user_layers": 1,
            "item_knn_k": 10,
            "user_knn_k": 40,
            "item_co_weight": 0.2,
            "user_co_weight": 0.4,
            "rank": 3,
            "self_attention_dropout": 0.4,
            "cross_attention_dropout": 0.6,
            "temperature": 0.6,
            "contrast_weight": 5e-6,
            "orthogonality_weight": 5e-5,
            "train_user_interest": True,
        }

    def __init__(self, dataset, config, graphs) -> None:
        super().__init__(dataset, config, graphs)
        cfg = self.config
        self.modalities = select_modalities(dataset, cfg["modalities"])
        item_weights = _modality_weights(cfg["item_modality_weights"], self.modalities, "item_modality_weights")
        user_weights = _modality_weights(cfg["user_modality_weights"], self.modalities, "user_modality_weights")
        d = self.dim = int(cfg["embedding_size"])
        self.rank = int(cfg["rank"])
        self.n_layers, self.n_item_layers, self.n_user_layers = (
            int(cfg[k]) for k in ("n_layers", "n_item_layers", "n_user_layers"))
        self.train_user_interest = bool(cfg["train_user_interest"])

        self.user_id = nn.Parameter(torch.empty(self.n_users, d))
        self.item_id = nn.Parameter(torch.empty(self.n_items, d))
        nn.init.normal_(self.user_id, std=0.1)
        nn.init.normal_(self.item_id, std=0.1)
        features = {m: torch.as_tensor(dataset.features[m], dtype=torch.float32) for m in self.modalities}
        self.item_features = nn.ParameterList([nn.Parameter(features[m].clone()) for m in self.modalities])
        self.item_proj = nn.ModuleList([nn.Linear(features[m].shape[1], d) for m in self.modalities])
        self.user_proj = nn.ModuleList([nn.Linear(features[m].shape[1], d) for m in self.modalities])
        for linear in (*self.item_proj, *self.user_proj):
            nn.init.xavier_normal_(linear.weight)
        self._item_grad_memory = [GradientMemory() for _ in self.modalities]
        self._user_grad_memory = [GradientMemory() for _ in self.modalities]
        if self.train_user_interest:
            self.user_interest = nn.ParameterList(
                [nn.Parameter(graphs.user_interest(m).float()) for m in self.modalities])
        else:
            for index, m in enumerate(self.modalities):
                self.register_buffer(f"initial_features_{index}", features[m].clone(), persistent=False)
            mean_items = compact_csr(graphs.user_mean_items())
            self.register_buffer("mean_items", mean_items, persistent=False)
            self.register_buffer("mean_items_t", graphs.transpose(mean_items), persistent=False)

        self.norm = nn.LayerNorm(d)
        self.act = nn.PReLU()
        self.self_attention = nn.ModuleList([ScalarTokenAttention(float(cfg["self_attention_dropout"])) for _ in self.modalities])
        n_cross = len(self.modalities) if len(self.modalities) > 1 else 0
        self.cross_attention = nn.ModuleList([ScalarTokenAttention(float(cfg["cross_attention_dropout"])) for _ in range(n_cross)])

        n_mod = len(self.modalities)
        self.user_knowledge = nn.Linear(n_mod * d, d)
        self.item_knowledge = nn.Linear(n_mod * d, d)
        self.user_factor_in, self.user_factor_out = FactorHead(d, self.rank), FactorHead(d, self.rank)
        self.item_factor_in, self.item_factor_out = FactorHead(d, self.rank), FactorHead(d, self.rank)

        item_graph = compact_csr(graphs.item_homography(
            modality_weights=item_weights, k=int(cfg["item_knn_k"]), co_weight=float(cfg["item_co_weight"])))
        user_graph = compact_csr(graphs.user_homography(
            modality_weights=user_weights, k=int(cfg["user_knn_k"]), co_weight=float(cfg["user_co_weight"])))
        self.register_buffer("item_graph", item_graph, persistent=False)
        self.register_buffer("item_graph_t", graphs.transpose(item_graph), persistent=False)
        self.register_buffer("user_graph", user_graph, persistent=False)
        self.register_buffer("user_graph_t", graphs.transpose(user_graph), persistent=False)
        self.register_buffer("adjacency", compact_csr(graphs.user_item()), persistent=False)

    # ----------------------------------------------------------------------------- forward
    def _item_modalities(self) -> list[torch.Tensor]:
        """X_m W_m + b_m for every modality (I × d each)."""
        return [project_table(x, proj, memory)
                for x, proj, memory in zip(self.item_features, self.item_proj, self._item_grad_memory)]

    def _user_modalities(self) -> list[torch.Tensor]:
        """P_m W'_m + b'_m for every modality (U × d each)."""
        if self.train_user_interest:
            return [project_table(p, proj, memory)
                    for p, proj, memory in zip(self.user_interest, self.user_proj, self._user_grad_memory)]
        out = []
        for index, proj in enumerate(self.user_proj):
            projected = getattr(self, f"initial_features_{index}") @ proj.weight.T
            mean = sparse_matmul(self.mean_items, projected, adj_t=self.mean_items_t)
            out.append(mean + proj.bias)
        return out

    def _homography(self, graph, graph_t, ids, parts, n_layers) -> tuple[torch.Tensor, list[torch.Tensor]]:
        h = propagate(graph, torch.cat([ids, *parts], dim=1), n_layers, adj_t=graph_t, combine="last")
        h = F.normalize(h, dim=1)
        ids_out, *modal = h.split(self.dim, dim=1)
        return ids_out, modal

    def _integrate(self, modal: list[torch.Tensor]) -> list[torch.Tensor]:
        """Self-attention per modality, then cross-attention from the other modalities."""
        own = [self.act(self.norm(x + attn(x, x))) for x, attn in zip(modal, self.self_attention)]
        if len(own) == 1:
            return own
        out = []
        for index, (x, attn) in enumerate(zip(own, self.cross_attention)):
            others = torch.stack([o for j, o in enumerate(own) if j != index]).mean(0)
            out.append(self.act(self.norm(x + attn(others, x))))
        return out

    def _propagated(self) -> tuple[torch.Tensor, torch.Tensor]:
        """F ((U+I) × Md, modality parts) and Z ((U+I) × d, ids) after heterography."""
        item_ids, item_modal = self._homography(self.item_graph, self.item_graph_t, self.item_id,
                                                self._item_modalities(), self.n_item_layers)
        user_ids, user_modal = self._homography(self.user_graph, self.user_graph_t, self.user_id,
                                                self._user_modalities(), self.n_user_layers)
        item_modal = self._integrate(item_modal)
        user_modal = [self.act(x) for x in user_modal]
        ego = torch.cat([torch.cat([*user_modal, user_ids], dim=1),
                         torch.cat([*item_modal, item_ids], dim=1)], dim=0)
        out = propagate(self.adjacency, ego, self.n_layers, symmetric=True)
        split = len(self.modalities) * self.dim
        return out[:, :split], out[:, split:]

    def _represent(self, rows: torch.Tensor, feats: torch.Tensor, ids: torch.Tensor, users: bool) -> torch.Tensor:
        """Final (M + 1)·d representations of ``rows`` (indices within one node type).

        ``feats`` is F of every node of that type (the meta-network's bias is a mean over all
        of them); ``ids`` is Z of ``rows`` only.
        """
        d, r = self.dim, self.rank
        knowledge = self.user_knowledge if users else self.item_knowledge
        heads = [self.user_factor_in, self.user_factor_out] if users else [self.item_factor_in, self.item_factor_out]
        with torch.no_grad():
            kappa = knowledge(feats)
        (w1, bias1), (w2, bias2) = factor_rows_and_mean(kappa, rows, heads)
        # W_1 is d × r and normalised over d: softmax over the last axis of its transpose
        soft1_t = torch.softmax((w1 + bias1).view(-1, d, r).transpose(1, 2).contiguous(), dim=2)
        soft2 = torch.softmax((w2 + bias2).view(-1, r, d), dim=1)
        share = torch.bmm(torch.bmm(soft1_t, ids.unsqueeze(2)).transpose(1, 2), soft2).squeeze(1)
        parts = [self.act(f) + ids for f in feats.index_select(0, rows).split(d, dim=1)]
        return torch.cat([*parts, self.act(share) + ids], dim=1)

    # ----------------------------------------------------------------------------- API
    def feature_tables(self):
        """X_m, and P_m when trained, with their gradient memories."""
        tables = list(zip(self.item_features, self._item_grad_memory))
        if self.train_user_interest:
            tables += list(zip(self.user_interest, self._user_grad_memory))
        return tables

    def loss(self, users, pos, neg):
        feats, ids = self._propagated()
        return self._batch_loss(feats, ids, users, pos, neg)

    def _batch_representations(self, feats, ids, users, items) -> tuple[torch.Tensor, torch.Tensor]:
        """Representations of distinct ``users`` and ``items`` (each distinct node once; the
        batch's occurrences are gathered from them)."""
        n_users = self.n_users
        return (self._represent(users, feats[:n_users], ids.index_select(0, users), users=True),
                self._represent(items, feats[n_users:], ids.index_select(0, items + n_users), users=False))

    def _batch_loss(self, feats, ids, users, pos, neg) -> dict[str, torch.Tensor]:
        """The loss terms of a batch given F and Z of every node."""
        n_users = self.n_users
        items = torch.cat([pos, neg])
        unique_users, user_index = torch.unique(users, return_inverse=True)
        unique_items, item_index = torch.unique(items, return_inverse=True)
        users_out, items_out = self._batch_representations(feats, ids, unique_users, unique_items)
        u = users_out.index_select(0, user_index)
        p, n = items_out.index_select(0, item_index).chunk(2)
        bpr = bpr_loss((u * p).sum(1), (u * n).sum(1))

        modal = feats.split(self.dim, dim=1)
        pairs = list(combinations(range(len(modal)), 2))
        contrast = feats.new_zeros(())
        orthogonality = feats.new_zeros(())
        if pairs:
            tau = float(self.config["temperature"])
            item_nodes = unique_items + n_users
            pos_nodes = pos + n_users
            for a, b in pairs:
                x, y = modal[a], modal[b]
                contrast = contrast + info_nce(*_rows(x, y, item_nodes), tau) \
                    + info_nce(*_rows(x, y, unique_users), tau)
                orthogonality = orthogonality + orthogonality_loss(*_rows(x, y, users)) \
                    + orthogonality_loss(*_rows(x, y, pos_nodes))
            contrast = float(self.config["contrast_weight"]) * contrast / len(pairs)
            orthogonality = float(self.config["orthogonality_weight"]) * orthogonality / len(pairs)
        return {"loss": bpr + contrast + orthogonality, "bpr": bpr, "contrast": contrast,
                "orthogonality": orthogonality}

    @torch.no_grad()
    def embeddings(self):
        feats, ids = self._propagated()
        users, items = slice(None, self.n_users), slice(self.n_users, None)
        return (self._represent(torch.arange(self.n_users, device=ids.device), feats[users], ids[users], users=True),
                self._represent(torch.arange(self.n_items, device=ids.device), feats[items], ids[items], users=False))

    # ----------------------------------------------------------------------------- memory
    @classmethod
    def step_memory(cls, config, stats, batch) -> dict[str, int]:
        """Floats kept for the backward pass, with M modalities, H = (1 + M)·d the homography
        and heterography width, N = U + I: the homography inputs, outputs and normalised rows
        (3·n·H per node type), the attention integration (about 15·I·d per modality, 8 for
        M = 1), the users' activated modality parts (M·U·d), the heterography output (N·H),
        the meta-network's per-node factors (4·N·d·r + N·d), the batch's factor softmaxes and
        representations (3B rows of 4·d·r + H) and the contrastive log-probabilities (the
        distinct batch items and users, squared); on top, the larger of the heterography
        propagation's temporaries (4·N·H) and the backward pass's (3·N·H)."""
        d, rank, size = int(config["embedding_size"]), int(config["rank"]), int(batch["size"])
        users, items = stats["users"], stats["items"]
        n_mod = len(config["modalities"] or stats["features"])
        width = (1 + n_mod) * d
        nodes = users + items
        pairs = n_mod * (n_mod - 1) // 2
        contrast = (float(batch["items_and_negatives"]) ** 2 + float(batch["users"]) ** 2) if pairs else 0.0
        return {"homography": 4 * 3 * nodes * width,
                "attention": 4 * (15 if n_mod > 1 else 8) * n_mod * items * d,
                "user parts": 4 * n_mod * users * d,
                "heterography": 4 * nodes * width,
                "meta-network": 4 * (4 * nodes * d * rank + nodes * d),
                "batch factors": 4 * 3 * size * (4 * d * rank + width),
                "contrastive logits": 4 * int(contrast),
                "largest temporary": 4 * 4 * nodes * width}

    @classmethod
    def ranking_memory(cls, config, stats) -> dict[str, int]:
        """The final (M + 1)·d representations kept for scoring; the forward pass without its
        backward (homography, heterography and meta-network tables) while computing them."""
        d, rank = int(config["embedding_size"]), int(config["rank"])
        nodes = stats["users"] + stats["items"]
        width = (1 + len(config["modalities"] or stats["features"])) * d
        return {"representations": 4 * nodes * width,
                "temporaries": 4 * (4 * nodes * width + 2 * nodes * d * rank * 2)}


def _rows(x: torch.Tensor, y: torch.Tensor, nodes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows ``nodes`` of two modality views."""
    return x.index_select(0, nodes), y.index_select(0, nodes)


def _modality_weights(weights, modalities: list[str], key: str) -> dict[str, float]:
    """Mixing weights of the per-modality kNN graphs; equal weights when not given."""
    if weights is None:
        return {m: 1.0 / len(modalities) for m in modalities}
    weights = {str(m): float(w) for m, w in dict(weights).items()}
    if set(weights) != set(modalities) or abs(sum(weights.values()) - 1.0) > 1e-6 or min(weights.values()) < 0:
        raise ValueError(f"model.{key} {weights} must give one non-negative weight per modality {modalities} "
                         "summing to 1 (e.g. the reference's i_mm_image_weight 0.1 is {image: 0.1, text: 0.9})")
    return weights
