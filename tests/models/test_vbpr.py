"""VBPR: item = [ID ; projected features], loss against a direct computation, gradients,
determinism."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from recsys.compose import resolve
from recsys.data import load_dataset
from recsys.graphs import GraphStore
from recsys.models.vbpr import VBPR


@pytest.fixture(scope="module")
def tiny():
    return load_dataset({"format": "synthetic", "synthetic": {"n_users": 50, "n_items": 30, "interactions_per_user": 6,
                                                              "informative_dim": 6, "noise_dim": 5, "seed": 5}})


def _model(dataset, **overrides) -> VBPR:
    config = resolve({"model": {"name": "vbpr", "embedding_size": 8, **overrides}})["model"]
    torch.manual_seed(0)
    return VBPR(dataset, config, GraphStore(dataset, "cpu"))


def test_representations_concatenate_ids_and_projected_features(tiny):
    model = _model(tiny)
    features = np.concatenate([tiny.features["image"], tiny.features["text"]], axis=1)  # sorted by name
    projected = torch.from_numpy(features) @ model.projection.weight.T + model.projection.bias
    users, items = model.embeddings()
    assert users.shape == (tiny.n_users, 16) and items.shape == (tiny.n_items, 16)
    assert torch.allclose(items, torch.cat([model.item_embedding, projected], dim=1), atol=1e-6)
    scores = model.scores(torch.tensor([0, 3]))
    assert torch.allclose(scores, users[[0, 3]] @ items.T, atol=1e-6)


def test_modalities_select_the_feature_columns(tiny):
    model = _model(tiny, modalities=["text"])
    assert model.projection.in_features == tiny.features["text"].shape[1]
    with pytest.raises(ValueError, match="has feature modalities"):
        _model(tiny, modalities=["audio"])


def test_loss_matches_direct_computation(tiny):
    model = _model(tiny, reg_weight=0.01)
    users, pos, neg = torch.tensor([0, 1, 2, 2]), torch.tensor([3, 4, 5, 6]), torch.tensor([7, 8, 9, 10])
    _, items = model.embeddings()
    u, p, n = model.user_embedding[users], items[pos], items[neg]
    bpr = -F.logsigmoid((u * p).sum(1) - (u * n).sum(1)).mean()
    reg = 0.01 * (u.pow(2).sum() + p.pow(2).sum() + n.pow(2).sum()) / (2 * 4)
    losses = model.loss(users, pos, neg)
    assert torch.allclose(losses["bpr"], bpr, atol=1e-6) and torch.allclose(losses["reg"], reg, atol=1e-7)
    assert torch.allclose(losses["loss"], bpr + reg, atol=1e-6)


def test_gradients_reach_ids_and_projection_not_features(tiny):
    model = _model(tiny)
    model.loss(torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([4, 5]))["loss"].backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    assert not model.features.requires_grad


def test_same_seed_same_model():
    data = {"format": "synthetic", "synthetic": {"n_users": 20, "n_items": 15, "interactions_per_user": 5}}
    first, second = (_model(load_dataset(data)) for _ in range(2))
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        assert torch.equal(a, b)
