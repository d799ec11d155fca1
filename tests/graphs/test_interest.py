"""User interest vectors and the user interest kNN graph (docs/graphs.md §3)."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recsys.graphs import interest_knn_graph, mean_items_matrix, random_projection, user_interest
from recsys.graphs.interest import interest_topk
from tests.graphs.reference import cosine, knn_dense, mean_items, ordered_topk, random_interactions


def _data(seed=0):
    r = random_interactions(70, 40, 260, seed, active_users=64)      # users 64..69 have no items
    x = np.random.default_rng(seed + 1).standard_normal((40, 9)).astype(np.float32)
    return r, x


def test_interest_is_the_mean_of_train_item_features_and_zero_without_items():
    r, x = _data()
    p = user_interest(r, x).numpy()
    np.testing.assert_allclose(p, mean_items(r) @ x.astype(np.float64), atol=1e-6)
    assert np.isfinite(p).all() and not p[64:].any()
    np.testing.assert_allclose(mean_items_matrix(r).toarray(), mean_items(r), atol=1e-7)


@pytest.mark.parametrize("method", ["direct", "gram"])
def test_interest_knn_matches_dense_reference(method):
    r, x = _data(seed=2)
    graph = interest_knn_graph(r, x, 6, method=method, chunk_size=11)
    expected = knn_dense(mean_items(r) @ x.astype(np.float64), 6)
    dense = graph.to_dense().numpy()
    assert np.array_equal(dense != 0, expected != 0)
    np.testing.assert_allclose(dense, expected, atol=1e-6)
    assert np.isfinite(dense).all()
    # users without items: zero interest, similar to nothing, the k lowest indices kept
    crow, col = graph.crow_indices(), graph.col_indices()
    assert col[crow[66]:crow[67]].tolist() == [0, 1, 2, 3, 4, 5] and not dense[66].any()


def test_gram_and_direct_keep_the_same_neighbours_even_with_equal_users():
    r, x = _data(seed=3)
    r = sp.vstack([r, r[:5], r[:5]]).tocsr()                        # users 70..79 copy users 0..4
    direct = interest_topk(r, x, 5, "direct", chunk_size=9)
    gram = interest_topk(r, x, 5, "gram", chunk_size=13)
    assert torch.equal(direct[1], gram[1])
    torch.testing.assert_close(direct[0], gram[0], atol=1e-6, rtol=0)
    p = mean_items(r) @ x.astype(np.float64)
    np.testing.assert_array_equal(direct[1].numpy(), np.sort(ordered_topk(np.float32(cosine(p)), 5), axis=1))


def test_interest_knn_is_invariant_to_interaction_order():
    r, x = _data(seed=4)
    coo = r.tocoo()
    order = np.random.default_rng(0).permutation(coo.nnz)
    shuffled = sp.csr_matrix((coo.data[order], (coo.row[order], coo.col[order])), shape=r.shape)
    a, b = interest_knn_graph(r, x, 4), interest_knn_graph(shuffled, x, 4)
    assert torch.equal(a.col_indices(), b.col_indices()) and torch.equal(a.values(), b.values())


def test_unknown_method_is_rejected():
    r, x = _data()
    with pytest.raises(ValueError, match="not one of"):
        interest_knn_graph(r, x, 3, method="fast")


def test_projection_projects_the_interest_vectors():
    r, x = _data(seed=5)
    approx = interest_knn_graph(r, x, 5, projection=4, seed=3)
    projected = mean_items(r) @ random_projection(x, 4, seed=3).numpy().astype(np.float64)
    np.testing.assert_allclose(approx.to_dense().numpy(), knn_dense(projected, 5), atol=1e-6)
