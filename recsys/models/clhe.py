"""CLHE: contrastive learning-enhanced hierarchical encoder for bundle construction.

Ma, Liu, Wei, Tao, Wang, Chua, "Leveraging Multimodal Features and Item-level User Feedback
for Bundle Construction", WSDM 2024 (arXiv 2310.18770); docs/models/clhe.md.

Item encoder (level 1). For item i, three d-dimensional tokens:
  c_i = Σ_m norm(MLP_m(norm(x_i^m)))   with MLP_m: D_m → D_m → 256 → d (ReLU between),
  e_i   a learned ID embedding (xavier-uniform); with ``cold_id_token = "content"``, an item in
        no train bundle (whose ID embedding never receives a reconstruction gradient) uses
        c_i instead, as items without user-item interactions do for the CF token,
  f_i = W_cf g_i + b for an item with user-item interactions (g_i: pre-trained LightGCN
        embedding, handed in by the pre-training step ``cf_item_embeddings`` of
        :mod:`recsys.training.pretraining`), else f_i = c_i.
Fusion by one self-attention layer over the tokens T_i = norm([c_i; e_i; f_i]) (optionally
LayerNorm without affine): h_i = mean_rows softmax(T_i W_q (T_i W_k)ᵀ / √d) T_i W_v.

Bundle encoder (level 2): ``n_bundle_layers`` masked self-attention layers over the item
representations of a (partial) bundle (LayerNorm without affine, q/k/v without bias, padding
masked, optional residual), mean-pooled over the real items → bundle representation z_b.

Decoder: a second item encoder with its own parameters gives h'_i for every item; the
completion scores are s_bi = z_b · h'_i.

Loss = reconstruction + item-level contrast + bundle-level contrast:
  L_rec = −mean_b Σ_i x_bi log softmax(s_b)_i / |x_b| over the full train bundles x_b;
  L_item = item_cl_weight · InfoNCE(view₁, view₂; item_cl_temperature) over the items present
    in the batch, the two views by ``item_augment``: ``modality_dropout`` (each token zeroed
    with probability ``item_augment_dropout`` before fusion), ``feature_dropout`` (dropout on
    h_i, then a linear projector), ``feature_noise`` (h_i + item_augment_noise·N(0, I), then
    the projector) or ``none``;
  L_bundle = bundle_cl_weight · InfoNCE(z_b, z_b̃; bundle_cl_temperature), b̃ keeping
    clamp(⌈bundle_ratio·n⌉, 1, n−1) random items of b (``item_dropout``) and, with
    ``item_replace``, filling the other positions with random items of the batch.
InfoNCE is :func:`recsys.losses.info_nce`.

Variants (``variant``). ``paper`` (default) is the model as the paper describes it: every
attention layer has trained query, key and value projections, and the augmented bundle view
is masked by its own padding. ``reference`` reproduces the public code (github
Xiaohao-Liu/CLHE) where it departs from that description:

- the bundle encoder's query and key projections are never trained (the code keeps its
  attention layers in a plain Python list, so the optimiser never sees them): they stay at
  torch's default ``nn.Linear`` initialisation, stored as buffers;
- no attention layer has a value projection: the values are the layer's normalised input
  (after the LayerNorm, whose epsilon is the code's 1e-9, in the bundle encoder; the
  L2-normalised tokens in the item fusion);
- the augmented bundle view is encoded under the FULL bundle's padding mask: with
  ``item_dropout`` the dropped positions stay visible and hold the representation of item
  index 0 (the code's fill value for padded indices), with ``item_replace`` the replacements
  are distinct items among indices 0..n−1 for a bundle of n items (the code samples
  ``range(n)``); the number kept is min(round_half_even(n·bundle_ratio + ½), n − 1);
- every item, cold or not, has a learned ID token (``cold_id_token`` applies to ``paper``).

The reconstruction and contrastive losses, the item encoder's tokens and modality dropout
(each token zeroed with probability ``item_augment_dropout``) are the same in both.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recsys.losses import info_nce
from recsys.models.base import Recommender, feature_widths
from recsys.models.registry import register
from recsys.nn.modalities import select_modalities

ITEM_AUGMENTS = ("modality_dropout", "feature_dropout", "feature_noise", "none")
BUNDLE_AUGMENTS = ("item_dropout", "item_replace")
CF_SOURCES = ("auto", "lightgcn", "dataset", "none")
COLD_ID_TOKENS = ("learned", "content")
VARIANTS = ("paper", "reference")
REFERENCE_LAYERNORM_EPS = 1e-9


def _xavier_linear(n_in: int, n_out: int, bias: bool = True) -> nn.Linear:
    layer = nn.Linear(n_in, n_out, bias=bias)
    nn.init.xavier_normal_(layer.weight)
    if bias:
        nn.init.zeros_(layer.bias)
    return layer


def content_mlp(n_in: int, dim: int) -> nn.Sequential:
    """D → D → 256 → d with ReLU between, xavier-normal weights, zero biases."""
    return nn.Sequential(_xavier_linear(n_in, n_in), nn.ReLU(), _xavier_linear(n_in, 256), nn.ReLU(),
                         _xavier_linear(256, dim))


class TokenFusion(nn.Module):
    """One self-attention layer over an item's tokens, average-pooled (module docstring); with
    ``value_projection=False`` the values are the normalised tokens themselves (``reference``)."""

    def __init__(self, dim: int, layernorm: bool, value_projection: bool = True) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False) if layernorm else nn.Identity()
        self.q, self.k = _xavier_linear(dim, dim, bias=False), _xavier_linear(dim, dim, bias=False)
        self.v = _xavier_linear(dim, dim, bias=False) if value_projection else nn.Identity()
        self.scale = dim ** -0.5

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(..., T, d) tokens → (..., d)."""
        x = self.norm(F.normalize(tokens, dim=-1))
        weights = torch.softmax(self.q(x) @ self.k(x).transpose(-1, -2) * self.scale, dim=-1)
        return (weights @ self.v(x)).mean(dim=-2)


class ItemEncoder(nn.Module):
    """Content, ID and CF tokens of every item fused by :class:`TokenFusion`."""

    def __init__(self, features: list[torch.Tensor], cf: torch.Tensor | None, cf_warm: torch.Tensor | None,
                 id_warm: torch.Tensor, n_items: int, dim: int, layernorm: bool, value_projection: bool = True) -> None:
        super().__init__()
        self.register_buffer("id_warm", id_warm.clone())
        for index, feat in enumerate(features):
            self.register_buffer(f"feature_{index}", F.normalize(feat, dim=1), persistent=False)
        self.n_modalities = len(features)
        self.mlps = nn.ModuleList(content_mlp(feat.shape[1], dim) for feat in features)
        self.item_id = nn.Parameter(torch.empty(n_items, dim))
        nn.init.xavier_uniform_(self.item_id)
        self.use_cf = cf is not None
        if self.use_cf:
            self.cf_proj = _xavier_linear(cf.shape[1], dim)
            self.register_buffer("cf", cf.clone())
            self.register_buffer("cf_warm", cf_warm.clone())
        self.fusion = TokenFusion(dim, layernorm, value_projection)

    def tokens(self, items: torch.Tensor | None = None) -> torch.Tensor:
        """(n, T, d): content, ID and (when used) CF token of ``items`` (all items when None)."""
        def rows(tensor: torch.Tensor) -> torch.Tensor:
            return tensor if items is None else tensor[items]

        content = sum(F.normalize(mlp(rows(getattr(self, f"feature_{m}"))), dim=1) for m, mlp in enumerate(self.mlps))
        stacked = [content, torch.where(rows(self.id_warm)[:, None], rows(self.item_id), content)]
        if self.use_cf:
            stacked.append(torch.where(rows(self.cf_warm)[:, None], self.cf_proj(rows(self.cf)), content))
        return torch.stack(stacked, dim=1)

    def forward(self, items: torch.Tensor | None = None) -> torch.Tensor:
        return self.fusion(self.tokens(items))


class BundleAttention(nn.Module):
    """One masked self-attention layer of the bundle encoder.

    ``frozen_query_key``: the query and key weights are buffers at torch's default
    ``nn.Linear`` initialisation, never trained; ``value_projection=False``: the values are the
    (normalised) input (both: the ``reference`` variant).
    """

    def __init__(self, dim: int, layernorm: bool, frozen_query_key: bool = False, value_projection: bool = True,
                 eps: float = 1e-5) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=eps) if layernorm else nn.Identity()
        if frozen_query_key:
            self.q, self.k = None, None
            self.register_buffer("q_weight", nn.Linear(dim, dim, bias=False).weight.detach().clone())
            self.register_buffer("k_weight", nn.Linear(dim, dim, bias=False).weight.detach().clone())
        else:
            self.q, self.k = _xavier_linear(dim, dim, bias=False), _xavier_linear(dim, dim, bias=False)
        self.v = _xavier_linear(dim, dim, bias=False) if value_projection else nn.Identity()

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor, scale: float) -> torch.Tensor:
        h = self.norm(x)
        query = self.q(h) if self.q is not None else h @ self.q_weight.T
        key = self.k(h) if self.k is not None else h @ self.k_weight.T
        scores = (query @ key.transpose(1, 2) * scale).masked_fill(key_mask, -math.inf)
        return torch.softmax(scores, dim=-1) @ self.v(h)


class BundleEncoder(nn.Module):
    """Masked self-attention layers over a bundle's items, mean-pooled over real items."""

    def __init__(self, dim: int, n_layers: int, layernorm: bool, residual: bool, reference: bool = False) -> None:
        super().__init__()
        eps = REFERENCE_LAYERNORM_EPS if reference else 1e-5
        self.layers = nn.ModuleList(BundleAttention(dim, layernorm, frozen_query_key=reference,
                                                    value_projection=not reference, eps=eps)
                                    for _ in range(n_layers))
        self.residual = residual
        self.scale = dim ** -0.5

    def forward(self, x: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        """(B, L, d) item representations and (B, L) padding mask → (B, d); every row needs a real item."""
        key_mask = pad[:, None, :]
        for layer in self.layers:
            out = layer(x, key_mask, self.scale)
            x = out + x if self.residual else out
        real = (~pad).unsqueeze(-1).to(x.dtype)
        return (x * real).sum(1) / real.sum(1)


@register
class CLHE(Recommender):
    name = "clhe"
    task = "bundle"
    renamed_keys = {"bundle_layers": "n_bundle_layers", "dropout_rate": "item_augment_dropout",
                    "noise_weight": "item_augment_noise", "cl_alpha": "item_cl_weight",
                    "cl_temp": "item_cl_temperature", "bundle_cl_alpha": "bundle_cl_weight",
                    "bundle_cl_temp": "bundle_cl_temperature"}

    @classmethod
    def default_config(cls) -> dict:
        return {
            "variant": "paper",
            "embedding_size": 64,
            "modalities": None,
            "fusion_layernorm": False,
            "cold_id_token": "learned",
            "n_bundle_layers": 1,
            "bundle_layernorm": True,
            "bundle_residual": False,
            "item_augment": "modality_dropout",
            "item_augment_dropout": 0.2,
            "item_augment_noise": 0.02,
            "item_cl_weight": 0.1,
            "item_cl_temperature": 0.5,
            "bundle_augment": "item_dropout",
            "bundle_ratio": 0.5,
            "bundle_cl_weight": 2.0,
            "bundle_cl_temperature": 0.05,
            "cf_source": "auto",
            "cf_pretrain": {"embedding_size": 64, "n_layers": 2, "reg_weight": 1e-4, "epochs": 100, "lr": 5e-3,
                            "batch_size": 1024, "seed": 2024},
        }

    @classmethod
    def step_memory(cls, config, stats, batch) -> dict[str, int]:
        """Floats, with P the distinct items of the batch, B bundles of padded width L, T tokens
        (3 with CF embeddings, else 2), D_m the feature widths: kept for the backward pass, the
        content MLPs' activations (2·D_m + 2·256 per item) and about 5.5·T·d per token fusion,
        for the encoder's P items (three fusions with the two modality-dropout views) and the
        decoder's I items; the bundle encoder's two passes (8·B·L·d per layer); the
        reconstruction's B × I logits, log-probabilities and targets; one log-probability
        matrix per InfoNCE (P², B²); on top, the last InfoNCE's logits (2·max(P, B)²)."""
        d, size, width = int(config["embedding_size"]), int(batch["size"]), int(batch["width"])
        present, items = float(batch["items"]), stats["items"]
        tokens = 2 if config["cf_source"] == "none" else 3
        content = sum(2 * w + 2 * 256 for w in feature_widths(config, stats).values())
        fusions = 3 if config["item_augment"] == "modality_dropout" else 1
        return {"item encoder": 4 * int(present * (content + fusions * 5.5 * tokens * d)),
                "item decoder": 4 * int(items * (content + 5.5 * tokens * d)),
                "bundle encoder": 4 * 8 * int(config["n_bundle_layers"]) * size * width * d,
                "reconstruction": 4 * 3 * size * items,
                "contrastive logits": 4 * int(present ** 2 + size ** 2 + 2 * max(present, size) ** 2)}

    @classmethod
    def ranking_memory(cls, config, stats) -> dict[str, int]:
        """The encoder table and the decoder's representations (2·I·d) kept for scoring; an item
        encoder pass over all items without gradients while computing them (its largest
        activations, 2·256 + 2·T·d floats per item)."""
        d, items = int(config["embedding_size"]), stats["items"]
        tokens = 2 if config["cf_source"] == "none" else 3
        return {"representations": 4 * 2 * items * d, "temporaries": 4 * items * (2 * 256 + 2 * tokens * d)}

    @classmethod
    def pretrained_inputs(cls, config: dict, dataset) -> dict[str, dict]:
        """The CF item embeddings come from a LightGCN pre-training step unless the dataset
        ships them (``cf_source``: ``auto`` uses the shipped ones when present)."""
        source = config["cf_source"]
        if source not in CF_SOURCES:
            raise ValueError(f"model.cf_source = '{source}' is unknown; use one of {', '.join(CF_SOURCES)}")
        shipped = getattr(dataset, "cf_features", None) is not None
        if source == "lightgcn" or (source == "auto" and not shipped):
            return {"cf_item_embeddings": dict(config["cf_pretrain"])}
        return {}

    def __init__(self, dataset, config, graphs, pretrained: dict | None = None) -> None:
        super().__init__(dataset, config, graphs)
        cfg = self.config
        for key, allowed in (("variant", VARIANTS), ("item_augment", ITEM_AUGMENTS),
                             ("bundle_augment", BUNDLE_AUGMENTS), ("cold_id_token", COLD_ID_TOKENS)):
            if cfg[key] not in allowed:
                raise ValueError(f"model.{key} = '{cfg[key]}' is unknown; use one of {', '.join(allowed)}")
        if not 0.0 < float(cfg["bundle_ratio"]) <= 1.0:
            raise ValueError(f"model.bundle_ratio must lie in (0, 1] (share of items kept), got {cfg['bundle_ratio']}")
        dim = int(cfg["embedding_size"])
        features = [torch.from_numpy(dataset.features[m]) for m in select_modalities(dataset, cfg["modalities"])]
        cf, warm = self._cf_embeddings(dataset, (pretrained or {}).get("cf_item_embeddings"))
        self.reference = cfg["variant"] == "reference"
        id_warm = torch.ones(self.n_items, dtype=torch.bool)
        if cfg["cold_id_token"] == "content" and not self.reference:
            id_warm = torch.from_numpy(np.bincount(dataset.bundle_pairs["train"][1], minlength=self.n_items) > 0)
        self.encoder, self.decoder = (ItemEncoder(features, cf, warm, id_warm, self.n_items, dim,
                                                  bool(cfg["fusion_layernorm"]), value_projection=not self.reference)
                                      for _ in range(2))
        self.bundle_encoder = BundleEncoder(dim, int(cfg["n_bundle_layers"]), bool(cfg["bundle_layernorm"]),
                                            bool(cfg["bundle_residual"]), reference=self.reference)
        self.projector = _xavier_linear(dim, dim)

    def _cf_embeddings(self, dataset, pretrained) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(CF item embeddings, items with user-item interactions): the pre-trained ones when
        :meth:`pretrained_inputs` asked for them, else the dataset's, else none."""
        if "cf_item_embeddings" in self.pretrained_inputs(self.config, dataset):
            if pretrained is None:
                raise ValueError("CLHE needs the CF item embeddings of the 'cf_item_embeddings' pre-training "
                                 "step: build it with recsys.compose.build, or set model.cf_source: none")
            return pretrained
        source = self.config["cf_source"]
        shipped = getattr(dataset, "cf_features", None)
        if source == "none":
            return None, None
        if shipped is None:
            raise ValueError(f"model.cf_source = 'dataset' but dataset '{dataset.name}' ships no CF item "
                             "embedding (item_cf_feature.pt); use cf_source: lightgcn")
        warm = np.diff(dataset.csr("train").tocsc().indptr) > 0
        return torch.from_numpy(np.asarray(shipped, dtype=np.float32)), torch.from_numpy(warm)

    def _padded_table(self, reps: torch.Tensor) -> torch.Tensor:
        """Item representations with a zero row appended for the padding index ``n_items``."""
        return torch.cat([reps, reps.new_zeros(1, reps.shape[1])])

    def encode_bundles(self, table: torch.Tensor, rows: torch.Tensor, pad: int) -> torch.Tensor:
        """Bundle representations of (B, L) rows of ``table`` padded with the index ``pad``."""
        return self.bundle_encoder(table[rows], rows == pad)

    def _kept(self, sizes: torch.Tensor) -> torch.Tensor:
        """How many items of each bundle (B, 1) the augmented view keeps (module docstring)."""
        ratio = float(self.config["bundle_ratio"])
        if self.reference:
            return torch.minimum(torch.round(sizes * ratio + 0.5), sizes - 1)
        keep = torch.ceil(sizes * ratio).clamp(min=1)
        return torch.minimum(keep, (sizes - 1).clamp(min=1))

    def bundle_view(self, rows: torch.Tensor, pad: int, first_items: int | None = None) -> torch.Tensor:
        """The augmented copy of each bundle of (B, L) table rows padded with ``pad``
        (``bundle_augment``, ``bundle_ratio``); replacements are drawn among the table's rows.

        ``reference`` variant: dropped positions hold table row ``first_items`` (item index 0);
        replacements are rows ``first_items + j`` for distinct j < the bundle's size (item
        indices 0..n−1). The view is meant for the full bundle's padding mask.
        """
        real = rows != pad
        sizes = real.sum(1, keepdim=True)
        keys = torch.rand(rows.shape, device=rows.device).masked_fill(~real, 2.0)
        ranks = keys.argsort(dim=1).argsort(dim=1)
        kept = ranks < self._kept(sizes)
        replace = self.config["bundle_augment"] == "item_replace"
        if self.reference:
            dropped = real & ~kept
            if replace:
                order = torch.rand(rows.shape, device=rows.device).masked_fill(~real, 2.0).argsort(dim=1)
                slot = (dropped.cumsum(1) - 1).clamp(min=0)
                filler = first_items + order.gather(1, slot)
            else:
                filler = torch.full_like(rows, first_items)
            return torch.where(dropped, filler, rows)
        if replace:
            random_rows = torch.randint(0, pad, rows.shape, device=rows.device)
            return torch.where(kept, rows, torch.where(real, random_rows, rows))
        return torch.where(kept, rows, torch.full_like(rows, pad))

    def item_views(self, tokens: torch.Tensor, reps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Two augmented views of the items whose tokens and representations are given (``item_augment``)."""
        mode = self.config["item_augment"]
        if mode == "modality_dropout":
            rate = float(self.config["item_augment_dropout"])
            masks = [(torch.rand(tokens.shape[:2], device=tokens.device) >= rate).unsqueeze(-1) for _ in range(2)]
            return self.encoder.fusion(tokens * masks[0]), self.encoder.fusion(tokens * masks[1])
        if mode == "feature_dropout":
            rate = float(self.config["item_augment_dropout"])
            return tuple(self.projector(F.dropout(reps, rate, training=True)) for _ in range(2))
        weight = float(self.config["item_augment_noise"])
        return tuple(self.projector(reps + weight * torch.randn_like(reps)) for _ in range(2))

    def loss(self, items: torch.Tensor) -> dict[str, torch.Tensor]:
        """Losses for a (B, L) batch of train bundles padded with ``n_items``.

        The encoder runs on the batch's distinct items only; the decoder on every item.
        """
        cfg = self.config
        present = torch.unique(items[items != self.n_items])
        local = torch.searchsorted(present, items)
        tokens = self.encoder.tokens(present)
        reps = self.encoder.fusion(tokens)
        table = self._padded_table(reps)
        bundles = self.encode_bundles(table, local, len(present))
        logits = bundles @ self.decoder().T
        target = torch.zeros(items.shape[0], self.n_items + 1, device=items.device)
        target.scatter_(1, items, 1.0)
        target = target[:, :-1]
        recon = -(F.log_softmax(logits, dim=1) * target).sum(1).div(target.sum(1)).mean()
        item_cl = bundle_cl = logits.new_zeros(())
        if float(cfg["item_cl_weight"]) > 0 and cfg["item_augment"] != "none":
            view_a, view_b = self.item_views(tokens, reps)
            item_cl = float(cfg["item_cl_weight"]) * info_nce(view_a, view_b, float(cfg["item_cl_temperature"]))
        if float(cfg["bundle_cl_weight"]) > 0:
            augmented = self._augmented_bundles(items, table, local, len(present))
            bundle_cl = float(cfg["bundle_cl_weight"]) * info_nce(bundles, augmented,
                                                                  float(cfg["bundle_cl_temperature"]))
        return {"loss": recon + item_cl + bundle_cl, "recon": recon, "item_cl": item_cl, "bundle_cl": bundle_cl}

    def _augmented_bundles(self, items: torch.Tensor, table: torch.Tensor, local: torch.Tensor,
                           pad: int) -> torch.Tensor:
        """Representations of the augmented views of a batch (``local``: rows of ``table``)."""
        if not self.reference:
            return self.encode_bundles(table, self.bundle_view(local, pad), pad)
        first = self.encoder(torch.arange(min(items.shape[1], self.n_items), device=items.device))
        view = self.bundle_view(local, pad, first_items=table.shape[0])
        return self.bundle_encoder(torch.cat([table, first])[view], local == pad)

    @torch.no_grad()
    def completion_cache(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(encoder item table with the padding row, decoder item representations)."""
        return self._padded_table(self.encoder()), self.decoder()

    @torch.no_grad()
    def complete(self, inputs: torch.Tensor, cache: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """Scores (B × n_items) of every item for partial bundles padded with ``n_items``."""
        table, decoded = cache if cache is not None else self.completion_cache()
        return self.encode_bundles(table, inputs, self.n_items) @ decoded.T
