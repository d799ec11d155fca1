"""Full-ranking evaluation on the device, batched over users (docs/protocol.md).

For each batch of users: score every item, set the user's excluded (train) items to -inf,
take the top ``max(ks)`` items with ties broken by the lower item index, look the ranked
items up in the user's held-out set and accumulate the metrics of
:mod:`recsys.evaluation.metrics`. Nothing is done per user in Python and no
users × items matrix larger than one batch is ever formed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from recsys.evaluation.metrics import per_user_metrics, validate

# Rows of tied scores are resolved in chunks of at most this many score entries (memory bound).
_TIE_CHUNK_ENTRIES = 1 << 24


def csr_rows_to_coo(csr: sp.csr_matrix, rows: np.ndarray, device: torch.device) -> tuple[Tensor, Tensor]:
    """(batch row, column) index tensors of ``csr[rows]``; batch row i is ``rows[i]``."""
    sub = csr[rows]
    batch_rows = np.repeat(np.arange(len(rows), dtype=np.int64), np.diff(sub.indptr))
    return (torch.from_numpy(batch_rows).to(device),
            torch.from_numpy(sub.indices.astype(np.int64, copy=False)).to(device))


def mask_excluded_(scores: Tensor, exclude: tuple[Tensor, Tensor] | None) -> Tensor:
    """Set ``scores[row, col] = -inf`` in place for every excluded (batch row, column) pair."""
    if exclude is not None and exclude[0].numel():
        scores.index_put_(exclude, torch.tensor(float("-inf"), dtype=scores.dtype, device=scores.device))
    return scores


def _lowest_index_among_ties(scores: Tensor, threshold: Tensor, k: int) -> Tensor:
    """Per row, the k items of the exact top-k taking the lowest indices among the items tied at
    the k-th value ``threshold``: all items scoring above it, then ties in index order."""
    above = scores > threshold[:, None]
    tied = scores == threshold[:, None]
    need = k - above.sum(1, keepdim=True, dtype=torch.int32)
    chosen = above | (tied & (tied.cumsum(1, dtype=torch.int32) <= need))
    return chosen.nonzero()[:, 1].view(-1, k)


def stable_topk(scores: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Top-k values and indices per row, ordered by score descending, then item index ascending.

    ``torch.topk`` returns the right values but an arbitrary member of a group of tied values.
    Asking for k+1 shows whether the tie at the k-th value spills past the cut; only such rows
    are resolved exactly (all items above the k-th value, then the lowest-index tied items).
    The k chosen items are finally sorted by index and then stably by value.
    """
    n_items = scores.shape[1]
    k = min(k, n_items)
    probe = min(k + 1, n_items)
    values, indices = torch.topk(scores, probe, dim=1, sorted=True)
    if torch.isnan(values).any():
        rows = torch.isnan(values).any(1).nonzero().squeeze(1)
        raise ValueError(f"scores contain NaN in {rows.numel()} row(s) (first: {rows[:5].tolist()}); "
                         "the model produced non-finite outputs")
    indices = indices[:, :k].clone()
    if probe > k:
        spill = (values[:, k] == values[:, k - 1]).nonzero().squeeze(1)
        chunk = max(1, _TIE_CHUNK_ENTRIES // n_items)
        for start in range(0, spill.numel(), chunk):
            rows = spill[start:start + chunk]
            indices[rows] = _lowest_index_among_ties(scores[rows], values[rows, k - 1], k)
    indices = indices.sort(dim=1).values
    values, order = scores.gather(1, indices).sort(dim=1, descending=True, stable=True)
    return values, indices.gather(1, order)


def topk_excluding(scores: Tensor, exclude: tuple[Tensor, Tensor] | None, k: int) -> tuple[Tensor, Tensor]:
    """Mask the excluded (batch row, column) pairs of ``scores`` in place, then :func:`stable_topk`.

    Build ``exclude`` with :func:`csr_rows_to_coo`; masked items score -inf and only appear
    in the result when a row has fewer than k other items.
    """
    return stable_topk(mask_excluded_(scores, exclude), k)


def _hit_matrix(top: Tensor, targets: tuple[Tensor, Tensor], n_items: int) -> Tensor:
    """hits[i, r] = item top[i, r] is among batch row i's targets (sorted-key lookup)."""
    keys = (targets[0] * n_items + targets[1]).sort().values
    query = torch.arange(top.shape[0], device=top.device)[:, None] * n_items + top
    pos = torch.searchsorted(keys, query).clamp(max=keys.numel() - 1)
    return keys[pos] == query


ScoreFn = Callable[[Tensor], Tensor]


SCORE_BLOCK_ELEMENTS = 1 << 26


@dataclass(frozen=True)
class PerUserMetrics:
    """The metrics of every evaluated user of one split.

    ``users`` (n,) int64: the evaluated rows (users with at least one held-out item, or
    bundles), ascending; ``values[key]`` (n,) float64: the metric ``key`` (e.g.
    ``"recall@20"``) of each of them. :meth:`means` gives the split's metrics.
    """

    users: np.ndarray
    values: dict[str, np.ndarray]

    def means(self) -> dict[str, float]:
        """Mean over the evaluated users of every metric (the protocol's reported values)."""
        return {key: float(torch.from_numpy(values).mean()) for key, values in self.values.items()}


@torch.no_grad()
def evaluate_ranking(score_fn: ScoreFn, exclude_csr: sp.csr_matrix | None, target_csr: sp.csr_matrix,
                     ks: Iterable[int], metrics: Iterable[str], batch_size: int = 4096,
                     device: torch.device | str = "cpu") -> dict[str, float]:
    """Mean of each metric at each K over users with at least one target item.

    The means of :func:`evaluate_ranking_per_user` (same arguments); returns
    ``{"recall@20": ..., "ndcg@10": ...}``.
    """
    return evaluate_ranking_per_user(score_fn, exclude_csr, target_csr, ks, metrics, batch_size, device).means()


@torch.no_grad()
def evaluate_ranking_per_user(score_fn: ScoreFn, exclude_csr: sp.csr_matrix | None, target_csr: sp.csr_matrix,
                              ks: Iterable[int], metrics: Iterable[str], batch_size: int = 4096,
                              device: torch.device | str = "cpu") -> PerUserMetrics:
    """Each metric at each K for every user with at least one target item.

    ``score_fn(users)`` gets a LongTensor of user indices on ``device`` and returns a fresh
    (B × n_items) float tensor (it is masked in place). ``exclude_csr`` (users × items, e.g.
    the train split) marks items scored -inf; None masks nothing. ``target_csr`` holds the
    held-out items. An item ranked at a masked (-inf) position never counts as a hit. The
    per-user values do not depend on the batch size, so neither do their means. At most
    ``batch_size`` users, and at most ``SCORE_BLOCK_ELEMENTS // n_items`` (at least one), are
    scored at a time, so the score block stays under 256 MiB of float32 whatever the catalogue
    size (67 users at a million items).
    """
    ks, names = validate(ks, metrics)
    device = torch.device(device)
    if batch_size < 1:
        raise ValueError(f"eval.batch_size must be positive, got {batch_size}")
    n_items = target_csr.shape[1]
    batch_size = min(int(batch_size), max(1, SCORE_BLOCK_ELEMENTS // max(1, n_items)))
    if exclude_csr is not None and exclude_csr.shape != target_csr.shape:
        raise ValueError(f"exclude matrix {exclude_csr.shape} and target matrix {target_csr.shape} differ in shape")
    target_csr = sp.csr_matrix(target_csr)
    counts = np.diff(target_csr.indptr)
    users = np.flatnonzero(counts > 0)
    if users.size == 0:
        raise ValueError("no user has a held-out item in the evaluated split; nothing to evaluate")
    max_k = ks[-1]
    per_user: dict[str, Tensor] = {}
    for start in range(0, users.size, batch_size):
        batch = users[start:start + batch_size]
        user_tensor = torch.from_numpy(batch).to(device)
        scores = score_fn(user_tensor)
        if scores.shape != (batch.size, n_items):
            raise ValueError(f"score_fn returned shape {tuple(scores.shape)}, expected ({batch.size}, {n_items})")
        exclude = csr_rows_to_coo(exclude_csr, batch, device) if exclude_csr is not None else None
        values, top = topk_excluding(scores, exclude, max_k)
        hits = _hit_matrix(top, csr_rows_to_coo(target_csr, batch, device), n_items) & (values > float("-inf"))
        if hits.shape[1] < max_k:
            hits = torch.nn.functional.pad(hits, (0, max_k - hits.shape[1]))
        n_targets = torch.from_numpy(counts[batch]).to(device)
        for key, value in per_user_metrics(hits, n_targets, ks, names).items():
            if key not in per_user:
                per_user[key] = torch.empty(users.size, dtype=torch.float64, device=device)
            per_user[key][start:start + batch.size] = value
    return PerUserMetrics(users.astype(np.int64), {key: values.cpu().numpy() for key, values in per_user.items()})
