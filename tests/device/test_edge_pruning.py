"""FREEDOM's degree-sensitive edge pruning on every device.

The normalised graph of given edges is deterministic: equal to the dense float64 reference
on every device. Which edges are kept is a draw from the device's generator (a CPU and a CUDA
``torch.Generator`` give different streams), so the draw itself is not compared across
devices; what is checked on each device is what the docstring promises of it: the right
number of distinct original edges, renormalised on the kept graph, each single kept edge
drawn with probability proportional to 1/√(d_u d_i).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from recsys.nn.edge_pruning import degree_edge_weights, degree_sensitive_prune, normalised_bipartite
from tests.test_edge_pruning import _dense_normalised, _edges


def test_normalised_bipartite_matches_the_dense_reference(device):
    users, items, n_users, n_items = _edges(seed=3, n=60)
    graph = normalised_bipartite(users.to(device), items.to(device), n_users + 2, n_items + 1)
    assert graph.device.type == device.type and graph.layout == torch.sparse_csr
    with np.errstate(divide="ignore"):                    # the reference's isolated nodes
        expected = _dense_normalised(users, items, n_users + 2, n_items + 1)
    np.testing.assert_allclose(graph.to_dense().cpu().numpy(), expected, rtol=1e-6, atol=1e-7)
    weights = degree_edge_weights(users.to(device), items.to(device), n_users, n_items)
    np.testing.assert_allclose(weights.cpu().numpy(), degree_edge_weights(users, items, n_users, n_items).numpy(),
                               rtol=1e-6)


def test_pruned_graph_keeps_distinct_original_edges_renormalised(device):
    users, items, n_users, n_items = _edges(seed=1, n=60)
    generator = torch.Generator(device=device).manual_seed(0)
    graph = degree_sensitive_prune(users.to(device), items.to(device), n_users, n_items, 0.4, generator=generator)
    assert graph.device.type == device.type
    dense = graph.to_dense().cpu().numpy()
    kept = np.argwhere(dense[:n_users, n_users:] > 0)
    assert len(kept) == math.floor(len(users) * 0.6 + 1e-9)
    assert {tuple(edge) for edge in kept.tolist()} <= set(zip(users.tolist(), items.tolist()))
    reference = _dense_normalised(torch.from_numpy(kept[:, 0]), torch.from_numpy(kept[:, 1]), n_users, n_items)
    np.testing.assert_allclose(dense, reference, rtol=1e-6, atol=1e-7)


def test_a_single_kept_edge_is_drawn_in_proportion_to_its_weight(device):
    users, items = torch.tensor([0, 0, 0, 1, 2]), torch.tensor([0, 1, 2, 0, 3])
    expected = (degree_edge_weights(users, items, 3, 4) / degree_edge_weights(users, items, 3, 4).sum()).numpy()
    generator = torch.Generator(device=device).manual_seed(1)
    draws = 2000
    counts = np.zeros(5)
    on_device = users.to(device), items.to(device)
    for _ in range(draws):
        dense = degree_sensitive_prune(*on_device, 3, 4, 0.8, generator=generator).to_dense()[:3, 3:].cpu()
        (u, i), = torch.nonzero(dense).tolist()
        counts[[k for k in range(5) if (users[k], items[k]) == (u, i)][0]] += 1
    sigma = np.sqrt(expected * (1 - expected) / draws)
    assert np.all(np.abs(counts / draws - expected) < 4.5 * sigma), (counts / draws, expected)
