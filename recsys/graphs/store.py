"""GraphStore: the one object through which models get their graphs (docs/graphs.md).

Every graph is built once from the dataset's train split and item features, on the store's
device, memoised in memory and, with ``cache_dir``, cached on disk
(:class:`recsys.graphs.cache.GraphCache`). Per-modality kNN graphs and co-occurrence graphs
are the cached units; mixtures of them and transposes are cheap and only memoised; FREEDOM's
pruned user-item graph is drawn anew for every epoch and kept by nobody but the caller.
Sparse graphs are handed out as CSR with int32 indices where they fit
(:func:`recsys.nn.compact_csr`, the layout the sparse kernels use), so a model keeps the
store's tensor itself rather than a copy.

Planning mode (``planning=True``, the dry run): the graphs whose builder module states their
size (``*_size`` next to each builder, :mod:`recsys.graphs.planning`) are not built; the store
returns an empty CSR matrix (zeros when dense) of the right shape, which is all a model's
constructor needs, and records the call with its size in :attr:`GraphStore.plan`. The cheap
graphs (user-item Â, R̄, pruned Â', transposes of built graphs) are built for real and
recorded with their exact size.
"""
from __future__ import annotations

from typing import Callable, Mapping

import torch

from recsys.errors import ConfigError
from recsys.graphs.ann import knn_search
from recsys.graphs.bipartite import build_bipartite
from recsys.graphs.cache import GraphCache
from recsys.graphs.cooccurrence import (cooccurrence_paths, cooccurrence_size, item_cooccurrence_graph,
                                        user_cooccurrence_graph)
from recsys.graphs.enhanced import (enhanced_item_graph, enhanced_item_graph_size, item_cooccurrence_rownorm,
                                    item_cooccurrence_rownorm_size)
from recsys.graphs.homography import homography_graph, homography_size
from recsys.graphs.interest import (interest_knn_graph, interest_knn_size, mean_items_matrix, user_interest,
                                    user_interest_size)
from recsys.graphs.knn import knn_graph, knn_size, mix_graphs, mix_size
from recsys.graphs.planning import GraphSize, PlannedGraph, placeholder, sparse_size
from recsys.graphs.pruning import pruned_bipartite
from recsys.graphs.sparse import to_torch_csr
from recsys.nn.propagation import compact_csr


class GraphStore:
    """Builds the graphs of ``dataset`` a model asks for, once, on ``device``.

    ``chunk_size`` bounds the rows per block of the kNN and co-occurrence builders (None: a
    block of at most 2^25 floats); ``user_knn_method`` is ``"direct"`` or ``"gram"`` (see
    :mod:`recsys.graphs.interest`; both exact). ``knn_projection`` (None: exact, the default)
    makes the item and user kNN graphs of modalities with more dimensions approximate, from
    features randomly projected to that many dimensions (:func:`recsys.graphs.knn.random_projection`).
    ``planning=True`` sizes the expensive graphs instead of building them (module docstring).
    ``graphs`` is the run config's ``graphs`` section: ``knn_backend: faiss`` finds the
    neighbours of every item and user kNN graph with FAISS (:mod:`recsys.graphs.ann`; None or
    ``exact``: the exact builders). Cached kNN graphs are keyed by the search and its parameters.
    """

    def __init__(self, dataset, device: torch.device | str = "cpu", cache_dir=None,
                 chunk_size: int | None = None, user_knn_method: str = "direct",
                 knn_projection: int | None = None, planning: bool = False, graphs: Mapping | None = None) -> None:
        self.dataset = dataset
        self.device = torch.device(device)
        self.cache_dir = cache_dir
        self.chunk_size = chunk_size
        self.user_knn_method = user_knn_method
        self.knn_projection = None if knn_projection is None else int(knn_projection)
        self.planning = bool(planning)
        self.plan: list[PlannedGraph] = []
        self.knn_search = knn_search(graphs)
        self.knn_search_key = "exact" if self.knn_search is None else self.knn_search.key()
        self._memo: dict[tuple, torch.Tensor] = {}
        self._sizes: dict[tuple, GraphSize] = {}  # of the planned graphs that were not built
        self._keys: dict[int, tuple] = {}
        self._cache: GraphCache | None = None

    # ------------------------------------------------------------------ plumbing
    def _get(self, builder: str, params: dict, build: Callable[[], torch.Tensor], cached: bool = True,
             size: Callable[[], GraphSize] | None = None, memo: bool = True, call: str | None = None) -> torch.Tensor:
        """The graph ``builder(**params)``: memoised (unless ``memo=False``), cached on disk when
        ``cached`` and the store has a ``cache_dir``; ``size`` states its size without building
        it (planning mode builds only the graphs without one); ``call`` names it in the plan
        (default: the builder and its parameters)."""
        key = (builder, tuple(sorted(params.items())))
        if memo and key in self._memo:
            return self._memo[key]
        if self.planning:
            graph, planned = self._planned(call or _call(builder, params), build, size)
            self.plan.append(planned)
            if not planned.built:
                self._sizes[key] = planned.size
        elif cached and self.cache_dir is not None:
            if self._cache is None:
                self._cache = GraphCache(self.cache_dir, self.dataset.fingerprint())
            graph = self._cache.load_or_build(builder, params, build, self.device)
        else:
            graph = build()
        if graph.layout != torch.strided:
            graph = compact_csr(graph)
        if memo:
            self._memo[key] = graph
            self._keys[id(graph)] = key
        return graph

    def _planned(self, call: str, build: Callable[[], torch.Tensor],
                 size: Callable[[], GraphSize] | None) -> tuple[torch.Tensor, PlannedGraph]:
        if size is None:
            graph = build()
            return graph, PlannedGraph(call, sparse_size(graph), built=True)
        planned = size()
        return placeholder(planned, self.device), PlannedGraph(call, planned, built=False)

    def size_of(self, graph: torch.Tensor) -> GraphSize:
        """The size of a graph this store returned: exact when built, else the planned size."""
        return self._sizes.get(self._key(graph)) or sparse_size(graph)

    def _key(self, graph: torch.Tensor) -> tuple:
        key = self._keys.get(id(graph))
        if key is None or self._memo.get(key) is not graph:
            raise ValueError("the graph was not returned by this GraphStore; ask the store for the graph first")
        return key

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
        parts = [(w, per_modality(m) if w > 0 else None) for m, w in weights]
        return self._get(name, {"weights": _weights_key(weights), **extra}, lambda: mix_graphs(parts), cached=False,
                         size=lambda: mix_size([(w, g if g is None else self.size_of(g)) for w, g in parts]))

    # ------------------------------------------------------------------ graphs
    def user_item(self) -> torch.Tensor:
        """Â = D^-1/2 [[0, R], [Rᵀ, 0]] D^-1/2 over users then items, (U+I)² sparse CSR (§1)."""
        return self._get("user_item", {}, lambda: build_bipartite(self._train(), self.device))

    def pruned_user_item(self, drop_ratio: float, seed: int, epoch: int) -> torch.Tensor:
        """Â' of FREEDOM's degree-sensitive edge pruning for ``epoch`` (:mod:`recsys.graphs.pruning`):
        the kept edges are a function of (seed, epoch), normalised like :meth:`user_item`.
        A new graph for every epoch: neither memoised nor cached."""
        params = {"drop_ratio": float(drop_ratio), "seed": int(seed), "epoch": int(epoch)}
        return self._get("pruned_user_item", params, lambda: pruned_bipartite(
            self._train(), float(drop_ratio), int(seed), int(epoch), self.device), cached=False, memo=False)

    def user_mean_items(self) -> torch.Tensor:
        """R̄ = D_U^-1 R, the row-normalised train matrix, U × I sparse CSR."""
        return self._get("user_mean_items", {},
                         lambda: to_torch_csr(mean_items_matrix(self._train()), self.device), cached=False)

    def transpose(self, graph: torch.Tensor) -> torch.Tensor:
        """Gᵀ as CSR of a sparse ``graph`` this store returned, built once (memoised with it)."""
        key = self._key(graph)
        planned = self._sizes.get(key)
        return self._get("transpose", {"of": repr(key)}, lambda: graph.t().to_sparse_csr(), cached=False,
                         size=None if planned is None else planned.transposed,
                         call=f"transpose({_call(key[0], dict(key[1]))})")

    def item_knn(self, modality_weights: dict[str, float], k: int, weighted: bool = True) -> torch.Tensor:
        """Σ_m w_m Ŝ_m over items, Ŝ_m the normalised top-k cosine graph of X_m (§2), I × I."""
        def one(modality: str) -> torch.Tensor:
            params = {"modality": modality, "k": int(k), "weighted": bool(weighted), "projection": self.knn_projection,
                      "search": self.knn_search_key}
            return self._get("item_knn", params, lambda: knn_graph(
                self._features(modality), int(k), bool(weighted), self.chunk_size, self.device, self.knn_projection,
                search=self.knn_search),
                size=lambda: knn_size(self.dataset.n_items, int(k), self._features(modality).shape[1],
                                      self.chunk_size))
        return self._mixed("item_knn_mix", modality_weights, one, {"k": int(k), "weighted": bool(weighted)})

    def user_interest(self, modality: str) -> torch.Tensor:
        """P_m = R̄ X_m, the mean train-item features of each user (U × D dense; zero rows for
        users without train items). A fresh tensor on every call, neither cached on disk nor kept
        by the store (U × D floats: 645 MB for Clothing's 4096-d image features), so a caller that
        trains it as a parameter holds the only copy."""
        return self._get("user_interest", {"modality": modality},
                         lambda: user_interest(self._train(), self._features(modality), self.device), cached=False,
                         size=lambda: user_interest_size(self.dataset.n_users, self._features(modality).shape[1]),
                         memo=False)

    def user_interest_knn(self, modality_weights: dict[str, float], k: int, weighted: bool = True) -> torch.Tensor:
        """Σ_m w_m Ŝ_m over users, Ŝ_m the normalised top-k cosine graph of P_m (§3), U × U."""
        def one(modality: str) -> torch.Tensor:
            params = {"modality": modality, "k": int(k), "weighted": bool(weighted), "method": self.user_knn_method,
                      "projection": self.knn_projection, "search": self.knn_search_key}
            return self._get("user_interest_knn", params, lambda: interest_knn_graph(
                self._train(), self._features(modality), int(k), bool(weighted), self.user_knn_method,
                self.chunk_size, self.device, self.knn_projection, search=self.knn_search),
                size=lambda: interest_knn_size(self.dataset.n_users, self.dataset.n_items, int(k),
                                               self._features(modality).shape[1], self.user_knn_method,
                                               self.chunk_size))
        return self._mixed("user_interest_knn_mix", modality_weights, one, {"k": int(k), "weighted": bool(weighted)})

    def item_cooccurrence(self, k: int, pad: str = "resample", fallback_softmax: bool = True,
                          seed: int = 0) -> torch.Tensor:
        """Top-k softmax graph of C_I = RᵀR with the reference padding rules (§4), I × I."""
        params = {"k": int(k), "pad": pad, "fallback_softmax": bool(fallback_softmax), "seed": int(seed)}
        return self._get("item_cooccurrence", params, lambda: item_cooccurrence_graph(
            self._train(), chunk_size=self.chunk_size, device=self.device, **params),
            size=lambda: cooccurrence_size(self.dataset.n_items, int(k), cooccurrence_paths(self._train().T)))

    def user_cooccurrence(self, k: int, pad: str = "resample", fallback_softmax: bool = True,
                          seed: int = 0) -> torch.Tensor:
        """Top-k softmax graph of C_U = R Rᵀ with the reference padding rules (§4), U × U."""
        params = {"k": int(k), "pad": pad, "fallback_softmax": bool(fallback_softmax), "seed": int(seed)}
        return self._get("user_cooccurrence", params, lambda: user_cooccurrence_graph(
            self._train(), chunk_size=self.chunk_size, device=self.device, **params),
            size=lambda: cooccurrence_size(self.dataset.n_users, int(k), cooccurrence_paths(self._train())))

    def _homography(self, name: str, cooccurrence: Callable[[], torch.Tensor], semantic: Callable[[], torch.Tensor],
                    co_weight: float, params: dict) -> torch.Tensor:
        co_weight = float(co_weight)
        co = cooccurrence() if co_weight > 0 else None
        sem = semantic() if co_weight < 1 else None
        return self._get(name, {**params, "co_weight": co_weight}, lambda: homography_graph(co, sem, co_weight),
                         cached=False, size=lambda: homography_size(
                             None if co is None else self.size_of(co), None if sem is None else self.size_of(sem),
                             co_weight))

    def item_homography(self, modality_weights: dict[str, float], k: int, co_weight: float,
                        co_k: int | None = None, **co_options) -> torch.Tensor:
        """G_I = co_weight · C_I(top co_k) + (1 − co_weight) · S_I(top k, mixed) (§5), I × I.

        ``co_k`` defaults to ``k`` (the reference uses item_knn_k for both); ``co_options``
        go to :meth:`item_cooccurrence`.
        """
        co_k = int(k if co_k is None else co_k)
        params = {"weights": _weights_key(modality_weights), "k": int(k), "co_k": co_k, **co_options}
        return self._homography("item_homography", lambda: self.item_cooccurrence(co_k, **co_options),
                                lambda: self.item_knn(modality_weights, k), co_weight, params)

    def user_homography(self, modality_weights: dict[str, float], k: int, co_weight: float,
                        co_k: int | None = None, **co_options) -> torch.Tensor:
        """G_U = co_weight · C_U(top co_k) + (1 − co_weight) · S_U(top k, mixed) (§5), U × U."""
        co_k = int(k if co_k is None else co_k)
        params = {"weights": _weights_key(modality_weights), "k": int(k), "co_k": co_k, **co_options}
        return self._homography("user_homography", lambda: self.user_cooccurrence(co_k, **co_options),
                                lambda: self.user_interest_knn(modality_weights, k), co_weight, params)

    def item_cooccurrence_rownorm(self, k: int) -> torch.Tensor:
        """SIGER's C: row-normalised top-k counts of RᵀR, rows not padded
        (:func:`recsys.graphs.enhanced.item_cooccurrence_rownorm`), I × I."""
        return self._get("item_cooccurrence_rownorm", {"k": int(k)}, lambda: item_cooccurrence_rownorm(
            self._train(), int(k), self.chunk_size, self.device),
            size=lambda: item_cooccurrence_rownorm_size(self.dataset.n_items, int(k),
                                                        cooccurrence_paths(self._train().T)))

    def enhanced_item_graph(self, modality: str, k: int, co_k: int, co_weight: float) -> torch.Tensor:
        """SIGER's Ŝ_m = rownorm((1 − β) S_m + β C) (:mod:`recsys.graphs.enhanced`), I × I: S_m the
        unit-weight top-k kNN graph of modality m (:meth:`item_knn`), C =
        :meth:`item_cooccurrence_rownorm` (top ``co_k``, not built when β = ``co_weight`` = 0)."""
        beta = float(co_weight)
        knn = self.item_knn({modality: 1.0}, int(k), weighted=False)
        co = self.item_cooccurrence_rownorm(int(co_k)) if beta > 0 else None
        params = {"modality": modality, "k": int(k), "co_k": int(co_k) if beta > 0 else None, "co_weight": beta}
        return self._get("enhanced_item_graph", params, lambda: enhanced_item_graph(knn, co, beta), cached=False,
                         size=lambda: enhanced_item_graph_size(self.size_of(knn), None if co is None else
                                                               self.size_of(co), beta))


def _call(builder: str, params: dict) -> str:
    return f"{builder}({', '.join(f'{k}={v}' for k, v in params.items())})"


def _weights_key(modality_weights) -> str:
    """``image=0.1,text=0.9``: the modality weights, sorted, as one memo-key and report entry."""
    items = modality_weights.items() if isinstance(modality_weights, dict) else modality_weights
    return ",".join(f"{m}={float(w):g}" for m, w in sorted((str(m), float(w)) for m, w in items))
