"""Bundle completion metrics (docs/models/clhe.md; CLHE, Ma et al., WSDM 2024).

A held-out bundle b is split into input items I_b and ground-truth items T_b. A model scores
every item for the partial bundle; the input items are excluded from the ranking (scored
-inf), and over the remaining items, for K in {5, 10, 20, 40, 80},

    Recall@K = |top_K ∩ T_b| / |T_b|,   NDCG@K = Σ_{r≤K, hit} 1/log2(r+1) / Σ_{r≤min(|T_b|,K)} 1/log2(r+1),

averaged over the bundles with at least one ground-truth item. These are the user-level
definitions of :mod:`recsys.evaluation.metrics` with the bundle in the place of the user and
its input in the place of the train items, so the computation is
:func:`recsys.evaluation.evaluate_ranking` (exact top-K, ties broken by the lower item index).
"""
from __future__ import annotations

from typing import Iterable

import scipy.sparse as sp
import torch

from recsys.evaluation.ranking import PerUserMetrics, ScoreFn, evaluate_ranking_per_user

BUNDLE_KS = (5, 10, 20, 40, 80)
BUNDLE_METRICS = ("recall", "ndcg")


@torch.no_grad()
def evaluate_completion(score_fn: ScoreFn, input_csr: sp.csr_matrix, gt_csr: sp.csr_matrix,
                        ks: Iterable[int] = BUNDLE_KS, metrics: Iterable[str] = BUNDLE_METRICS,
                        batch_size: int = 1024, device: torch.device | str = "cpu") -> dict[str, float]:
    """Mean completion metrics over the bundles (rows) of ``gt_csr`` that have ground truth:
    the means of :func:`evaluate_completion_per_bundle` (same arguments), e.g.
    ``{"recall@20": ..., "ndcg@20": ...}``."""
    return evaluate_completion_per_bundle(score_fn, input_csr, gt_csr, ks, metrics, batch_size, device).means()


@torch.no_grad()
def evaluate_completion_per_bundle(score_fn: ScoreFn, input_csr: sp.csr_matrix, gt_csr: sp.csr_matrix,
                                   ks: Iterable[int] = BUNDLE_KS, metrics: Iterable[str] = BUNDLE_METRICS,
                                   batch_size: int = 1024, device: torch.device | str = "cpu") -> PerUserMetrics:
    """Completion metrics of every bundle (row) of ``gt_csr`` that has ground truth.

    ``score_fn(bundles)`` gets a LongTensor of row indices on ``device`` and returns a fresh
    (B × n_items) score tensor; ``input_csr`` (bundles × items) holds the given items, which
    are never ranked. The result's ``users`` are the bundle rows.
    """
    if input_csr.shape != gt_csr.shape:
        raise ValueError(f"input matrix {input_csr.shape} and ground-truth matrix {gt_csr.shape} differ in shape")
    overlap = input_csr.multiply(gt_csr)
    if overlap.nnz:
        row = int(overlap.tocoo().row[0])
        raise ValueError(f"bundle row {row} has items both in its input and in its ground truth; "
                         "a ground-truth item given as input could never be ranked")
    return evaluate_ranking_per_user(score_fn, exclude_csr=input_csr, target_csr=gt_csr, ks=ks, metrics=metrics,
                                     batch_size=batch_size, device=device)
