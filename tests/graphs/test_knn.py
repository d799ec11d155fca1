"""Cosine kNN graphs (docs/graphs.md §2) against a dense brute-force reference."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from recsys.graphs import cosine_topk, knn_graph, mix_graphs, random_projection
from tests.graphs.reference import cosine, knn_dense, ordered_topk


def _features(n=97, d=6, seed=0):
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    x[4] = 0.0                 # a zero row: similar to nothing
    x[10] = x[3]               # copies of row 3: exact ties
    x[11] = x[3]
    return x


@pytest.mark.parametrize("weighted", [True, False])
def test_matches_dense_reference(weighted):
    x = _features()
    graph = knn_graph(x, 5, weighted=weighted, chunk_size=13)
    assert graph.layout == torch.sparse_csr and graph.dtype == torch.float32 and graph.shape == (97, 97)
    dense = graph.to_dense().numpy()
    expected = knn_dense(x, 5, weighted)
    assert np.array_equal(dense != 0, expected != 0)
    np.testing.assert_allclose(dense, expected, atol=1e-6)
    assert np.isfinite(dense).all()


@pytest.mark.parametrize("chunk", [1, 2, 7, 97])
def test_exact_ties_keep_the_lower_index(chunk):
    x = _features()
    values, indices = cosine_topk(x, 4, chunk_size=chunk)
    np.testing.assert_array_equal(indices.numpy(), np.sort(ordered_topk(np.float32(cosine(x)), 4), axis=1))
    assert {3, 10, 11} <= set(indices[3].tolist())          # three identical rows
    assert indices[4].tolist() == [0, 1, 2, 3]              # zero row: all similarities 0
    assert values[4].abs().max() == 0.0


@pytest.mark.parametrize("chunk", [1, 2, 5, 31, 96, 97, 500])
def test_chunk_size_does_not_change_the_graph(chunk):
    x = _features(seed=3)
    base = knn_graph(x, 6, chunk_size=None)
    other = knn_graph(x, 6, chunk_size=chunk)
    assert torch.equal(base.col_indices(), other.col_indices())
    assert torch.equal(base.crow_indices(), other.crow_indices())
    torch.testing.assert_close(base.values(), other.values(), atol=1e-6, rtol=0)


def test_k_larger_than_n_keeps_every_node():
    x = np.random.default_rng(5).standard_normal((6, 3)).astype(np.float32)
    dense = knn_graph(x, 10).to_dense().numpy()
    np.testing.assert_allclose(dense, knn_dense(x, 6), atol=1e-6)


def test_mix_graphs_is_the_weighted_sum():
    a, b = knn_graph(_features(seed=1), 3), knn_graph(_features(seed=2), 4)
    mixed = mix_graphs([(0.3, a), (0.7, b), (0.0, None)])
    np.testing.assert_allclose(mixed.to_dense().numpy(), 0.3 * a.to_dense().numpy() + 0.7 * b.to_dense().numpy(),
                               atol=1e-7)
    with pytest.raises(ValueError, match="sum to 1"):
        mix_graphs([(0.3, a), (0.3, b)])
    with pytest.raises(ValueError, match="sum to 1"):
        mix_graphs([(1.5, a), (-0.5, b)])


def test_more_exact_ties_than_candidates_fall_back_to_whole_rows():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((60, 5)).astype(np.float32)
    x[20:50] = x[20]                     # 30 copies: more ties than k + MARGIN candidates
    values, indices = cosine_topk(x, 3, chunk_size=8)
    assert indices[35].tolist() == [20, 21, 22] and indices[20].tolist() == [20, 21, 22]
    np.testing.assert_array_equal(indices.numpy(), np.sort(ordered_topk(np.float32(cosine(x)), 3), axis=1))
    np.testing.assert_allclose(values[35].numpy(), 1.0, atol=1e-6)


def test_ties_at_the_kth_place_are_decided_among_the_candidates():
    x = np.random.default_rng(8).standard_normal((40, 5)).astype(np.float32)
    x[30:35] = x[12]                     # 6 equal rows: fewer than k + MARGIN candidates
    _, indices = cosine_topk(x, 4, chunk_size=6)
    assert indices[33].tolist() == [12, 30, 31, 32]


def test_non_finite_features_are_rejected():
    x = _features()
    x[2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        knn_graph(x, 3)


def test_projection_is_opt_in_and_is_the_knn_of_the_projected_features():
    x = np.random.default_rng(9).standard_normal((50, 12)).astype(np.float32)
    exact = knn_graph(x, 4)
    for same in (knn_graph(x, 4, projection=None), knn_graph(x, 4, projection=12)):
        assert torch.equal(same.col_indices(), exact.col_indices()) and torch.equal(same.values(), exact.values())
    approx = knn_graph(x, 4, projection=5, seed=1)
    projected = random_projection(x, 5, seed=1).numpy()
    np.testing.assert_allclose(approx.to_dense().numpy(), knn_dense(projected, 4), atol=1e-6)
    assert torch.equal(random_projection(x, 5, seed=1), random_projection(x, 5, seed=1))
    assert not torch.equal(random_projection(x, 5, seed=1), random_projection(x, 5, seed=2))
