"""GraphStore: the one object models ask for graphs (built once, memoised)."""
from __future__ import annotations

import torch

from recsys.graphs.bipartite import build_bipartite


class GraphStore:
    """Builds each graph of ``dataset`` a model asks for once, on ``device``."""

    def __init__(self, dataset, device: torch.device | str = "cpu", cache_dir=None) -> None:
        self.dataset = dataset
        self.device = torch.device(device)
        self.cache_dir = cache_dir
        self._memo: dict[tuple, torch.Tensor] = {}

    def user_item(self) -> torch.Tensor:
        """Â over users then items, (U+I) × (U+I) sparse CSR (graphs.md §1)."""
        key = ("user_item",)
        if key not in self._memo:
            self._memo[key] = build_bipartite(self.dataset.csr("train"), self.device)
        return self._memo[key]
