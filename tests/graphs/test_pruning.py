"""FREEDOM's degree-sensitive edge pruning against dense references; the draw is keyed by (seed, epoch)."""
import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recsys.data import Dataset
from recsys.graphs import GraphStore, build_bipartite, pruned_bipartite
from recsys.graphs.pruning import degree_edge_weights, epoch_generator, kept_edges, sample_edges


def _edges(seed=0, n_users=9, n_items=7, n=30):
    rng = np.random.default_rng(seed)
    pairs = np.unique(np.stack([rng.integers(0, n_users, n), rng.integers(0, n_items, n)]), axis=1)
    return torch.from_numpy(pairs[0]), torch.from_numpy(pairs[1]), n_users, n_items


def _matrix(users, items, n_users, n_items):
    return sp.csr_matrix((np.ones(len(users), dtype=np.float32), (users.numpy(), items.numpy())),
                         shape=(n_users, n_items))


def _dense_normalised(users, items, n_users, n_items):
    n = n_users + n_items
    a = np.zeros((n, n))
    for u, i in zip(users.tolist(), items.tolist()):
        a[u, n_users + i] = a[n_users + i, u] = 1.0
    d = a.sum(1)
    inv = np.power(d, -0.5, out=np.zeros_like(d), where=d > 0)
    return inv[:, None] * a * inv[None, :]


def test_edge_weights_are_inverse_sqrt_degree_products():
    users, items, n_users, n_items = _edges()
    du, di = np.bincount(users, minlength=n_users), np.bincount(items, minlength=n_items)
    expected = 1 / np.sqrt(du[users.numpy()] * di[items.numpy()])
    assert np.allclose(degree_edge_weights(users, items, n_users, n_items).numpy(), expected)


def test_pruned_graph_keeps_the_right_number_of_original_edges_renormalised():
    users, items, n_users, n_items = _edges(1)
    adj = pruned_bipartite(_matrix(users, items, n_users, n_items), 0.5, seed=0, epoch=1)
    dense = adj.to_dense().numpy()
    kept = np.argwhere(dense[:n_users, n_users:] > 0)
    assert len(kept) == len(users) // 2 == kept_edges(len(users), 0.5)
    original = set(zip(users.tolist(), items.tolist()))
    assert {tuple(e) for e in kept.tolist()} <= original
    ku, ki = torch.from_numpy(kept[:, 0]), torch.from_numpy(kept[:, 1])
    assert np.allclose(dense, _dense_normalised(ku, ki, n_users, n_items), atol=1e-7)


def test_single_kept_edge_is_drawn_with_probability_proportional_to_weight():
    users = torch.tensor([0, 0, 0, 1, 2])
    items = torch.tensor([0, 1, 2, 0, 3])
    weights = degree_edge_weights(users, items, 3, 4)
    g = torch.Generator().manual_seed(0)
    counts = np.bincount(torch.cat([sample_edges(users, items, 3, 4, 0.8, g) for _ in range(1200)]).numpy(),
                         minlength=5)
    expected = (weights / weights.sum()).numpy()
    assert np.allclose(counts / 1200, expected, atol=0.04)
    assert counts[4] > counts[0]  # the isolated pair (degree 1, 1) is kept most often


def test_no_drop_is_the_full_graph_and_bad_ratio_is_an_error():
    users, items, n_users, n_items = _edges(2)
    matrix = _matrix(users, items, n_users, n_items)
    full = pruned_bipartite(matrix, 0.0, seed=0, epoch=1)
    reference = build_bipartite(matrix)
    assert torch.equal(full.to_dense(), reference.to_dense())
    with pytest.raises(ValueError, match="drop ratio"):
        pruned_bipartite(matrix, 1.0, seed=0, epoch=1)


def test_the_draw_is_a_function_of_seed_and_epoch_only():
    users, items, n_users, n_items = _edges(3, n=60)
    matrix = _matrix(users, items, n_users, n_items)
    first = pruned_bipartite(matrix, 0.6, seed=5, epoch=2).to_dense()
    torch.manual_seed(123)                       # the global random state plays no part
    torch.rand(1000)
    assert torch.equal(pruned_bipartite(matrix, 0.6, seed=5, epoch=2).to_dense(), first)
    others = [pruned_bipartite(matrix, 0.6, seed=s, epoch=e).to_dense() for s, e in ((5, 3), (6, 2))]
    assert all(not torch.equal(other, first) for other in others)
    # the order of the interaction rows does not matter (edges are drawn in CSR order)
    order = torch.randperm(users.numel())
    shuffled = sp.coo_matrix((np.ones(len(users), dtype=np.float32), (users[order].numpy(), items[order].numpy())),
                             shape=(n_users, n_items))
    assert torch.equal(pruned_bipartite(shuffled, 0.6, seed=5, epoch=2).to_dense(), first)
    assert torch.equal(epoch_generator(5, 2).get_state(), epoch_generator(5, 2).get_state())


def test_store_draws_a_new_graph_per_call_and_keeps_none():
    users, items, n_users, n_items = _edges(4, n=60)
    empty = np.zeros((2, 0), dtype=np.int64)
    data = Dataset("pruning", n_users, n_items, torch.stack([users, items]).numpy(), empty, empty)
    store = GraphStore(data, "cpu")
    a, b = store.pruned_user_item(0.5, 7, 1), store.pruned_user_item(0.5, 7, 1)
    assert a is not b and torch.equal(a.to_dense(), b.to_dense())
    assert a.crow_indices().dtype == torch.int32
    assert torch.equal(a.to_dense(), pruned_bipartite(data.csr("train"), 0.5, 7, 1).to_dense())
    with pytest.raises(ValueError, match="not returned by this GraphStore"):
        store.transpose(a)                       # not memoised: the store keeps no epoch's graph
