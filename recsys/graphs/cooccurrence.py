"""Top-k co-occurrence graphs (docs/graphs.md §4; REARM, Ma et al., ACM MM 2025).

For a binary incidence matrix M (n nodes × m contexts) the co-occurrence counts are C = M Mᵀ
with a zero diagonal: items, M = Rᵀ, C_I(i, j) = number of users with both i and j; users,
M = R, C_U(u, v) = number of items both have. C is computed as sparse products in blocks of
rows, each block bounded in size, so C is never held whole (nor ever dense).

Each row keeps its top-k neighbours by count (ties: lower index first) with weights
softmax(kept counts). The REARM reference code treats two kinds of rows specially, and so do
we:

- a row with 0 < n_i < k neighbours is padded (``pad="resample"``) by drawing k − n_i more
  of its own neighbours uniformly with replacement (with their counts); the softmax runs over
  all k entries and repeated neighbours add up. ``pad="none"`` keeps the n_i neighbours only.
  The draws come from ``numpy.random.default_rng(seed)``, k per padded row in row order.
- a row with no neighbour at all gets the k most popular nodes (largest degree, i.e. number
  of nonzeros of their row of M; ties: lower index) with weights count/Σcount. The reference
  code then applies its row softmax to these shares too (``fallback_softmax=True``, the
  default, so the graphs match it); ``fallback_softmax=False`` keeps the plain shares.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from recsys.graphs.knn import BLOCK_ELEMENTS, to_csr
from recsys.graphs.planning import GraphSize, square_size

PADDINGS = ("resample", "none")


def _binary(incidence: sp.spmatrix) -> sp.csr_matrix:
    matrix = sp.csr_matrix(incidence, dtype=np.float32, copy=True)
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def _row_blocks(matrix: sp.csr_matrix, transpose: sp.csr_matrix, chunk_size: int | None) -> list[tuple[int, int]]:
    """Row ranges whose products hold at most BLOCK_ELEMENTS entries (or ``chunk_size`` rows)."""
    n = matrix.shape[0]
    if chunk_size:
        return [(start, min(start + int(chunk_size), n)) for start in range(0, n, int(chunk_size))]
    bound = matrix @ np.diff(transpose.indptr).astype(np.float64)     # ≥ nonzeros of each row of C
    blocks, start, total = [], 0, 0.0
    for row, size in enumerate(bound):
        if row > start and total + size > BLOCK_ELEMENTS:
            blocks.append((start, row))
            start, total = row, 0.0
        total += size
    blocks.append((start, n))
    return blocks


def cooccurrence_topk(incidence: sp.spmatrix, k: int,
                      chunk_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Top-k counts of C = M Mᵀ (zero diagonal) per row: (counts, indices, n_neighbours).

    ``counts``/``indices`` are n × min(k, n), best first (count descending, then index
    ascending); entries past ``n_neighbours[i]`` = min(k, nonzeros of row i of C) are zero.
    C is a sparse product in blocks of rows (``chunk_size`` rows, or as many as keep a block
    under BLOCK_ELEMENTS entries); each block is sorted by (row, count desc, column).
    """
    matrix = _binary(incidence)
    transpose = matrix.T.tocsr()
    n = matrix.shape[0]
    k = min(int(k), n)
    counts = np.zeros((n, k), dtype=np.float32)
    indices = np.zeros((n, k), dtype=np.int64)
    n_neighbours = np.zeros(n, dtype=np.int64)
    for start, stop in _row_blocks(matrix, transpose, chunk_size):
        block = (matrix[start:stop] @ transpose).tocoo()
        off_diagonal = block.row + start != block.col
        rows, cols = block.row[off_diagonal].astype(np.int64), block.col[off_diagonal].astype(np.int64)
        values = np.rint(block.data[off_diagonal]).astype(np.int64)
        order = np.lexsort((cols, -values, rows))
        rows, cols, values = rows[order], cols[order], values[order]
        first = np.searchsorted(rows, np.arange(stop - start))
        rank = np.arange(rows.size) - first[rows]
        kept = rank < k
        counts[rows[kept] + start, rank[kept]] = values[kept]
        indices[rows[kept] + start, rank[kept]] = cols[kept]
        n_neighbours[start:stop] = np.minimum(np.bincount(rows, minlength=stop - start), k)
    return torch.from_numpy(counts), torch.from_numpy(indices), torch.from_numpy(n_neighbours)


def _padded_positions(n_neighbours: torch.Tensor, k: int, seed: int) -> torch.Tensor:
    """Per row, which of its first n_i entries fills each of the k slots (resampling)."""
    rows = n_neighbours.shape[0]
    slots = torch.arange(k).expand(rows, k)
    short = ((n_neighbours > 0) & (n_neighbours < k)).nonzero().flatten()
    positions = slots.clone()
    if short.numel():
        rng = np.random.default_rng(seed)
        have = n_neighbours[short, None]
        draws = torch.from_numpy(np.floor(rng.random((short.numel(), k)) * have.numpy()).astype(np.int64))
        extra = draws.gather(1, (slots[: short.numel()] - have).clamp_min(0))
        positions[short] = torch.where(slots[: short.numel()] < have, slots[: short.numel()], extra)
    return positions


def _popular(degree: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k nodes of largest positive degree (ties: lower index), and their degrees."""
    order = np.lexsort((np.arange(degree.size), -degree))
    order = order[degree[order] > 0][:k]
    return order, degree[order].astype(np.float64)


def cooccurrence_graph(incidence: sp.spmatrix, k: int, pad: str = "resample", fallback_softmax: bool = True,
                       seed: int = 0, chunk_size: int | None = None,
                       device: torch.device | str = "cpu") -> torch.Tensor:
    """Top-k softmax co-occurrence graph of the rows of M (n × n sparse CSR on ``device``)."""
    if pad not in PADDINGS:
        raise ValueError(f"pad '{pad}' is not one of {PADDINGS}")
    if int(k) < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    counts, indices, n_neighbours = cooccurrence_topk(incidence, k, chunk_size)
    n, k = indices.shape
    if pad == "resample":
        positions = _padded_positions(n_neighbours, k, seed)
        counts, indices = counts.gather(1, positions), indices.gather(1, positions)
        valid = (n_neighbours > 0)[:, None].expand(n, k)
    else:
        valid = torch.arange(k)[None, :] < n_neighbours[:, None]
    weights = torch.softmax(counts.double().masked_fill(~valid, -torch.inf), dim=1).nan_to_num(0.0)
    rows = torch.arange(n)[:, None].expand(n, k)[valid]
    cols, values = indices[valid], weights[valid]

    lonely = (n_neighbours == 0).nonzero().flatten()
    if lonely.numel():
        popular, degree = _popular(np.diff(_binary(incidence).indptr), k)
        share = torch.from_numpy(degree / degree.sum()) if degree.size else torch.zeros(0, dtype=torch.float64)
        fallback = torch.softmax(share, dim=0) if fallback_softmax and share.numel() else share
        rows = torch.cat([rows, lonely.repeat_interleave(popular.size)])
        cols = torch.cat([cols, torch.from_numpy(popular).repeat(lonely.numel())])
        values = torch.cat([values, fallback.repeat(lonely.numel())])
    return to_csr(rows, cols, values, (n, n)).to(device)


PATH_BYTES = 24  # work per co-occurrence path of a block (measured: 18–24 bytes)


def cooccurrence_paths(incidence: sp.spmatrix) -> int:
    """Σ_j d_j² over the columns j of M: the number of length-2 paths i → j → i' behind C = M Mᵀ,
    an upper bound on its entries (the row blocks hold at most BLOCK_ELEMENTS of them)."""
    degrees = np.diff(sp.csc_matrix(incidence).indptr).astype(np.float64)
    return int((degrees ** 2).sum())


def cooccurrence_size(n: int, k: int, paths: int = 0) -> GraphSize:
    """Size bound of :func:`cooccurrence_graph` over n nodes: a row keeps at most k partners
    (padded up to k) or, without any partner, at most k popular nodes: n·min(k, n) entries.
    Work: the sparse product of one row block and its sorting, PATH_BYTES per path of the
    block (at most BLOCK_ELEMENTS paths; :func:`cooccurrence_paths`)."""
    return square_size(n, int(n) * min(int(k), int(n)), work=PATH_BYTES * min(int(paths), BLOCK_ELEMENTS))


def item_cooccurrence_graph(interactions: sp.spmatrix, k: int, **options) -> torch.Tensor:
    """Top-k softmax graph of C_I = RᵀR (items × items); options as :func:`cooccurrence_graph`."""
    return cooccurrence_graph(sp.csr_matrix(interactions).T, k, **options)


def user_cooccurrence_graph(interactions: sp.spmatrix, k: int, **options) -> torch.Tensor:
    """Top-k softmax graph of C_U = R Rᵀ (users × users); options as :func:`cooccurrence_graph`."""
    return cooccurrence_graph(interactions, k, **options)
