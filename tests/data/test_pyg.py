"""Dataset.to_pyg: the export to PyTorch Geometric, and PyG's normalised graph as an oracle for ours."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from datafiles import tiny_dataset
from recsys.data import Dataset
from recsys.graphs import GraphStore

pyg = pytest.importorskip("torch_geometric")


def test_export_holds_nodes_features_raw_ids_and_every_split():
    dataset = tiny_dataset()
    data = dataset.to_pyg()
    data.validate()
    assert (data["user"].num_nodes, data["item"].num_nodes) == (5, 7)
    np.testing.assert_array_equal(data["user"].raw_id, dataset.user_ids)
    np.testing.assert_array_equal(data["item"].raw_id, dataset.item_ids)
    for modality in ("text", "image"):
        assert torch.equal(data["item"][modality], torch.from_numpy(dataset.features[modality]))
    edges = data["user", "interacts", "item"]
    for key, split in (("edge_index", "train"), ("valid_edge_index", "valid"), ("test_edge_index", "test")):
        assert edges[key].dtype == torch.int64
        assert torch.equal(edges[key], torch.from_numpy(dataset.split(split)))


def test_pyg_normalisation_of_the_exported_graph_equals_our_user_item_graph():
    """gcn_norm (D^-1/2 A D^-1/2, no self loops) over the exported train edges made undirected is
    docs/graphs.md §1; user 5 and item 6 have no train interaction."""
    from torch_geometric.nn.conv.gcn_conv import gcn_norm
    from torch_geometric.utils import to_dense_adj

    base = tiny_dataset()
    dataset = Dataset("isolated", 6, 7, base.train, base.valid, base.test, base.features)
    users, items = dataset.to_pyg()["user", "interacts", "item"].edge_index
    items = items + dataset.n_users
    edge_index = torch.stack([torch.cat([users, items]), torch.cat([items, users])])
    n = dataset.n_users + dataset.n_items
    edge_index, weight = gcn_norm(edge_index, None, n, add_self_loops=False)
    expected = to_dense_adj(edge_index, edge_attr=weight, max_num_nodes=n)[0]
    ours = GraphStore(dataset, "cpu").user_item().to_dense()
    torch.testing.assert_close(ours, expected, rtol=1e-6, atol=1e-7)


def test_without_pyg_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_geometric", None)
    monkeypatch.setitem(sys.modules, "torch_geometric.data", None)
    with pytest.raises(ImportError, match=r"recsys\[pyg\]"):
        tiny_dataset().to_pyg()
