"""Training-free bundle completion baselines (docs/models/clhe.md), with the bundle model interface
of :mod:`recsys.training.bundle_task` (``completion_cache()``, ``complete(inputs, cache)``).

- :class:`PopularityCompletion`: s_i = number of train bundles that contain item i, the same
  ranking for every partial bundle.
- :class:`FeatureKNNCompletion`: nearest-neighbour completion by feature similarity. With
  f̂_i the L2-normalised feature row of item i (``text`` by default) and I_b the input items,
  s_bi = Σ_{j∈I_b} f̂_i·f̂_j (``aggregation="sum"``) or max_{j∈I_b} f̂_i·f̂_j (``"max"``).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

AGGREGATIONS = ("sum", "max")


class PopularityCompletion(nn.Module):
    def __init__(self, dataset) -> None:
        super().__init__()
        self.n_items = dataset.n_items
        counts = np.bincount(dataset.bundle_pairs["train"][1], minlength=dataset.n_items).astype(np.float32)
        self.register_buffer("counts", torch.from_numpy(counts))

    def completion_cache(self) -> None:
        return None

    def complete(self, inputs: torch.Tensor, cache=None) -> torch.Tensor:
        return self.counts.expand(inputs.shape[0], -1).clone()


class FeatureKNNCompletion(nn.Module):
    def __init__(self, dataset, modality: str = "text", aggregation: str = "sum") -> None:
        super().__init__()
        if modality not in dataset.features:
            raise ValueError(f"dataset '{dataset.name}' has no '{modality}' features (it has "
                             f"{sorted(dataset.features)}); choose one of those")
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation '{aggregation}' is unknown; use one of {', '.join(AGGREGATIONS)}")
        self.n_items = dataset.n_items
        self.aggregation = aggregation
        unit = F.normalize(torch.from_numpy(dataset.features[modality]), dim=1)
        self.register_buffer("unit", torch.cat([unit, unit.new_zeros(1, unit.shape[1])]))

    def completion_cache(self) -> None:
        return None

    def complete(self, inputs: torch.Tensor, cache=None) -> torch.Tensor:
        """(B, L) padded partial bundles → (B, n_items) similarity scores."""
        items = self.unit[:-1]
        given = self.unit[inputs]
        if self.aggregation == "sum":
            return given.sum(1) @ items.T
        similarity = given @ items.T
        pad = (inputs == self.n_items).unsqueeze(-1)
        return similarity.masked_fill(pad, -torch.inf).amax(dim=1)
