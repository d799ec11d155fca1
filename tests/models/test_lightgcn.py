"""LightGCN against an independent implementation: PyTorch Geometric's LightGCN on the same
weights and graph (same propagation, and BPR + L2 loss with PyG's λ = our reg_weight / 2)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from recsys.compose import resolve
from recsys.data import load_dataset
from recsys.graphs import GraphStore
from recsys.models.lightgcn import LightGCN

pyg_models = pytest.importorskip("torch_geometric.nn.models")


@pytest.fixture(scope="module")
def dataset():
    return load_dataset({"format": "synthetic", "synthetic": {"n_users": 70, "n_items": 45, "interactions_per_user": 6,
                                                              "seed": 5}})


def _pair(dataset, layers: int, reg_weight: float):
    config = resolve({"model": {"name": "lightgcn", "embedding_size": 8, "n_layers": layers,
                                "reg_weight": reg_weight}})["model"]
    torch.manual_seed(0)
    ours = LightGCN(dataset, config, GraphStore(dataset, "cpu"))
    theirs = pyg_models.LightGCN(dataset.n_users + dataset.n_items, 8, layers)
    with torch.no_grad():
        theirs.embedding.weight.copy_(ours.embedding)
    train = dataset.csr("train").tocoo()
    users = torch.from_numpy(train.row.astype(np.int64))
    items = torch.from_numpy(train.col.astype(np.int64)) + dataset.n_users
    edge_index = torch.stack([torch.cat([users, items]), torch.cat([items, users])])
    return ours, theirs, edge_index


@pytest.mark.parametrize("layers", [1, 3])
def test_embeddings_equal_pyg_lightgcn(dataset, layers):
    ours, theirs, edge_index = _pair(dataset, layers, 1e-4)
    users, items = ours.embeddings()
    expected = theirs.get_embedding(edge_index).detach()
    torch.testing.assert_close(torch.cat([users, items]), expected, rtol=1e-5, atol=1e-6)


def test_loss_and_gradient_equal_pyg_recommendation_loss(dataset):
    ours, theirs, edge_index = _pair(dataset, 2, reg_weight=0.2)
    rng = np.random.default_rng(1)
    pick = rng.choice(dataset.train.shape[1], 32, replace=False)
    users, pos = (torch.from_numpy(a[pick]) for a in dataset.train)
    neg = torch.from_numpy(rng.integers(0, dataset.n_items, 32))
    loss = ours.loss(users, pos, neg)["loss"]
    loss.backward()

    out = theirs.get_embedding(edge_index)
    u, p, n = out[users], out[pos + dataset.n_users], out[neg + dataset.n_users]
    nodes = torch.cat([users, pos + dataset.n_users, neg + dataset.n_users])
    expected = theirs.recommendation_loss((u * p).sum(1), (u * n).sum(1), node_id=nodes, lambda_reg=0.1)
    expected.backward()
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(ours.embedding.grad, theirs.embedding.weight.grad, rtol=1e-4, atol=1e-7)
