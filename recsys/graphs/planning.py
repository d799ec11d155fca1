"""Sizes of graphs that are planned but not built (the dry run's planning store).

Each builder module states the size of the graph it builds next to its code (``*_size``
functions returning a :class:`GraphSize`), from the definition of the graph alone: its shape
and its number of stored entries (nnz), exact or an upper bound. A
:class:`recsys.graphs.GraphStore` in planning mode returns :func:`placeholder` in place of
such a graph and records a :class:`PlannedGraph`.

Bytes of a graph as the store holds it: a CSR matrix with n rows and nnz entries is
4·nnz (float32 values) + s·nnz (column indices) + s·(n + 1) (row pointers), with index size
s = 4 bytes (int32, :func:`recsys.nn.compact_csr`) when nnz < 2^31 − 1, else 8; a dense
matrix is 4 bytes per entry.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

FLOAT = 4
INT32_LIMIT = 2**31 - 1


@dataclass(frozen=True)
class GraphSize:
    """Shape and stored entries of a graph; ``exact=False`` makes ``nnz`` an upper bound.
    ``work``: bytes its builder holds at its peak besides the graph (an estimate)."""

    shape: tuple[int, ...]
    nnz: int
    exact: bool = False
    dense: bool = False
    work: int = 0

    @property
    def bytes(self) -> int:
        if self.dense:
            return self.nnz * FLOAT
        index = 4 if self.nnz < INT32_LIMIT else 8
        return self.nnz * (FLOAT + index) + (self.shape[0] + 1) * index

    def transposed(self) -> "GraphSize":
        return GraphSize(tuple(reversed(self.shape)), self.nnz, self.exact, self.dense, self.nnz * 12)


def square_size(n: int, nnz: int, exact: bool = False, work: int = 0) -> GraphSize:
    """An n × n sparse graph with at most ``nnz`` entries (never more than n²)."""
    return GraphSize((int(n), int(n)), min(int(n) * int(n), int(nnz)), exact, work=int(work))


def sparse_size(graph: torch.Tensor) -> GraphSize:
    """The exact size of a built graph (sparse CSR/COO or dense)."""
    if graph.layout == torch.strided:
        return GraphSize(tuple(graph.shape), graph.numel(), exact=True, dense=True)
    nnz = graph.coalesce()._nnz() if graph.layout == torch.sparse_coo else graph._nnz()
    return GraphSize(tuple(graph.shape), int(nnz), exact=True)


def placeholder(size: GraphSize, device: torch.device | str = "cpu") -> torch.Tensor:
    """What a planning store returns for a graph it does not build: zeros of the right shape
    (dense) or an empty CSR matrix with int32 indices."""
    if size.dense:
        return torch.zeros(size.shape, device=device)
    rows, cols = size.shape
    return torch.sparse_csr_tensor(torch.zeros(rows + 1, dtype=torch.int32, device=device),
                                   torch.zeros(0, dtype=torch.int32, device=device),
                                   torch.zeros(0, device=device), (rows, cols))


@dataclass(frozen=True)
class PlannedGraph:
    """One graph a planning store was asked for: ``call`` names the builder and its parameters;
    ``built`` says whether it was built for real (cheap graphs) or only sized."""

    call: str
    size: GraphSize
    built: bool

    @property
    def bytes(self) -> int:
        return self.size.bytes
