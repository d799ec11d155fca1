"""FREEDOM: frozen mixed item graph, per-epoch degree-sensitive pruning, representation and
loss against direct computations, gradients and determinism."""
from __future__ import annotations

import json

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
    model.pre_epoch(1)  # draws a pruned graph, which ranking must ignore
    adjacency = GraphStore(tiny, "cpu").user_item().to_dense()
    ego = torch.cat([model.user_embedding, model.item_embedding]).detach()
    behaviour = _lightgcn(adjacency, ego, model.n_layers)
    item_graph = model.item_graph.to_dense()
    semantic = item_graph @ (item_graph @ model.item_embedding.detach())
    users, items = model.embeddings()
    assert torch.allclose(users, behaviour[: tiny.n_users], atol=1e-6)
    assert torch.allclose(items, behaviour[tiny.n_users:] + semantic, atol=1e-6)


def test_pre_epoch_draws_a_pruned_graph_per_epoch(tiny):
    model = _model(tiny, edge_dropout=0.5)
    with pytest.raises(RuntimeError, match="call pre_epoch"):
        model.loss(*_batch(tiny))
    model.pre_epoch(1)
    first = model.pruned_adjacency.to_dense()
    model.eval()
    model.train()
    assert torch.equal(model.pruned_adjacency.to_dense(), first)  # switching modes draws nothing
    model.pre_epoch(2)
    second = model.pruned_adjacency.to_dense()
    n_edges = tiny.train.shape[1]
    for graph in (first, second):
        kept = graph[: tiny.n_users, tiny.n_users:] > 0
        assert int(kept.sum()) == n_edges // 2
        assert torch.allclose(graph, graph.T)
    assert not torch.equal(first, second)
    model.pre_epoch(1)
    assert torch.equal(model.pruned_adjacency.to_dense(), first)  # a function of the epoch


def test_every_rank_draws_the_same_graph_whatever_its_random_state(tiny):
    """Two ranks build the model from the same seed; one has since used the global generator
    (dropout, another shard's sampling): both still draw the same graph for each epoch."""
    ranks = [_model(tiny), _model(tiny)]
    torch.rand(1000)
    for epoch in (1, 2):
        graphs = []
        for model in ranks:
            model.pre_epoch(epoch)
            graphs.append(model.pruned_adjacency.to_dense())
            torch.rand(17)
        assert torch.equal(graphs[0], graphs[1])
    torch.manual_seed(1)
    other_seed = FREEDOM(tiny, ranks[0].config, GraphStore(tiny, "cpu"))
    other_seed.pre_epoch(2)
    assert not torch.equal(other_seed.pruned_adjacency.to_dense(), graphs[0])


def test_training_the_features_leaves_the_dataset_untouched(tiny):
    before = {m: f.copy() for m, f in tiny.features.items()}
    model = _model(tiny, train_features=True)
    model.pre_epoch(1)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    model.loss(*_batch(tiny))["loss"].backward()
    optimizer.step()
    assert not torch.equal(model.features["text"].detach(), torch.from_numpy(before["text"]))
    for m, features in tiny.features.items():
        np.testing.assert_array_equal(features, before[m])


class _Crash(Exception):
    pass


def test_a_resumed_run_draws_the_graphs_of_an_uninterrupted_one(tiny, tmp_path):
    from recsys.runs import train

    def config(name):
        return resolve({"run_name": "run", "output_dir": str(tmp_path / name), "cache_dir": None,
                        "model": {"name": "freedom", **SMALL}, "eval": {"ks": [10], "metrics": ["recall"]},
                        "train": {"epochs": 4, "batch_size": 128, "progress": False, "monitor": "recall@10"}})

    full = train(config("full"), dataset=tiny)

    def crash_after_epoch_2(epoch, _):
        if epoch == 2:
            torch.rand(1000)  # the global random state at the crash plays no part
            raise _Crash

    with pytest.raises(_Crash):
        train(config("crash"), on_evaluate=crash_after_epoch_2, dataset=tiny)
    resumed = train(config("crash"), run_dir=tmp_path / "crash" / "run", resume=True, dataset=tiny)
    assert resumed["valid"] == full["valid"] and resumed["test"] == full["test"]
    losses = [(tmp_path / name / "run" / "metrics.jsonl").read_text().splitlines() for name in ("full", "crash")]
    assert [json.loads(line)["loss"] for line in losses[0]] == [json.loads(line)["loss"] for line in losses[1]]


def test_loss_is_bpr_on_pruned_graph_plus_weighted_modality_bpr(tiny):
    model = _model(tiny, modal_bpr_weight=0.3)
    model.pre_epoch(1)
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
    model.pre_epoch(1)
    model.loss(*_batch(tiny))["loss"].backward()
    for name in ("user_embedding", "item_embedding", "projections.text.weight", "projections.image.weight"):
        assert model.get_parameter(name).grad.abs().sum() > 0, name
    assert (model.features["text"].grad is not None) == train_features


def test_same_seed_same_pruned_graph_and_losses(tiny):
    batch = _batch(tiny)
    runs = []
    for _ in range(2):
        model = _model(tiny)
        model.pre_epoch(1)
        runs.append((model.pruned_adjacency.to_dense(), model.loss(*batch)["loss"]))
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])
