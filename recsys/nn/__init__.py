"""Reusable layers: sparse propagation over fixed graphs."""
from recsys.nn.propagation import propagate, sparse_matmul

__all__ = ["propagate", "sparse_matmul"]
