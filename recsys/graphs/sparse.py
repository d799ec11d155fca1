"""Conversions between scipy CSR matrices and torch sparse CSR tensors (float32)."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch


def to_torch_csr(matrix: sp.spmatrix, device: torch.device | str = "cpu") -> torch.Tensor:
    """``matrix`` as a float32 torch sparse CSR tensor on ``device`` (duplicates summed, sorted)."""
    csr = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    csr.sum_duplicates()
    csr.sort_indices()
    return torch.sparse_csr_tensor(
        torch.from_numpy(csr.indptr.astype(np.int64)),
        torch.from_numpy(csr.indices.astype(np.int64)),
        torch.from_numpy(csr.data),
        size=csr.shape,
        dtype=torch.float32,
        device=device,
        check_invariants=False,
    )


def to_scipy_csr(tensor: torch.Tensor) -> sp.csr_matrix:
    """A torch sparse (CSR or COO) tensor as a float32 scipy CSR matrix (on the CPU)."""
    csr = tensor if tensor.layout == torch.sparse_csr else tensor.to_sparse_csr()
    csr = csr.cpu()
    return sp.csr_matrix(
        (csr.values().numpy().astype(np.float32), csr.col_indices().numpy(), csr.crow_indices().numpy()),
        shape=tuple(csr.shape),
    )


def inverse_sqrt(degree: np.ndarray) -> np.ndarray:
    """d^-1/2 elementwise, with 0 where d = 0 (isolated nodes), never inf or NaN."""
    degree = np.asarray(degree, dtype=np.float64)
    out = np.zeros_like(degree)
    np.power(degree, -0.5, out=out, where=degree > 0)
    return out


def symmetric_normalize(matrix: sp.spmatrix, degree: np.ndarray | None = None) -> sp.csr_matrix:
    """D^-1/2 M D^-1/2 with D the row sums of ``matrix`` (or the given ``degree``)."""
    csr = sp.csr_matrix(matrix, dtype=np.float64)
    if degree is None:
        degree = np.asarray(csr.sum(axis=1)).ravel()
    scale = sp.diags(inverse_sqrt(degree))
    return (scale @ csr @ scale).tocsr().astype(np.float32)
