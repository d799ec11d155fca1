"""Sparse graphs built from the train split and item features (specs/graphs.md)."""
from recsys.graphs.bipartite import bipartite_adjacency, build_bipartite
from recsys.graphs.sparse import to_scipy_csr, to_torch_csr
from recsys.graphs.store import GraphStore

__all__ = ["GraphStore", "bipartite_adjacency", "build_bipartite", "to_scipy_csr", "to_torch_csr"]
