"""Cosine k-nearest-neighbour graphs over feature rows (docs/graphs.md §2).

S = top-k rows of the cosine similarity X̂ X̂ᵀ (X̂ the L2-normalised rows; a zero row stays
zero and is similar to nothing, 0). The row's own node is a candidate like any other, as in
the REARM reference code (Ma et al., ACM MM 2025), so it is normally its own first neighbour.
Kept entries weigh their similarity (``weighted=True``, REARM) or 1 (FREEDOM, Zhou & Shen,
ACM MM 2023); then Ŝ = D^-1/2 S D^-1/2 with D the number of kept entries of each row (= k).

Which neighbours are kept is exact and deterministic: the order is the cosine similarity
rounded to float32 (computed in float64), descending, then the lower index. The bulk of the
work is float32 matrix products, whose last bits depend on how the BLAS splits them (block
size, device), so it only proposes candidates:

1. Top-(k + MARGIN) candidates per row from float32 products in symmetric blocks: block i
   of rows is multiplied with the rows from block i on, and the transposed part offers
   candidates to the later rows, so every similarity is computed once (half of X̂ X̂ᵀ) and
   memory stays O(chunk × n), never n × n.
2. A row is settled when its k-th and (k+1)-th float32 similarities differ by more than
   twice the float32 error bound e = (D + 10)·2^-23 (twice the γ_D ≈ D·2^-24 bound of a
   float32 dot product of unit vectors, plus the rounding of the exact value to float32).
   Other rows are decided in float64 over their candidates, and when even the last
   candidate could still belong to the top k, over the whole row.
So equal feature rows tie exactly and the lower index wins, whatever the chunk size.

``projection=d'`` (off by default) is an explicit approximation for large D: the features are
first multiplied by a seeded D × d' standard-normal matrix (Johnson–Lindenstrauss), so the
products cost d'/D of the exact ones; cosines of the projected rows are off by about
1/√d', which changes some neighbours and all weights. It is reported, never silent.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch

from recsys.graphs.planning import GraphSize, square_size
from recsys.graphs.topk import sort_rows, topk_rows

BLOCK_ELEMENTS = 1 << 25  # floats in one block of similarities (128 MiB)
MARGIN = 8                # candidates kept beyond k for the exact decision


def default_chunk(n: int) -> int:
    """Rows per block so that a block of similarities holds at most BLOCK_ELEMENTS floats."""
    return max(1, min(n, BLOCK_ELEMENTS // max(n, 1)))


def as_float32(features, device: torch.device | str = "cpu") -> torch.Tensor:
    """``features`` (numpy or torch) as a finite float32 tensor on ``device``."""
    x = features if torch.is_tensor(features) else torch.from_numpy(np.ascontiguousarray(features))
    x = x.to(device=device, dtype=torch.float32)
    if not torch.isfinite(x).all():
        raise ValueError("features contain NaN or inf; fix the feature file (every row must be finite)")
    return x


def float32_error(dim: int) -> float:
    """Bound on |float32 cosine − exact cosine| for D-dimensional rows (see module docstring)."""
    return (dim + 10) * 2.0 ** -23


def _inverse_norms(x: torch.Tensor, chunk: int) -> torch.Tensor:
    """1/‖x_i‖ in float64 (0 for zero rows)."""
    out = torch.empty(x.shape[0], dtype=torch.float64, device=x.device)
    for start in range(0, x.shape[0], chunk):
        norms = x[start:start + chunk].double().norm(dim=1)
        out[start:start + chunk] = torch.where(norms > 0, 1.0 / norms, torch.zeros_like(norms))
    return out


def _merge(values: torch.Tensor, indices: torch.Tensor, new_values: torch.Tensor, new_indices: torch.Tensor,
           k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k largest of two candidate lists per row (ties in any order), largest first."""
    values, position = torch.topk(torch.cat([values, new_values], dim=1), k, dim=1)
    return values, torch.cat([indices, new_indices], dim=1).gather(1, position)


def _symmetric_topk(unit: torch.Tensor, k: int, chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Float32 top-k candidates of unit @ unitᵀ per row (largest first, ties in any order),
    computing each block of pairs once."""
    n = unit.shape[0]
    best_values = torch.full((n, k), -torch.inf, device=unit.device)
    best_indices = torch.full((n, k), n, dtype=torch.long, device=unit.device)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        sims = unit[start:stop] @ unit[start:].T
        values, indices = torch.topk(sims, min(k, n - start), dim=1)
        best_values[start:stop], best_indices[start:stop] = _merge(
            best_values[start:stop], best_indices[start:stop], values, indices + start, k)
        if stop < n:
            values, indices = torch.topk(sims[:, stop - start:], min(k, stop - start), dim=0)
            best_values[stop:], best_indices[stop:] = _merge(
                best_values[stop:], best_indices[stop:], values.T, indices.T + start, k)
    return best_values, best_indices


def exact_topk(points: torch.Tensor, values: torch.Tensor, indices: torch.Tensor, k: int,
               error: torch.Tensor | float, chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The exact top-k cosine neighbours of every row of ``points`` from float32 candidates.

    ``values``/``indices`` (n × kk, kk ≥ k, largest first, ties in any order) are approximate
    similarities within ``error`` (a float or one bound per row) of the exact ones, and hold
    every column whose approximate similarity exceeds the last one kept. Returns (values,
    indices), n × k, each row by ascending index; the values of settled rows are the float32
    candidates (within ``error`` of the exact ones), the others exact.
    """
    n, kk = indices.shape
    error = torch.as_tensor(error, dtype=torch.float32, device=points.device).expand(n)
    inverse = _inverse_norms(points, chunk)
    out_values, out_indices = values[:, :k].clone(), indices[:, :k].clone()
    zero = inverse == 0
    out_values[zero], out_indices[zero] = 0.0, torch.arange(k, device=points.device)
    if kk == k and kk == n:
        unsettled = torch.ones(n, dtype=torch.bool, device=points.device)
    elif kk > k:
        unsettled = values[:, k - 1] - values[:, k] <= 2 * error
    else:
        raise ValueError(f"need more than k = {k} candidates per row to decide the top k")
    unsettled = (unsettled & ~zero).nonzero().flatten()

    step = max(1, (1 << 24) // (kk * points.shape[1]))
    whole_rows = []
    for start in range(0, unsettled.numel(), step):
        rows = unsettled[start:start + step]
        cand = indices[rows]
        exact = torch.einsum("rd,rcd->rc", points[rows].double(), points[cand].double())
        exact = (exact * inverse[rows, None] * inverse[cand]).float()
        exact_values, exact_indices = sort_rows(exact, cand)
        out_values[rows], out_indices[rows] = exact_values[:, :k], exact_indices[:, :k]
        if kk < n:
            whole_rows.append(rows[values[rows, -1] + error[rows] >= exact_values[:, k - 1]])
    if whole_rows:
        rows_left = torch.cat(whole_rows)
        for start in range(0, rows_left.numel(), chunk):
            rows = rows_left[start:start + chunk]
            left = points[rows].double() * inverse[rows, None]
            exact = torch.cat([(left @ (points[c:c + chunk].double() * inverse[c:c + chunk, None]).T).float()
                               for c in range(0, n, chunk)], dim=1)
            out_values[rows], out_indices[rows] = topk_rows(exact, k)
    out_indices, order = out_indices.sort(dim=1)
    return out_values.gather(1, order), out_indices


def cosine_topk(features, k: int, chunk_size: int | None = None,
                device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top-k cosine neighbours of every row (itself included): (similarities, indices).

    Both n × min(k, n), each row by ascending index (see :func:`exact_topk`).
    """
    x = as_float32(features, device)
    n, dim = x.shape
    k = min(int(k), n)
    chunk = int(chunk_size) if chunk_size else default_chunk(n)
    with highest_precision():
        unit = x / x.norm(dim=1, keepdim=True).clamp_min(1e-30)
        values, indices = _symmetric_topk(unit, min(n, k + MARGIN), chunk)
        del unit
        return exact_topk(x, values, indices, k, float32_error(dim), chunk)


@contextmanager
def highest_precision() -> Iterator[None]:
    """Full float32 matrix products (no TF32/bf16 shortcuts) inside the block: the error
    bound of the candidates assumes them."""
    saved = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(saved)


def neighbour_graph(values: torch.Tensor, indices: torch.Tensor, weighted: bool = True) -> torch.Tensor:
    """D^-1/2 S D^-1/2 of the n × n graph whose row i keeps columns ``indices[i]``.

    S holds ``values`` (weighted) or 1; D is the number of kept entries of each row.
    Returns a float32 sparse CSR tensor on the device of ``indices``.
    """
    n, k = indices.shape
    rows = torch.arange(n, device=indices.device).repeat_interleave(k)
    cols = indices.reshape(-1)
    weights = values.reshape(-1).float() if weighted else torch.ones(n * k, device=indices.device)
    degree = torch.full((n,), float(k), device=indices.device)
    scale = degree.rsqrt()
    return to_csr(rows, cols, weights * scale[rows] * scale[cols], (n, n))


def to_csr(rows: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Entries (duplicates summed) as a float32 sparse CSR tensor with sorted columns."""
    coo = torch.sparse_coo_tensor(torch.stack([rows, cols]), values.float(), shape,
                                  check_invariants=False).coalesce()
    return coo.to_sparse_csr()


def random_projection(features, dim: int | None, seed: int = 0, device: torch.device | str = "cpu") -> torch.Tensor:
    """X Ω / √dim with Ω a seeded D × dim standard-normal matrix; X itself when dim is None or ≥ D."""
    x = as_float32(features, device)
    if dim is None or int(dim) >= x.shape[1]:
        return x
    if int(dim) < 1:
        raise ValueError(f"projection dimension must be at least 1, got {dim}")
    generator = torch.Generator().manual_seed(int(seed))
    omega = torch.randn(x.shape[1], int(dim), generator=generator).to(x.device)
    return x @ omega / float(dim) ** 0.5


def knn_graph(features, k: int, weighted: bool = True, chunk_size: int | None = None,
              device: torch.device | str = "cpu", projection: int | None = None, seed: int = 0) -> torch.Tensor:
    """Normalised cosine kNN graph Ŝ of the rows of ``features`` (n × n sparse CSR on ``device``).

    Exact unless ``projection`` is set (see the module docstring; ``seed`` fixes Ω).
    """
    if int(k) < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    values, indices = cosine_topk(random_projection(features, projection, seed, device), k, chunk_size, device)
    return neighbour_graph(values, indices, weighted)


def knn_size(n: int, k: int, dim: int = 0, chunk_size: int | None = None) -> GraphSize:
    """Size of :func:`knn_graph` over n rows of ``dim`` features: min(k, n) distinct neighbours
    per row, so exactly n·min(k, n) stored entries. Work (float32): the unit rows (n·dim), one
    block of similarities (c·n, c = rows per block) and the transposed part offered to the later
    rows (c·(n − c)), the candidates (n·(k + MARGIN) values and indices)."""
    n, k = int(n), min(int(k), int(n))
    chunk = int(chunk_size) if chunk_size else default_chunk(n)
    work = 4 * (n * int(dim) + chunk * n + chunk * max(0, n - chunk)) + 12 * n * min(n, k + MARGIN)
    return square_size(n, n * k, exact=True, work=work)


def _mixing_weights(weights) -> list[float]:
    weights = [float(w) for w in weights]
    if not weights or any(w < 0 for w in weights) or abs(sum(weights) - 1.0) > 1e-6:
        raise ValueError(f"mixing weights {weights} must be non-negative and sum to 1")
    return weights


def mix_size(weighted_sizes) -> GraphSize:
    """Size of :func:`mix_graphs` over ``[(w, GraphSize), ...]``: at most the sum of the used
    graphs' entries (exact when a single graph is used)."""
    pairs = list(weighted_sizes)
    used = [size for w, (_, size) in zip(_mixing_weights(w for w, _ in pairs), pairs) if w > 0]
    if len(used) == 1:
        return used[0]
    return square_size(used[0].shape[0], sum(size.nnz for size in used))


def mix_graphs(weighted_graphs) -> torch.Tensor:
    """Σ w·G over ``[(w, G), ...]`` with weights in [0, 1] summing to 1 (sparse CSR).

    Graphs with weight 0 are skipped (they may be None); all others share shape and device.
    """
    pairs = list(weighted_graphs)
    used = [(w, g.to_sparse_coo().coalesce()) for w, (_, g) in zip(_mixing_weights(w for w, _ in pairs), pairs)
            if w > 0]
    shape = used[0][1].shape
    if any(g.shape != shape for _, g in used):
        raise ValueError(f"graphs to mix have different shapes {[tuple(g.shape) for _, g in used]}")
    indices = torch.cat([g.indices() for _, g in used], dim=1)
    values = torch.cat([w * g.values() for w, g in used])
    return to_csr(indices[0], indices[1], values, tuple(shape))
