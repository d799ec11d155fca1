"""User-item graph Â = D^-1/2 A D^-1/2 against a dense brute-force reference."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from recsys.data import Dataset
from recsys.graphs import GraphStore, build_bipartite


def _random_interactions(n_users, n_items, n, seed):
    rng = np.random.default_rng(seed)
    users = rng.integers(0, n_users, n)
    items = rng.integers(0, n_items, n)
    return users, items


def _dense_reference(users, items, n_users, n_items):
    r = np.zeros((n_users, n_items))
    r[users, items] = 1.0
    a = np.zeros((n_users + n_items,) * 2)
    a[:n_users, n_users:] = r
    a[n_users:, :n_users] = r.T
    deg = a.sum(1)
    inv = np.array([d ** -0.5 if d > 0 else 0.0 for d in deg])
    return inv[:, None] * a * inv[None, :]


def test_matches_dense_reference_with_isolated_nodes():
    n_users, n_items = 30, 20
    users, items = _random_interactions(n_users - 3, n_items - 2, 120, seed=1)  # last users/items isolated
    r = sp.csr_matrix((np.ones(users.size, np.float32), (users, items)), shape=(n_users, n_items))
    graph = build_bipartite(r)
    assert graph.layout == torch.sparse_csr and graph.dtype == torch.float32
    dense = graph.to_dense().numpy()
    expected = _dense_reference(users, items, n_users, n_items)
    assert np.array_equal(dense != 0, expected != 0)
    np.testing.assert_allclose(dense, expected, atol=1e-6)
    assert np.isfinite(graph.values().numpy()).all()
    assert not dense[n_users - 1].any() and not dense[-1].any()


def test_invariant_to_interaction_order_and_duplicates():
    users, items = _random_interactions(25, 15, 100, seed=2)
    order = np.random.default_rng(3).permutation(users.size)
    a = build_bipartite(sp.csr_matrix((np.ones(users.size), (users, items)), shape=(25, 15)))
    twice_u, twice_i = np.concatenate([users[order], users]), np.concatenate([items[order], items])
    b = build_bipartite(sp.csr_matrix((np.ones(twice_u.size), (twice_u, twice_i)), shape=(25, 15)))
    for x, y in zip((a.crow_indices(), a.col_indices(), a.values()), (b.crow_indices(), b.col_indices(), b.values())):
        assert torch.equal(x, y)


def test_store_memoises_user_item_on_the_device(planted):
    store = GraphStore(planted, "cpu")
    graph = store.user_item()
    assert store.user_item() is graph
    n = planted.n_users + planted.n_items
    assert graph.shape == (n, n) and graph._nnz() == 2 * planted.csr("train").nnz
    assert graph.device == torch.device("cpu")


def test_store_user_item_of_a_dataset_with_unused_users():
    train = np.array([[0, 0, 1], [0, 2, 2]], dtype=np.int64)
    empty = np.zeros((2, 0), dtype=np.int64)
    data = Dataset("tiny", 4, 3, train, empty, empty)
    dense = GraphStore(data).user_item().to_dense().numpy()
    expected = _dense_reference(train[0], train[1], 4, 3)
    np.testing.assert_allclose(dense, expected, atol=1e-6)
