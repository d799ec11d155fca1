"""SIGER: enhanced item graphs against dense references, the reordered semantic branch,
leave-one-out user means, each switch, gradients, determinism and learning."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from recsys.compose import resolve
from recsys.data import load_dataset
from recsys.graphs import GraphStore
from recsys.graphs.enhanced import enhanced_item_graph, item_cooccurrence_rownorm, row_normalise
from recsys.models.siger import SIGER

SMALL = {"embedding_size": 8, "item_knn_k": 4, "item_co_k": 3}


@pytest.fixture(scope="module")
def tiny():
    return load_dataset({"format": "synthetic", "synthetic": {"n_users": 60, "n_items": 40, "interactions_per_user": 8,
                                                              "informative_dim": 6, "noise_dim": 5, "seed": 3}})


def _model(dataset, **overrides) -> SIGER:
    config = resolve({"model": {"name": "siger", **SMALL, **overrides}})["model"]
    torch.manual_seed(0)
    return SIGER(dataset, config, GraphStore(dataset, "cpu"))


def _batch(dataset, size=48, seed=0):
    rng = np.random.default_rng(seed)
    pick = rng.choice(dataset.train.shape[1], size, replace=False)
    users, pos = (torch.from_numpy(a[pick]) for a in dataset.train)
    return users, pos, torch.from_numpy(rng.integers(0, dataset.n_items, size))


# ----------------------------------------------------------------- graphs (dense references)
def _dense_cooccurrence_rownorm(train: np.ndarray, k: int) -> np.ndarray:
    counts = train.T @ train
    np.fill_diagonal(counts, 0)
    out = np.zeros_like(counts, dtype=np.float64)
    for i, row in enumerate(counts):
        order = sorted(np.flatnonzero(row), key=lambda j: (-row[j], j))[:k]
        if order:
            out[i, order] = row[order] / row[order].sum()
    return out


def test_rownorm_cooccurrence_matches_dense_reference(tiny):
    train = tiny.csr("train").toarray()
    got = item_cooccurrence_rownorm(tiny.csr("train"), 3).to_dense().numpy()
    assert np.allclose(got, _dense_cooccurrence_rownorm(train, 3), atol=1e-6)


def test_rownorm_cooccurrence_leaves_items_without_partners_empty():
    interactions = np.zeros((3, 4), dtype=np.float32)
    interactions[0, [0, 1]] = interactions[1, [1, 2]] = 1  # item 3 co-occurs with nothing
    got = item_cooccurrence_rownorm(interactions, 2).to_dense().numpy()
    assert got[3].sum() == 0 and np.allclose(got[:3].sum(1), 1)
    assert np.allclose(got[1], [0.5, 0, 0.5, 0])


def test_enhanced_graph_is_row_normalised_mixture(tiny):
    graphs = GraphStore(tiny, "cpu")
    knn = graphs.item_knn({"text": 1.0}, 4, weighted=False)
    co = item_cooccurrence_rownorm(tiny.csr("train"), 3)
    got = enhanced_item_graph(knn, co, 0.3).to_dense().numpy()
    mixed = 0.7 * knn.to_dense().numpy() + 0.3 * co.to_dense().numpy()
    assert np.allclose(got, mixed / mixed.sum(1, keepdims=True), atol=1e-6)
    assert np.allclose(enhanced_item_graph(knn, None, 0.0).to_dense().numpy(), knn.to_dense().numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="beta must lie in"):
        enhanced_item_graph(knn, co, 1.5)


def test_row_normalise_keeps_empty_rows_empty():
    dense = torch.tensor([[1.0, 3.0], [0.0, 0.0]])
    assert torch.allclose(row_normalise(dense.to_sparse_csr()).to_dense(), torch.tensor([[0.25, 0.75], [0, 0]]))


# ----------------------------------------------------------------- representations
def _dense_semantic(model: SIGER, dataset, graphs: GraphStore, beta: float, layers: int) -> list[torch.Tensor]:
    """h^m = Ŝ^L proj(X) for items and R̄ h_I for users, computed directly (float64)."""
    co = item_cooccurrence_rownorm(dataset.csr("train"), SMALL["item_co_k"]).to_dense().double()
    train = torch.from_numpy(dataset.csr("train").toarray()).double()
    mean_user = train / train.sum(1, keepdim=True).clamp_min(1)
    out = []
    for m in model.modalities:
        knn = graphs.item_knn({m: 1.0}, SMALL["item_knn_k"], weighted=False).to_dense().double()
        mixed = (1 - beta) * knn + beta * co
        graph = mixed / mixed.sum(1, keepdim=True)
        proj = copy.deepcopy(model.projections[m]).double()
        h_items = proj(torch.from_numpy(dataset.features[m]).double())
        for _ in range(layers):
            h_items = graph @ h_items
        out.append(torch.cat([mean_user @ h_items, h_items]))
    return out


@pytest.mark.parametrize("infusion,layers", [(True, 1), (False, 1), (True, 2)])
def test_semantic_branch_equals_direct_computation(tiny, infusion, layers):
    model = _model(tiny, cooccurrence_infusion=infusion, n_item_layers=layers, item_co_weight=0.4)
    expected = _dense_semantic(model, tiny, GraphStore(tiny, "cpu"), 0.4 if infusion else 0.0, layers)
    for got, want in zip(model.semantic(), expected):
        assert torch.allclose(got.double(), want, atol=1e-5)


def test_ranking_representation_is_behaviour_plus_weighted_semantics(tiny):
    model = _model(tiny)
    with torch.no_grad():
        model.modality_logits.copy_(torch.tensor([0.3, -0.2]))
    adjacency = GraphStore(tiny, "cpu").user_item().to_dense()
    layers = [model.embedding.detach()]
    for _ in range(model.n_layers):
        layers.append(adjacency @ layers[-1])
    behaviour = torch.stack(layers).mean(0)
    weights = torch.softmax(torch.tensor([0.3, -0.2]), 0)
    semantic = model.semantic()
    z = behaviour + weights[0] * semantic[0] + weights[1] * semantic[1]
    users, items = model.embeddings()
    assert torch.allclose(torch.cat([users, items]), z, atol=1e-5)


def test_leave_one_out_user_semantics_drop_exactly_the_scored_item(tiny):
    model = _model(tiny)
    train = tiny.csr("train")
    users, pos, _ = _batch(tiny, 20)
    got = model.user_semantic_without(users, pos)
    items = model.semantic(torch.arange(tiny.n_items) + tiny.n_users)
    for m, h_items in enumerate(items):
        for row, (u, i) in enumerate(zip(users.tolist(), pos.tolist())):
            rest = [j for j in train[u].indices if j != i]
            want = h_items[rest].mean(0) if rest else torch.zeros_like(h_items[0])
            assert torch.allclose(got[m][row], want, atol=1e-5)


# ----------------------------------------------------------------- losses and switches
def test_loss_terms_follow_the_switches(tiny):
    batch = _batch(tiny)
    full = _model(tiny).loss(*batch)
    assert set(full) == {"loss", "bpr", "reg", "pert", "anchor", "fuse"}
    assert torch.allclose(full["loss"], sum(v for k, v in full.items() if k != "loss"))
    off = _model(tiny, perturbation=False, anchor_alignment=False, fuse_alignment=False).loss(*batch)
    assert set(off) == {"loss", "bpr", "reg"}
    assert torch.allclose(off["bpr"], full["bpr"]) and torch.allclose(off["reg"], full["reg"])


def test_bpr_term_scores_with_leave_one_out_users(tiny):
    model = _model(tiny, perturbation=False, anchor_alignment=False, fuse_alignment=False)
    users, pos, neg = _batch(tiny)
    behaviour = model.behaviour()
    weights = model.modality_weights()
    h_user = sum(w * h for w, h in zip(weights, model.user_semantic_without(users, pos)))
    h_items = sum(w * h for w, h in zip(weights, model.semantic(torch.arange(tiny.n_items) + tiny.n_users)))
    z_u = behaviour[users] + h_user
    z_p, z_n = behaviour[tiny.n_users + pos] + h_items[pos], behaviour[tiny.n_users + neg] + h_items[neg]
    expected = -torch.nn.functional.logsigmoid((z_u * z_p).sum(1) - (z_u * z_n).sum(1)).mean()
    assert torch.allclose(model.loss(users, pos, neg)["bpr"], expected, atol=1e-6)


def test_every_parameter_receives_gradient(tiny):
    model = _model(tiny)
    model.loss(*_batch(tiny))["loss"].backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


@pytest.mark.parametrize("term", ["anchor", "fuse"])
def test_detach_anchor_stops_alignment_gradient_into_behaviour(tiny, term):
    only = {"perturbation": False, "anchor_alignment": term == "anchor", "fuse_alignment": term == "fuse"}
    for detach, expect_zero in ((True, True), (False, False)):
        model = _model(tiny, detach_anchor=detach, **only)
        model.loss(*_batch(tiny))[term].backward()
        assert (model.embedding.grad is None or model.embedding.grad.abs().sum() == 0) == expect_zero
        assert model.projections["text"].weight.grad.abs().sum() > 0


def test_contrastive_sets_are_capped(tiny):
    model = _model(tiny, cl_max_nodes=5)
    nodes = torch.arange(30)
    picked = model._subsample(nodes)
    assert picked.numel() == 5 and torch.unique(picked).numel() == 5
    assert torch.equal(_model(tiny)._subsample(nodes), nodes)


def test_invalid_options_are_errors(tiny):
    with pytest.raises(ValueError, match="noise_scaling"):
        _model(tiny, noise_scaling="popularity")
    with pytest.raises(ValueError, match="item_co_weight"):
        _model(tiny, item_co_weight=2.0)
    with pytest.raises(ValueError, match="modalities"):
        _model(tiny, modalities=["audio"])


def test_same_seed_same_losses(tiny):
    batch = _batch(tiny)
    torch.manual_seed(5)
    first = _model(tiny).loss(*batch)
    torch.manual_seed(5)
    second = _model(tiny).loss(*batch)
    for key in first:
        assert torch.equal(first[key], second[key]), key
