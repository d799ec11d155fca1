"""Symmetric-normalised user-item graph (docs/graphs.md §1; LightGCN, He et al., SIGIR 2020).

A = [[0, R], [Rᵀ, 0]] over U + I nodes (users first, then items), Â = D^-1/2 A D^-1/2 with
D the node degrees; a user or item without train interactions is isolated and its row and
column are 0 (never inf or NaN).
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from recsys.graphs.sparse import symmetric_normalize, to_torch_csr


def bipartite_adjacency(interactions: sp.spmatrix) -> sp.csr_matrix:
    """Â of the user × item matrix ``interactions`` (binarised) as scipy CSR, (U+I) × (U+I)."""
    binary = sp.csr_matrix(interactions, dtype=np.float32, copy=True)
    binary.sum_duplicates()
    binary.data[:] = 1.0
    adjacency = sp.bmat([[None, binary], [binary.T, None]], format="csr", dtype=np.float32)
    return symmetric_normalize(adjacency)


def build_bipartite(interactions: sp.spmatrix, device: torch.device | str = "cpu") -> torch.Tensor:
    """Â as a float32 torch sparse CSR tensor on ``device``."""
    return to_torch_csr(bipartite_adjacency(interactions), device)
