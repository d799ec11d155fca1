"""Top-k softmax co-occurrence graphs with the reference padding rules (docs/graphs.md §4)."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recsys.graphs import cooccurrence_graph, cooccurrence_topk, item_cooccurrence_graph, user_cooccurrence_graph
from tests.graphs.reference import ordered_topk, random_interactions, softmax


def _reference(incidence: sp.csr_matrix, k: int, pad: str, fallback_softmax: bool = True, seed: int = 0):
    """Dense brute force of the documented rules (including the order of the random draws)."""
    m = (incidence.toarray() > 0).astype(np.float64)
    counts = m @ m.T
    np.fill_diagonal(counts, 0.0)
    n = counts.shape[0]
    k = min(k, n)
    top = ordered_topk(counts, k)
    degree = m.sum(1)
    popular = [i for i in ordered_topk(degree[None, :], n)[0] if degree[i] > 0][:k]
    share = degree[popular] / degree[popular].sum()
    fallback = softmax(share) if fallback_softmax else share
    n_short = sum(1 for i in range(n) if 0 < (counts[i] > 0).sum() < k)
    draws = np.random.default_rng(seed).random((n_short, k)) if pad == "resample" else None
    out, short_row = np.zeros((n, n)), 0
    for i in range(n):
        neighbours = [j for j in top[i] if counts[i, j] > 0]
        if not neighbours:
            out[i, popular] = fallback
            continue
        chosen = list(neighbours)
        if pad == "resample" and len(neighbours) < k:
            have = len(neighbours)
            chosen += [neighbours[int(np.floor(u * have))] for u in draws[short_row, : k - have]]
            short_row += 1
        weights = softmax(counts[i, chosen])
        np.add.at(out[i], chosen, weights)
    return out


def _interactions(seed=0):
    # sparse enough that some rows have fewer than k neighbours, and users/items 35+/26+ none
    return random_interactions(40, 30, 55, seed, active_users=35, active_items=26)


@pytest.mark.parametrize("pad", ["resample", "none"])
@pytest.mark.parametrize("side", ["user", "item"])
def test_matches_dense_reference(pad, side):
    r = _interactions()
    incidence = r if side == "user" else r.T.tocsr()
    builder = user_cooccurrence_graph if side == "user" else item_cooccurrence_graph
    graph = builder(r, 4, pad=pad, seed=3, chunk_size=7)
    expected = _reference(incidence, 4, pad, seed=3)
    dense = graph.to_dense().numpy()
    assert graph.layout == torch.sparse_csr and graph.dtype == torch.float32
    assert np.array_equal(dense != 0, expected != 0)
    np.testing.assert_allclose(dense, expected, atol=1e-6)
    np.testing.assert_allclose(dense.sum(1), 1.0, atol=1e-6)     # every row is a distribution


def test_the_rows_exercise_every_rule():
    counts, indices, n_neighbours = cooccurrence_topk(_interactions(), 4)
    assert (n_neighbours == 4).any() and ((n_neighbours > 0) & (n_neighbours < 4)).any()
    assert (n_neighbours[35:] == 0).all()                        # users without items
    assert torch.equal(counts[:, 0] > 0, n_neighbours > 0)


def test_fallback_without_softmax_uses_popularity_shares():
    r = _interactions(seed=1)
    dense = user_cooccurrence_graph(r, 4, fallback_softmax=False).to_dense().numpy()
    np.testing.assert_allclose(dense, _reference(r, 4, "resample", fallback_softmax=False), atol=1e-6)
    degree = np.asarray(r.sum(1)).ravel()
    popular = np.lexsort((np.arange(40), -degree))[:4]
    np.testing.assert_allclose(dense[39, popular], degree[popular] / degree[popular].sum(), atol=1e-6)


def test_full_rows_keep_the_top_counts_with_softmax_weights():
    incidence = sp.csr_matrix(np.array([[1, 1, 1, 0], [1, 1, 0, 0], [1, 0, 0, 0], [0, 1, 1, 1], [0, 0, 0, 1]]))
    dense = cooccurrence_graph(incidence, 2).to_dense().numpy()
    # row 0 shares 2 with rows 1 and 3, 1 with row 2: keeps 1 and 3 (counts 2, 2) equally
    np.testing.assert_allclose(dense[0], [0, 0.5, 0, 0.5, 0], atol=1e-7)
    # row 2 shares 1 with rows 0 and 1 (a tie at the k-th place keeps the lower index too)
    np.testing.assert_allclose(dense[2], [0.5, 0.5, 0, 0, 0], atol=1e-7)


def test_padding_is_deterministic_given_the_seed():
    r = _interactions(seed=2)
    a = user_cooccurrence_graph(r, 5, seed=11)
    b = user_cooccurrence_graph(r, 5, seed=11)
    c = user_cooccurrence_graph(r, 5, seed=12)
    assert torch.equal(a.col_indices(), b.col_indices()) and torch.equal(a.values(), b.values())
    assert not torch.equal(a.to_dense(), c.to_dense())


@pytest.mark.parametrize("chunk", [1, 3, 40])
def test_chunk_size_and_interaction_order_do_not_change_the_graph(chunk):
    r = _interactions(seed=4)
    coo = r.tocoo()
    order = np.random.default_rng(1).permutation(coo.nnz)
    shuffled = sp.csr_matrix((coo.data[order], (coo.row[order], coo.col[order])), shape=r.shape)
    base = item_cooccurrence_graph(r, 3, chunk_size=None)
    other = item_cooccurrence_graph(shuffled, 3, chunk_size=chunk)
    assert torch.equal(base.crow_indices(), other.crow_indices())
    assert torch.equal(base.col_indices(), other.col_indices())
    assert torch.equal(base.values(), other.values())


def test_invalid_options_are_rejected():
    with pytest.raises(ValueError, match="pad"):
        cooccurrence_graph(_interactions(), 3, pad="zeros")
