"""Message passing over fixed sparse graphs.

LightGCN (He et al., SIGIR 2020): E^(l+1) = Â E^(l); the output is the mean of layers
0..L. The graphs here are constants (no gradient w.r.t. edge weights), so the backward of
Y = A X is ∂X = Aᵀ ∂Y; for a symmetric A (the normalised user-item graph) that is A ∂Y,
which avoids transposing a CSR matrix on every backward pass.

Sparse products always run in the graph's precision (float32), also inside a bf16/fp16
autocast region (``train.amp``): the CPU sparse kernels (MKL) have no bf16 path, and the
graph weights (products of 1/√degree) would lose their low bits in 16 bits. Their dense
input is cast up, their output is float32, and autocast casts it down again where the next
dense product needs it.
"""
from __future__ import annotations

import torch


def compact_csr(adj: torch.Tensor) -> torch.Tensor:
    """The same sparse matrix as CSR with int32 indices where they fit.

    The CPU kernel (MKL) works on int32 indices; int64 CSR is converted on every product.
    """
    csr = adj if adj.layout == torch.sparse_csr else adj.to_sparse_csr()
    if csr.crow_indices().dtype == torch.int32 or csr._nnz() >= 2**31 - 1:
        return csr
    return torch.sparse_csr_tensor(csr.crow_indices().int(), csr.col_indices().int(), csr.values(),
                                   csr.shape, device=csr.device, check_invariants=False)


def _sparse_mm(adj: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``adj @ x`` in ``adj``'s dtype, with autocast off (module docstring)."""
    with torch.autocast(device_type=x.device.type, enabled=False):
        return torch.sparse.mm(adj, x.to(adj.dtype))


class _SymmetricSparseMatmul(torch.autograd.Function):
    @staticmethod
    def forward(ctx, adj: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.adj = adj
        return _sparse_mm(adj, x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return None, _sparse_mm(ctx.adj, grad)


class _SparseMatmul(torch.autograd.Function):
    @staticmethod
    def forward(ctx, adj: torch.Tensor, adj_t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.adj_t = adj_t
        return _sparse_mm(adj, x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return None, None, _sparse_mm(ctx.adj_t, grad)


def sparse_matmul(adj: torch.Tensor, x: torch.Tensor, symmetric: bool = False,
                  adj_t: torch.Tensor | None = None) -> torch.Tensor:
    """``adj @ x`` for a constant sparse ``adj``, differentiable in ``x``.

    ``symmetric=True`` promises adjᵀ = adj. Otherwise pass ``adj_t`` (adjᵀ as CSR, built once
    by the caller) for a fast backward, or neither for torch's generic path.
    """
    if symmetric:
        return _SymmetricSparseMatmul.apply(adj, x)
    if adj_t is not None:
        return _SparseMatmul.apply(adj, adj_t, x)
    return _sparse_mm(adj, x)


def propagate(adj: torch.Tensor, x: torch.Tensor, n_layers: int, symmetric: bool = False,
              adj_t: torch.Tensor | None = None, combine: str = "mean") -> torch.Tensor:
    """Apply ``adj`` ``n_layers`` times; ``combine`` = "mean" of layers 0..L or "last"."""
    if combine not in ("mean", "last"):
        raise ValueError(f"combine must be 'mean' or 'last', got '{combine}'")
    current, total = x, x
    for layer in range(n_layers):
        current = sparse_matmul(adj, current, symmetric=symmetric, adj_t=adj_t)
        if combine == "mean":
            total = total + current if layer == 0 else total.add_(current)
    return current if combine == "last" else total / (n_layers + 1)
