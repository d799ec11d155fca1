"""GraphStore: the one object through which models get their graphs (docs/graphs.md).

Every graph is built once from the dataset's train split and item features, on the store's
device, memoised in memory and, with ``cache_dir``, cached on disk
(:class:`recsys.graphs.cache.GraphCache`). Per-modality kNN graphs and co-occurrence graphs
are the cached units; mixtures of them are cheap and only memoised.
"""
from __future__ import annotations

from typing import Callable

import torch

from recsys.errors import ConfigError
from recsys.graphs.bipartite import build_bipartite
from recsys.graphs.cache import GraphCache
from recsys.graphs.cooccurrence import item_cooccurrence_graph, user_cooccurrence_graph
from recsys.graphs.homography import homography_graph
from recsys.graphs.interest import interest_knn_graph, mean_items_matrix, user_interest
from recsys.graphs.knn import knn_graph, mix_graphs
from recsys.graphs.sparse import to_torch_csr


class GraphStore:
    """Builds the graphs of ``dataset`` a model asks for, once, on ``device``.

    ``chunk_size`` bounds the rows per block of the kNN and co-occurrence builders (None: a
    block of at most 2^25 floats); ``user_knn_method`` is ``"direct"`` or ``"gram"`` (see
    :mod:`recsys.graphs.interest`; both exact). ``knn_projection`` (None: exact, the default)
    makes the item and user kNN graphs of modalities with more dimensions approximate, from
    features randomly projected to that many dimensions (:func:`recsys.graphs.knn.random_projection`).
    """

    def __init__(self, dataset, device: torch.device | str = "cpu", cache_dir=None,
                 chunk_size: int | None = None, user_knn_method: str = "direct",
                 knn_projection: int | None = None) -> None:
        self.dataset = dataset
        self.device = torch.device(device)
        self.cache_dir = cache_dir
        self.chunk_size = chunk_size
        self.user_knn_method = user_knn_method
        self.knn_projection = None if knn_projection is None else int(knn_projection)
        self._memo: dict[tuple, torch.Tensor] = {}
        self._cache: GraphCache | None = None

    # ------------------------------------------------------------------ plumbing
    def _get(self, builder: str, params: dict, build: Callable[[], torch.Tensor], cached: bool = True) -> torch.Tensor:
        key = (builder, tuple(sorted(params.items())))
        if key not in self._memo:
            if cached and self.cache_dir is not None:
                if self._cache is None:
                    self._cache = GraphCache(self.cache_dir, self.dataset.fingerprint())
                self._memo[key] = self._cache.load_or_build(builder, params, build, self.device)
            else:
                self._memo[key] = build()
        return self._memo[key]

    def _train(self):
        return self.dataset.csr("train")

    def _features(self, modality: str):
        if modality not in self.dataset.features:
            raise ConfigError(f"dataset '{self.dataset.name}' has no '{modality}' features; it has "
                           f"{sorted(self.dataset.features) or 'none'} (load them with dataset.modalities)")
        return self.dataset.features[modality]

    def _weights(self, modality_weights: dict[str, float]) -> list[tuple[str, float]]:
        if not modality_weights:
            raise ValueError("modality_weights is empty; give a weight per modality, summing to 1")
        for modality in modality_weights:
            self._features(modality)
        return sorted((m, float(w)) for m, w in modality_weights.items())

    def _mixed(self, name: str, modality_weights: dict[str, float], per_modality: Callable[[str], torch.Tensor],
               extra: dict) -> torch.Tensor:
        weights = self._weights(modality_weights)
        return self._get(name, {"weights": repr(weights), **extra},
                         lambda: mix_graphs([(w, per_modality(m) if w > 0 else None) for m, w in weights]),
                         cached=False)

    # ------------------------------------------------------------------ graphs
    def user_item(self) -> torch.Tensor:
        """Â = D^-1/2 [[0, R], [Rᵀ, 0]] D^-1/2 over users then items, (U+I)² sparse CSR (§1)."""
        return self._get("user_item", {}, lambda: build_bipartite(self._train(), self.device))

    def user_mean_items(self) -> torch.Tensor:
        """R̄ = D_U^-1 R, the row-normalised train matrix, U × I sparse CSR."""
        return self._get("user_mean_items", {},
                         lambda: to_torch_csr(mean_items_matrix(self._train()), self.device), cached=False)

    def item_knn(self, modality_weights: dict[str, float], k: int, weighted: bool = True) -> torch.Tensor:
        """Σ_m w_m Ŝ_m over items, Ŝ_m the normalised top-k cosine graph of X_m (§2), I × I."""
        def one(modality: str) -> torch.Tensor:
            params = {"modality": modality, "k": int(k), "weighted": bool(weighted), "projection": self.knn_projection}
            return self._get("item_knn", params, lambda: knn_graph(
                self._features(modality), int(k), bool(weighted), self.chunk_size, self.device, self.knn_projection))
        return self._mixed("item_knn_mix", modality_weights, one, {"k": int(k), "weighted": bool(weighted)})

    def user_interest(self, modality: str) -> torch.Tensor:
        """P_m = R̄ X_m, the mean train-item features of each user (U × D dense; zero rows for
        users without train items)."""
        return self._get("user_interest", {"modality": modality},
                         lambda: user_interest(self._train(), self._features(modality), self.device), cached=False)

    def user_interest_knn(self, modality_weights: dict[str, float], k: int, weighted: bool = True) -> torch.Tensor:
        """Σ_m w_m Ŝ_m over users, Ŝ_m the normalised top-k cosine graph of P_m (§3), U × U."""
        def one(modality: str) -> torch.Tensor:
            params = {"modality": modality, "k": int(k), "weighted": bool(weighted), "method": self.user_knn_method,
                      "projection": self.knn_projection}
            return self._get("user_interest_knn", params, lambda: interest_knn_graph(
                self._train(), self._features(modality), int(k), bool(weighted), self.user_knn_method,
                self.chunk_size, self.device, self.knn_projection))
        return self._mixed("user_interest_knn_mix", modality_weights, one, {"k": int(k), "weighted": bool(weighted)})

    def item_cooccurrence(self, k: int, pad: str = "resample", fallback_softmax: bool = True,
                          seed: int = 0) -> torch.Tensor:
        """Top-k softmax graph of C_I = RᵀR with the reference padding rules (§4), I × I."""
        params = {"k": int(k), "pad": pad, "fallback_softmax": bool(fallback_softmax), "seed": int(seed)}
        return self._get("item_cooccurrence", params, lambda: item_cooccurrence_graph(
            self._train(), chunk_size=self.chunk_size, device=self.device, **params))

    def user_cooccurrence(self, k: int, pad: str = "resample", fallback_softmax: bool = True,
                          seed: int = 0) -> torch.Tensor:
        """Top-k softmax graph of C_U = R Rᵀ with the reference padding rules (§4), U × U."""
        params = {"k": int(k), "pad": pad, "fallback_softmax": bool(fallback_softmax), "seed": int(seed)}
        return self._get("user_cooccurrence", params, lambda: user_cooccurrence_graph(
            self._train(), chunk_size=self.chunk_size, device=self.device, **params))

    def item_homography(self, modality_weights: dict[str, float], k: int, co_weight: float,
                        co_k: int | None = None, **co_options) -> torch.Tensor:
        """G_I = co_weight · C_I(top co_k) + (1 − co_weight) · S_I(top k, mixed) (§5), I × I.

        ``co_k`` defaults to ``k`` (the reference uses item_knn_k for both); ``co_options``
        go to :meth:`item_cooccurrence`.
        """
        co_k = int(k if co_k is None else co_k)
        return homography_graph(
            self.item_cooccurrence(co_k, **co_options) if float(co_weight) > 0 else None,
            self.item_knn(modality_weights, k) if float(co_weight) < 1 else None, co_weight)

    def user_homography(self, modality_weights: dict[str, float], k: int, co_weight: float,
                        co_k: int | None = None, **co_options) -> torch.Tensor:
        """G_U = co_weight · C_U(top co_k) + (1 − co_weight) · S_U(top k, mixed) (§5), U × U."""
        co_k = int(k if co_k is None else co_k)
        return homography_graph(
            self.user_cooccurrence(co_k, **co_options) if float(co_weight) > 0 else None,
            self.user_interest_knn(modality_weights, k) if float(co_weight) < 1 else None, co_weight)
