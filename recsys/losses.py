"""Loss functions shared by every model (one copy each).

- BPR (Rendle et al., UAI 2009): ``-mean log σ(s⁺ − s⁻)``.
- InfoNCE (van den Oord et al., 2018; as used by SGL/SimGCL and REARM): for L2-normalised
  rows a_n, b_n, ``-mean_n log exp(a_n·b_n/τ) / Σ_m exp(a_n·b_m/τ)``; the other rows of the
  batch are the negatives. ``symmetric`` averages both directions.
- Anchor-based InfoNCE (docs/models/siger.md §4): the anchor row a_n is pulled to its positive p_n and
  pushed from the other anchors: ``-log exp(p_n·a_n/τ) / Σ_m exp(p_n·a_m/τ)``.
- Orthogonality (REARM modal-unique loss): centre x and y over the batch, L2-normalise rows
  (norms detached), loss = mean of the squared entries of xᵀy (d × d).
- Batch L2 regularisation: ``Σ_t ‖t‖² / (2·batch)`` as in LightGCN/MMRec.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def bpr_loss(pos_scores: torch.Tensor, neg_scores: torch.Tensor) -> torch.Tensor:
    """Bayesian personalised ranking loss, ``-mean log σ(pos − neg)``."""
    return -F.logsigmoid(pos_scores - neg_scores).mean()


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float, symmetric: bool = False) -> torch.Tensor:
    """InfoNCE over paired rows of ``a`` and ``b`` with in-batch negatives."""
    a = F.normalize(a, dim=1)
    b = F.normalize(b, dim=1)
    logits = a @ b.T / temperature
    targets = torch.arange(a.shape[0], device=a.device)
    loss = F.cross_entropy(logits, targets)
    if symmetric:
        loss = 0.5 * (loss + F.cross_entropy(logits.T, targets))
    return loss


def anchor_info_nce(anchor: torch.Tensor, positive: torch.Tensor, temperature: float) -> torch.Tensor:
    """InfoNCE with ``anchor`` rows as the candidates: each positive must pick its own anchor."""
    return info_nce(positive, anchor, temperature, symmetric=False)


def orthogonality_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared entry of the cross-correlation of centred, row-normalised x and y."""
    x = x - x.mean(dim=0, keepdim=True)
    y = y - y.mean(dim=0, keepdim=True)
    x = x / (x.norm(dim=1, keepdim=True).detach() + 1e-6)
    y = y / (y.norm(dim=1, keepdim=True).detach() + 1e-6)
    return (x.T @ y).pow(2).mean()


def l2_reg(*tensors: torch.Tensor) -> torch.Tensor:
    """``Σ_t ‖t‖² / (2·batch)``, batch = number of rows of the first tensor."""
    total = sum(t.pow(2).sum() for t in tensors)
    return total / (2 * tensors[0].shape[0])
