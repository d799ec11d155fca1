"""Sparse graphs built from the train split and item features (docs/graphs.md).

Models get graphs only through :class:`GraphStore`; the pure builders behind it are exported
for tests, benchmarks and other packages.
"""
from recsys.graphs.bipartite import bipartite_adjacency, build_bipartite
from recsys.graphs.cache import GraphCache
from recsys.graphs.cooccurrence import (cooccurrence_graph, cooccurrence_topk, item_cooccurrence_graph,
                                        user_cooccurrence_graph)
from recsys.graphs.homography import homography_graph
from recsys.graphs.interest import interest_knn_graph, mean_items_matrix, user_interest
from recsys.graphs.knn import cosine_topk, knn_graph, mix_graphs, neighbour_graph, random_projection
from recsys.graphs.planning import GraphSize, PlannedGraph
from recsys.graphs.pruning import pruned_bipartite
from recsys.graphs.sparse import to_scipy_csr, to_torch_csr
from recsys.graphs.store import GraphStore

__all__ = [
    "GraphCache", "GraphSize", "GraphStore", "PlannedGraph", "bipartite_adjacency", "build_bipartite", "cooccurrence_graph",
    "cooccurrence_topk", "cosine_topk", "homography_graph", "interest_knn_graph", "item_cooccurrence_graph",
    "knn_graph", "mean_items_matrix", "mix_graphs", "neighbour_graph", "random_projection", "to_scipy_csr",
    "to_torch_csr",
    "user_cooccurrence_graph", "user_interest",
]
