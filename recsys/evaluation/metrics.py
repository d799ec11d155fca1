"""Top-K ranking metrics computed batched from a hit matrix (MMRec / RecBole definitions).

Input for a batch of B users: ``hits`` (B × maxK, bool), ``hits[u, r-1]`` true when the item
ranked ``r`` for user ``u`` is one of the user's held-out items ``T_u``; and ``n_targets``
(B,) = ``|T_u|``. For a cut-off K, with ``h_u(K) = Σ_{r≤K} hits[u, r-1]``:

- Recall@K    = h_u(K) / |T_u|
- Precision@K = h_u(K) / K
- HitRate@K   = 1[h_u(K) > 0]
- NDCG@K      = DCG / IDCG, DCG = Σ_{r≤K, hit} 1/log2(r+1), IDCG = Σ_{r≤min(|T_u|,K)} 1/log2(r+1)
  (binary gains; Järvelin & Kekäläinen, TOIS 2002)
- MAP@K       = (1 / min(|T_u|, K)) Σ_{r≤K, hit} Precision@r
  (the normalisation of MMRec, Zhou 2023 arXiv:2302.03497, inherited from RecBole)

Each function returns the per-user values (B,) in float64; averaging over users is the
caller's job (see :func:`recsys.evaluation.ranking.evaluate_ranking`).
"""
from __future__ import annotations

import difflib
from functools import cached_property
from typing import Callable, Iterable

import torch
from torch import Tensor


class RankedHits:
    """A batch's hit matrix with the cumulative sums every metric reads, computed once."""

    def __init__(self, hits: Tensor, n_targets: Tensor) -> None:
        if hits.dim() != 2 or n_targets.shape != (hits.shape[0],):
            raise ValueError(f"hits must be (B, maxK) and n_targets (B,), got {tuple(hits.shape)} "
                             f"and {tuple(n_targets.shape)}")
        self.hits = hits.to(torch.float64)
        self.n_targets = n_targets.to(device=hits.device, dtype=torch.float64)
        self.max_k = hits.shape[1]

    @cached_property
    def ranks(self) -> Tensor:
        """1, 2, ..., maxK."""
        return torch.arange(1, self.max_k + 1, device=self.hits.device, dtype=torch.float64)

    @cached_property
    def discounts(self) -> Tensor:
        """1 / log2(r + 1) for r = 1..maxK."""
        return 1.0 / torch.log2(self.ranks + 1.0)

    @cached_property
    def count(self) -> Tensor:
        """h_u(r): hits within the first r positions (B × maxK)."""
        return self.hits.cumsum(1)

    @cached_property
    def dcg(self) -> Tensor:
        return (self.hits * self.discounts).cumsum(1)

    @cached_property
    def ideal_dcg(self) -> Tensor:
        """IDCG with j relevant items at the top, j = 1..maxK."""
        return self.discounts.cumsum(0)

    @cached_property
    def precision_at_hits(self) -> Tensor:
        """Σ_{r'≤r, hit} Precision@r' (B × maxK)."""
        return (self.hits * self.count / self.ranks).cumsum(1)

    def capped_targets(self, k: int) -> Tensor:
        """min(|T_u|, K), at least 1."""
        return self.n_targets.clamp(min=1.0, max=float(k))


def recall(h: RankedHits, k: int) -> Tensor:
    return h.count[:, k - 1] / h.n_targets


def precision(h: RankedHits, k: int) -> Tensor:
    return h.count[:, k - 1] / k


def hit_rate(h: RankedHits, k: int) -> Tensor:
    return (h.count[:, k - 1] > 0).to(torch.float64)


def ndcg(h: RankedHits, k: int) -> Tensor:
    ideal = h.ideal_dcg[h.capped_targets(k).long() - 1]
    return h.dcg[:, k - 1] / ideal


def mean_average_precision(h: RankedHits, k: int) -> Tensor:
    return h.precision_at_hits[:, k - 1] / h.capped_targets(k)


METRICS: dict[str, Callable[[RankedHits, int], Tensor]] = {
    "recall": recall,
    "ndcg": ndcg,
    "precision": precision,
    "map": mean_average_precision,
    "hit": hit_rate,
}


def validate(ks: Iterable[int], metrics: Iterable[str]) -> tuple[list[int], list[str]]:
    """Sorted distinct positive cut-offs and known metric names, or a ValueError naming the fix."""
    ks = list(ks)
    if not ks or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in ks):
        raise ValueError(f"eval.ks must be a non-empty list of positive integers, got {ks}")
    names = list(metrics)
    if not names:
        raise ValueError(f"eval.metrics is empty; choose from {', '.join(METRICS)}")
    for name in names:
        if name not in METRICS:
            close = difflib.get_close_matches(name, list(METRICS), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ValueError(f"unknown metric '{name}' in eval.metrics{hint}; choose from {', '.join(METRICS)}")
    return sorted(set(ks)), list(dict.fromkeys(names))


def per_user_metrics(hits: Tensor, n_targets: Tensor, ks: Iterable[int], metrics: Iterable[str]) -> dict[str, Tensor]:
    """Per-user values (B,) under keys ``"{metric}@{k}"``, metric-major then ascending K.

    ``hits`` must have at least ``max(ks)`` columns; users with ``n_targets == 0`` must not be
    passed (their Recall is undefined and the protocol skips them).
    """
    ks, names = validate(ks, metrics)
    if hits.shape[1] < ks[-1]:
        raise ValueError(f"hit matrix has {hits.shape[1]} columns but K={ks[-1]} was asked for")
    if bool((n_targets < 1).any()):
        raise ValueError("every user passed to per_user_metrics needs at least one held-out item")
    h = RankedHits(hits, n_targets)
    return {f"{name}@{k}": METRICS[name](h, k) for name in names for k in ks}
