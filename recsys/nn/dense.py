"""Dense float32 matrix products on CPU through oneDNN.

PyTorch's CPU matrix products go through MKL, which on processors that are not Intel's runs its
AVX2 kernels even where AVX-512 is present: on this project's machine (AMD EPYC, AVX-512)
about 51·10⁹ multiply-adds per second per core. oneDNN, which PyTorch also ships, picks its
kernels by the processor's features: about 95–115·10⁹ per core on REARM's shapes (feature
projections n × 4,096 × 64, meta-network layers n × 448 × 448), still in float32 with IEEE
arithmetic (no reduced-precision mode: results differ from MKL's only in summation order,
relative differences of a few 10⁻⁷). These functions use it for float32 CPU tensors and
``torch.addmm``/``torch.mm`` otherwise (other dtypes and devices, or under autocast). They
have no autograd formula: they are meant for autograd functions whose backward pass is
written out.
"""
from __future__ import annotations

from typing import Iterator

import torch

_ONEDNN = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def autocast_active(x: torch.Tensor) -> bool:
    """Whether autocast (``train.amp``) is on for ``x``'s device. The fused float32 functions of
    ``recsys.nn`` then step aside for plain operations, whose dtypes autocast chooses."""
    return torch.is_autocast_enabled(x.device.type)


def _use_onednn(*tensors: torch.Tensor) -> bool:
    return _ONEDNN and not autocast_active(tensors[0]) and \
        all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors)


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """x Wᵀ (+ b) for x (n × k), W (m × k), b (m)."""
    if _use_onednn(x, weight) and weight.numel() > 0:
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")
    return torch.addmm(bias, x, weight.t()) if bias is not None else x @ weight.t()


def matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a b for a (n × k), b (k × m); either may be a transposed view.

    oneDNN first copies a transposed left operand into row order, a cache-unfriendly pass
    that for a large a costs more than the product. A transposed a larger than b is passed
    as the weight instead, which oneDNN reads in either order: a b = (bᵀ aᵀ)ᵀ =
    ``linear(bᵀ, a)ᵀ`` (InfoNCE's ∂b̂ = ∂Lᵀ â, 2,139 × 2,139 by 64: 4.3 → 1.4 ms on two threads)."""
    if _use_onednn(a, b) and _transposed(a) and a.numel() > b.numel():
        return linear(b.t(), a).t().contiguous()
    return linear(a, b.t())


def _transposed(x: torch.Tensor) -> bool:
    return x.dim() == 2 and not x.is_contiguous() and x.t().is_contiguous()


_BLOCK_ELEMENTS = 2**19


def matmul_into(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``out`` = a b, written into existing memory; returns ``out``.

    With oneDNN the product is formed in row blocks of about 2¹⁹ entries (2 MB: recycled
    by the allocator, where a whole fresh n × m result would be new memory from the operating
    system) and copied into ``out``: 128 rows at a time for REARM's 3,161 × 4,096 table
    gradient, 11 CPU-ms against 20 for ``torch.mm(out=...)``.
    """
    if not (_use_onednn(a, b, out) and b.numel() > 0):
        return torch.mm(a, b, out=out)
    for rows, block in row_blocks(a, b):
        out[rows].copy_(block)
    return out


def row_blocks(a: torch.Tensor, b: torch.Tensor) -> Iterator[tuple[slice, torch.Tensor]]:
    """The product a b in blocks of rows: ``(rows, (a b)[rows])`` for consecutive row ranges
    covering a. With oneDNN, blocks of about 2¹⁹ entries (cache-sized); otherwise (other
    devices and dtypes, autocast) one block of every row."""
    if not (_use_onednn(a, b) and b.numel() > 0):
        yield slice(0, a.shape[0]), matmul(a, b)
        return
    rows = max(1, _BLOCK_ELEMENTS // max(1, b.shape[1]))
    weight = b.t()
    for start in range(0, a.shape[0], rows):
        block = slice(start, min(start + rows, a.shape[0]))
        yield block, linear(a[block], weight)
