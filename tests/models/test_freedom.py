"""FREEDOM: frozen mixed item graph, per-epoch degree-sensitive pruning, representation and
loss against direct computations, gradients and determinism."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from recsys.compose import resolve
from recsys.data import load_dataset
from recsys.graphs import GraphStore
from recsys.models.freedom import FREEDOM
from recsys.nn.modalities import image_weighted

SMALL = {"embedding_size": 8, "item_knn_k": 4}


@pytest.fixture(scope="module")
def tiny():
    return load_dataset({"format": "synthetic", "synthetic": {"n_users": 60, "n_items": 40, "interactions_per_user": 8,
                                                              "informative_dim": 6, "noise_dim": 5, "seed": 4}})


def _model(dataset, **overrides) -> FREEDOM:
    config = resolve({"model": {"name": "freedom", **SMALL, **overrides}})["model"]
    torch.manual_seed(0)
    return FREEDOM(dataset, config, GraphStore(dataset, "cpu"))


def _batch(dataset, size=48, seed=0):
    rng = np.random.default_rng(seed)
    pick = rng.choice(dataset.train.shape[1], size, replace=False)
    users, pos = (torch.from_numpy(a[pick]) for a in dataset.train)
    return users, pos, torch.from_numpy(rng.integers(0, dataset.n_items, size))


def test_image_weight_convention():
    assert image_weighted(["image", "text"], 0.1) == pytest.approx({"image": 0.1, "text": 0.9})
    assert image_weighted(["audio", "image", "text"], 0.2) == pytest.approx({"image": 0.2, "audio": 0.4, "text": 0.4})
    assert image_weighted(["text"], 0.1) == {"text": 1.0}
    with pytest.raises(ValueError, match="mm_image_weight"):
        image_weighted(["image", "text"], 1.5)


def test_item_graph_is_the_unit_weight_knn_mixed_by_image_weight(tiny):
    model = _model(tiny, mm_image_weight=0.3)
    graphs = GraphStore(tiny, "cpu")
    text = graphs.item_knn({"text": 1.0}, 4, weighted=False).to_dense()
    image = graphs.item_knn({"image": 1.0}, 4, weighted=False).to_dense()
    assert torch.allclose(model.item_graph.to_dense(), 0.7 * text + 0.3 * image, atol=1e-7)
    assert torch.allclose(model.item_graph_t.to_dense(), model.item_graph.to_dense().T)


def _lightgcn(adjacency: torch.Tensor, ego: torch.Tensor, layers: int) -> torch.Tensor:
    out = [ego]
    for _ in range(layers):
        out.append(adjacency @ out[-1])
    return torch.stack(out).mean(0)


def test_ranking_representation_uses_the_full_graph(tiny):
    model = _model(tiny, n_item_layers=2)
    model.train()  # draws a pruned graph, which ranking must ignore
    adjacency = GraphStore(tiny, "cpu").user_item().to_dense()
    ego = torch.cat([model.user_embedding, model.item_embedding]).detach()
    behaviour = _lightgcn(adjacency, ego, model.n_layers)
    item_graph = model.item_graph.to_dense()
    semantic = item_graph @ (item_graph @ model.item_embedding.detach())
    users, items = model.embeddings()
    assert torch.allclose(users, behaviour[: tiny.n_users], atol=1e-6)
    assert torch.allclose(items, behaviour[tiny.n_users:] + semantic, atol=1e-6)


def test_training_mode_redraws_a_pruned_graph_each_time(tiny):
    model = _model(tiny, edge_dropout=0.5)
    model.train()
    first = model.pruned_adjacency.to_dense()
    model.eval()
    assert torch.equal(model.pruned_adjacency.to_dense(), first)  # eval keeps it
    model.train()
    second = model.pruned_adjacency.to_dense()
    n_edges = tiny.train.shape[1]
    for graph in (first, second):
        kept = graph[: tiny.n_users, tiny.n_users:] > 0
        assert int(kept.sum()) == n_edges // 2
        assert torch.allclose(graph, graph.T)
    assert not torch.equal(first, second)


def test_loss_is_bpr_on_pruned_graph_plus_weighted_modality_bpr(tiny):
    model = _model(tiny, modal_bpr_weight=0.3)
    model.train()
    users, pos, neg = _batch(tiny)
    losses = model.loss(users, pos, neg)
    ego = torch.cat([model.user_embedding, model.item_embedding])
    behaviour = _lightgcn(model.pruned_adjacency.to_dense(), ego, model.n_layers)
    items = behaviour[tiny.n_users:] + model.item_graph.to_dense() @ model.item_embedding
    u = behaviour[users]

    def bpr(p, n):
        return -F.logsigmoid((u * p).sum(1) - (u * n).sum(1)).mean()

    main = bpr(items[pos], items[neg])
    modal = sum(bpr(model.projections[m](model.features[m][pos]), model.projections[m](model.features[m][neg]))
                for m in ("image", "text"))
    assert torch.allclose(losses["bpr"], main, atol=1e-6)
    assert torch.allclose(losses["modal_bpr"], 0.3 * modal, atol=1e-6)
    assert torch.allclose(losses["loss"], main + 0.3 * modal, atol=1e-6)


@pytest.mark.parametrize("train_features", [True, False])
def test_gradients_reach_embeddings_projections_and_optionally_features(tiny, train_features):
    model = _model(tiny, train_features=train_features)
    model.train()
    model.loss(*_batch(tiny))["loss"].backward()
    for name in ("user_embedding", "item_embedding", "projections.text.weight", "projections.image.weight"):
        assert model.get_parameter(name).grad.abs().sum() > 0, name
    assert (model.features["text"].grad is not None) == train_features


def test_training_the_features_leaves_the_dataset_untouched(tiny):
    before = {m: f.copy() for m, f in tiny.features.items()}
    model = _model(tiny, train_features=True)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    model.loss(*_batch(tiny))["loss"].backward()
    optimizer.step()
    assert not torch.equal(model.features["text"].detach(), torch.from_numpy(before["text"]))
    for m, features in tiny.features.items():
        np.testing.assert_array_equal(features, before[m])


def test_same_seed_same_pruned_graph_and_losses(tiny):
    batch = _batch(tiny)
    runs = []
    for _ in range(2):
        model = _model(tiny)
        model.train()
        runs.append((model.pruned_adjacency.to_dense(), model.loss(*batch)["loss"]))
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])
