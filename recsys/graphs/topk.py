"""Row-wise top-k with a total order: larger value first, then lower column index.

``torch.topk`` leaves the order of equal values unspecified; every graph here must be
deterministic, so ties at the k-th value are resolved towards the lower index.
"""
from __future__ import annotations

import torch


def sort_rows(values: torch.Tensor, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row of (values, indices) reordered by value descending, then index ascending."""
    indices, perm = indices.sort(dim=1)
    values = values.gather(1, perm)
    values, perm = values.sort(dim=1, descending=True, stable=True)
    return values, indices.gather(1, perm)


def topk_rows(values: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k best entries of every row of a dense (rows × n) tensor, best first.

    Returns (values, column indices), each rows × min(k, n), ordered by value descending then
    index ascending; among entries equal to a row's k-th value the lower indices are kept.
    """
    n = values.shape[1]
    k = min(int(k), n)
    top_values, top_indices = torch.topk(values, min(k + 1, n), dim=1)
    if k == 0 or k == n:
        return sort_rows(top_values, top_indices)
    tied = (top_values[:, k] == top_values[:, k - 1]).nonzero().flatten()   # k-th value also outside
    top_values, top_indices = top_values[:, :k], top_indices[:, :k]
    kth = top_values[:, -1:]
    if tied.numel():
        sub, sub_kth = values[tied], kth[tied]
        greater = sub > sub_kth
        equal = sub == sub_kth
        room = k - greater.sum(dim=1, keepdim=True)
        keep = greater | (equal & (equal.cumsum(dim=1) <= room))
        columns = keep.nonzero()[:, 1].view(-1, k)
        top_indices[tied] = columns
        top_values[tied] = sub.gather(1, columns)
    return sort_rows(top_values, top_indices)
