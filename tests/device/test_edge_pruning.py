"""FREEDOM's degree-sensitive edge pruning on every device.

Which edges are kept is drawn on the CPU with a generator keyed by (seed, epoch), so the draw
does not depend on the device: the pruned graph built on any device is the CPU's, and equals
the dense float64 reference of the kept edges renormalised on the kept graph. (That each
single kept edge is drawn in proportion to 1/√(d_u d_i) is a property of the CPU draw, checked
in tests/graphs/test_pruning.py.)
"""
from __future__ import annotations

import math

import numpy as np
import torch

from recsys.graphs import build_bipartite, pruned_bipartite
from tests.graphs.test_pruning import _dense_normalised, _edges, _matrix


def test_the_full_graph_matches_the_dense_reference(device):
    users, items, n_users, n_items = _edges(seed=3, n=60)
    graph = build_bipartite(_matrix(users, items, n_users + 2, n_items + 1), device)
    assert graph.device.type == device.type and graph.layout == torch.sparse_csr
    expected = _dense_normalised(users, items, n_users + 2, n_items + 1)
    np.testing.assert_allclose(graph.to_dense().cpu().numpy(), expected, rtol=1e-6, atol=1e-7)


def test_the_pruned_graph_is_the_cpus_and_keeps_distinct_original_edges_renormalised(device):
    users, items, n_users, n_items = _edges(seed=1, n=60)
    matrix = _matrix(users, items, n_users, n_items)
    graph = pruned_bipartite(matrix, 0.4, seed=0, epoch=3, device=device)
    assert graph.device.type == device.type
    dense = graph.to_dense().cpu().numpy()
    np.testing.assert_array_equal(dense, pruned_bipartite(matrix, 0.4, seed=0, epoch=3).to_dense().numpy())
    kept = np.argwhere(dense[:n_users, n_users:] > 0)
    assert len(kept) == math.floor(len(users) * 0.6 + 1e-9)
    assert {tuple(edge) for edge in kept.tolist()} <= set(zip(users.tolist(), items.tolist()))
    reference = _dense_normalised(torch.from_numpy(kept[:, 0]), torch.from_numpy(kept[:, 1]), n_users, n_items)
    np.testing.assert_allclose(dense, reference, rtol=1e-6, atol=1e-7)
