"""FREEDOM's degree-sensitive edge pruning against dense references."""
import numpy as np
import pytest
import torch

from recsys.nn.edge_pruning import degree_edge_weights, degree_sensitive_prune, normalised_bipartite


def _edges(seed=0, n_users=9, n_items=7, n=30):
    rng = np.random.default_rng(seed)
    pairs = np.unique(np.stack([rng.integers(0, n_users, n), rng.integers(0, n_items, n)]), axis=1)
    return torch.from_numpy(pairs[0]), torch.from_numpy(pairs[1]), n_users, n_items


def _dense_normalised(users, items, n_users, n_items):
    n = n_users + n_items
    a = np.zeros((n, n))
    for u, i in zip(users.tolist(), items.tolist()):
        a[u, n_users + i] = a[n_users + i, u] = 1.0
    d = a.sum(1)
    inv = np.where(d > 0, d ** -0.5, 0.0)
    return inv[:, None] * a * inv[None, :]


def test_normalised_bipartite_matches_dense_reference_with_isolated_nodes():
    users, items, n_users, n_items = _edges()
    got = normalised_bipartite(users, items, n_users + 2, n_items + 1).to_dense().numpy()
    expected = _dense_normalised(users, items, n_users + 2, n_items + 1)
    assert np.allclose(got, expected, atol=1e-7)
    assert np.isfinite(got).all()


def test_edge_weights_are_inverse_sqrt_degree_products():
    users, items, n_users, n_items = _edges()
    du, di = np.bincount(users, minlength=n_users), np.bincount(items, minlength=n_items)
    expected = 1 / np.sqrt(du[users.numpy()] * di[items.numpy()])
    assert np.allclose(degree_edge_weights(users, items, n_users, n_items).numpy(), expected)


def test_pruned_graph_keeps_the_right_number_of_original_edges_renormalised():
    users, items, n_users, n_items = _edges(1)
    adj = degree_sensitive_prune(users, items, n_users, n_items, 0.5, generator=torch.Generator().manual_seed(0))
    dense = adj.to_dense().numpy()
    kept = np.argwhere(dense[:n_users, n_users:] > 0)
    assert len(kept) == len(users) // 2
    original = set(zip(users.tolist(), items.tolist()))
    assert {tuple(e) for e in kept.tolist()} <= original
    ku, ki = torch.from_numpy(kept[:, 0]), torch.from_numpy(kept[:, 1])
    assert np.allclose(dense, _dense_normalised(ku, ki, n_users, n_items), atol=1e-7)


def test_single_kept_edge_is_drawn_with_probability_proportional_to_weight():
    users = torch.tensor([0, 0, 0, 1, 2])
    items = torch.tensor([0, 1, 2, 0, 3])
    weights = degree_edge_weights(users, items, 3, 4)
    g = torch.Generator().manual_seed(0)
    counts = np.zeros(5)
    for _ in range(1200):
        dense = degree_sensitive_prune(users, items, 3, 4, 0.8, generator=g).to_dense()[:3, 3:]
        u, i = torch.nonzero(dense)[0].tolist()
        counts[[k for k in range(5) if (users[k], items[k]) == (u, i)][0]] += 1
    expected = (weights / weights.sum()).numpy()
    assert np.allclose(counts / 1200, expected, atol=0.04)
    assert counts[4] > counts[0]  # the isolated pair (degree 1, 1) is kept most often


def test_no_drop_returns_the_full_graph_and_bad_ratio_is_an_error():
    users, items, n_users, n_items = _edges(2)
    full = degree_sensitive_prune(users, items, n_users, n_items, 0.0).to_dense().numpy()
    assert np.allclose(full, _dense_normalised(users, items, n_users, n_items), atol=1e-7)
    with pytest.raises(ValueError, match="drop ratio"):
        degree_sensitive_prune(users, items, n_users, n_items, 1.0)
