"""Evaluation: top-K ranking metrics and batched full-ranking evaluation on the device."""
from recsys.evaluation.metrics import METRICS, per_user_metrics
from recsys.evaluation.ranking import (
    PerUserMetrics,
    csr_rows_to_coo,
    evaluate_ranking,
    evaluate_ranking_per_user,
    stable_topk,
    topk_excluding,
)

__all__ = ["METRICS", "PerUserMetrics", "csr_rows_to_coo", "evaluate_ranking", "evaluate_ranking_per_user",
           "per_user_metrics", "stable_topk", "topk_excluding"]
