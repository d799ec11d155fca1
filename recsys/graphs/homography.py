"""Enhanced (homography) graphs of REARM (docs/graphs.md §5; Ma et al., ACM MM 2025).

G_I = β_I · C_I + (1 − β_I) · S_I and G_U = β_U · C_U + (1 − β_U) · S_U (β = the model keys
``item_co_weight`` / ``user_co_weight``), with C the top-k softmax co-occurrence graph
(:mod:`recsys.graphs.cooccurrence`) and S the modality-mixed kNN graph
(:mod:`recsys.graphs.knn`, :mod:`recsys.graphs.interest`).
"""
from __future__ import annotations

import torch

from recsys.graphs.knn import mix_graphs, mix_size
from recsys.graphs.planning import GraphSize


def homography_graph(cooccurrence: torch.Tensor | None, semantic: torch.Tensor | None,
                     co_weight: float) -> torch.Tensor:
    """co_weight · C + (1 − co_weight) · S; a graph whose weight is 0 may be None."""
    co_weight = _checked(co_weight)
    return mix_graphs([(co_weight, cooccurrence), (1.0 - co_weight, semantic)])


def homography_size(cooccurrence: GraphSize | None, semantic: GraphSize | None, co_weight: float) -> GraphSize:
    """Size bound of :func:`homography_graph` from the sizes of its parts (their sum)."""
    co_weight = _checked(co_weight)
    return mix_size([(co_weight, cooccurrence), (1.0 - co_weight, semantic)])


def _checked(co_weight: float) -> float:
    co_weight = float(co_weight)
    if not 0.0 <= co_weight <= 1.0:
        raise ValueError(f"co_weight must lie in [0, 1], got {co_weight}")
    return co_weight
