"""Reusable layers: sparse propagation over fixed graphs."""
from recsys.nn.propagation import compact_csr, propagate, sparse_matmul

__all__ = ["compact_csr", "propagate", "sparse_matmul"]
