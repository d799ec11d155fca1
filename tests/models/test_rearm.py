"""REARM: wiring against a dense transcription of the reference forward pass, losses against
direct formulas, the fixed-interest shortcut, gradients, determinism and learning."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from recsys.compose import build, resolve
from recsys.data import load_dataset
from recsys.graphs import GraphStore
from recsys.losses import bpr_loss, orthogonality_loss
from recsys.losses import info_nce as reference_info_nce
from recsys.models.rearm import REARM
from recsys.runs import train

SMALL = {"embedding_size": 8, "rank": 2, "n_layers": 2, "item_knn_k": 4, "user_knn_k": 5}


def _with_image(dataset, dim=6, seed=1):
    rng = np.random.default_rng(seed)
    dataset.features["image"] = rng.standard_normal((dataset.n_items, dim)).astype(np.float32)
    return dataset


def _model(dataset, **overrides) -> REARM:
    config = resolve({"model": {"name": "rearm", **SMALL, **overrides}})["model"]
    torch.manual_seed(0)
    return REARM(dataset, config, GraphStore(dataset, "cpu"))


def _batch(dataset, size=64, seed=0):
    rng = np.random.default_rng(seed)
    pick = rng.choice(dataset.train.shape[1], size, replace=False)
    users, pos = (torch.from_numpy(a[pick]) for a in dataset.train)
    return users, pos, torch.from_numpy(rng.integers(0, dataset.n_items, size))


# ----------------------------------------------------------------- dense reference transcription
def _attend(attention, query, key_value):
    """``nn.MultiheadAttention(1, 1)`` (eval mode, no dropout) with the weights of our attention."""
    mha = nn.MultiheadAttention(1, 1, batch_first=True).to(query.dtype).eval()
    weights = {"in_proj_weight": attention.in_weight[:, None], "in_proj_bias": attention.in_bias,
               "out_proj.weight": attention.out_weight[None, :], "out_proj.bias": attention.out_bias}
    kv = key_value.unsqueeze(2)
    out = torch.func.functional_call(mha, weights, (query.unsqueeze(2), kv, kv), {"need_weights": False})
    return out[0].squeeze(2)


def _dense_forward(model: REARM, user_tables: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference code's forward() for two modalities, composed from plain modules and
    autograd: dense graphs, the U × D user interest tables ``user_tables`` through nn.Linear,
    nn.MultiheadAttention without dropout, the meta-network over every node. Returns the final
    representations of all users then all items, and F (the modality parts after propagation)."""
    d, n_users = model.dim, model.n_users
    ln, act = model.norm, model.act
    item = torch.cat([model.item_id] + [proj(x) for proj, x in zip(model.item_proj, model.item_features)], 1)
    for _ in range(model.n_item_layers):
        item = model.item_graph.to_dense() @ item
    user = torch.cat([model.user_id] + [proj(p) for proj, p in zip(model.user_proj, user_tables)], 1)
    for _ in range(model.n_user_layers):
        user = model.user_graph.to_dense() @ user
    item_id, v, t = F.normalize(item).split(d, 1)
    user_id, uv, ut = F.normalize(user).split(d, 1)
    v = act(ln(v + _attend(model.self_attention[0], v, v)))
    t = act(ln(t + _attend(model.self_attention[1], t, t)))
    v, t = act(ln(v + _attend(model.cross_attention[0], t, v))), act(ln(t + _attend(model.cross_attention[1], v, t)))
    adjacency = model.adjacency.to_dense()

    def mean_of_layers(x):
        layers = [x]
        for _ in range(model.n_layers):
            layers.append(adjacency @ layers[-1])
        return torch.stack(layers).mean(0)

    feats = mean_of_layers(torch.cat([torch.cat([act(uv), act(ut)], 1), torch.cat([v, t], 1)], 0))
    ids = mean_of_layers(torch.cat([user_id, item_id], 0))
    shares = []
    for rows, knowledge, mlp1, mlp2 in ((slice(None, n_users), model.user_knowledge, model.user_factor_in,
                                         model.user_factor_out),
                                        (slice(n_users, None), model.item_knowledge, model.item_factor_in,
                                         model.item_factor_out)):
        kappa = knowledge(feats[rows]).detach()
        w1 = mlp1(kappa).reshape(-1, d, model.rank)
        w2 = mlp2(kappa).reshape(-1, model.rank, d)
        w1 = F.softmax(w1 + w1.mean(0), dim=1)
        w2 = F.softmax(w2 + w2.mean(0), dim=1)
        shares.append(torch.bmm(torch.bmm(ids[rows].unsqueeze(1), w1), w2).squeeze(1))
    share = torch.cat(shares)
    return torch.cat([act(feats[:, :d]) + ids, act(feats[:, d:]) + ids, act(share) + ids], 1), feats


@pytest.mark.parametrize("train_user_interest", [True, False])
def test_forward_equals_dense_reference_transcription(planted, train_user_interest):
    dataset = _with_image(planted)
    model = _model(dataset, modalities=["image", "text"], n_item_layers=2, train_user_interest=train_user_interest,
                   item_modality_weights={"image": 0.3, "text": 0.7}).double()
    model.eval()
    for buffer in ("item_graph", "item_graph_t", "user_graph", "user_graph_t", "adjacency"):
        setattr(model, buffer, getattr(model, buffer).double())
    if not train_user_interest:
        for name in ("mean_items", "mean_items_t", "initial_features_0", "initial_features_1"):
            setattr(model, name, getattr(model, name).double())
    users, items = model.embeddings()
    with torch.no_grad():
        graphs = GraphStore(dataset, "cpu")
        expected = _dense_forward(model, [graphs.user_interest(m).double() for m in model.modalities])[0]
    # float32 inputs (graph weights, user interest table) limit the agreement to ~1e-7
    torch.testing.assert_close(torch.cat([users, items]), expected, rtol=1e-6, atol=1e-7)


def _straightforward_loss(model: REARM, users, pos, neg) -> torch.Tensor:
    """The training loss from :func:`_dense_forward` (the trainable user interest tables) and
    recsys.losses.info_nce, in the model's dtype."""
    d, n_users = model.dim, model.n_users
    rep, feats = _dense_forward(model, list(model.user_interest))
    u, p, n = rep[users], rep[pos + n_users], rep[neg + n_users]
    loss = bpr_loss((u * p).sum(1), (u * n).sum(1))
    fv, ft = feats.split(d, 1)
    items = torch.unique(torch.cat([pos, neg])) + n_users
    unique_users = torch.unique(users)
    tau = model.config["temperature"]
    loss = loss + model.config["contrast_weight"] * (reference_info_nce(fv[items], ft[items], tau)
                                                    + reference_info_nce(fv[unique_users], ft[unique_users], tau))
    positives = pos + n_users
    return loss + model.config["orthogonality_weight"] * (orthogonality_loss(fv[users], ft[users])
                                                      + orthogonality_loss(fv[positives], ft[positives]))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_training_loss_and_gradients_equal_the_straightforward_formulation(planted, dtype):
    """Every speed device of the model (reused table-gradient memory, fused meta-network heads
    and InfoNCE, distinct batch nodes; in float32 also the oneDNN products) against plain
    autograd. float64: all gradients to 1e-9. float32: the loss and the gradients of every
    table, embedding, projection and meta-network parameter to 1e-5; the attention's scalar
    parameters are left to float64, their float32 gradients being sums with heavy
    cancellation in any implementation (plain autograd misses float64 by up to 1e-2 there)."""
    dataset = _with_image(planted)
    model = _model(dataset, modalities=["image", "text"], n_item_layers=2, train_user_interest=True,
                   self_attention_dropout=0.0, cross_attention_dropout=0.0, contrast_weight=0.3,
                   orthogonality_weight=0.2, temperature=0.5).to(dtype)
    for buffer in ("item_graph", "item_graph_t", "user_graph", "user_graph_t", "adjacency"):
        setattr(model, buffer, getattr(model, buffer).to(dtype))
    model.train()
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    params = [p for _, p in named]
    batch = _batch(dataset, size=96)  # users and items repeat within the batch
    tolerance = 1e-9 if dtype == torch.float64 else 1e-5
    for _ in range(2):  # the second pass writes the table gradients into the memory of the first
        model.zero_grad(set_to_none=True)
        loss = model.loss(*batch)["loss"]
        loss.backward()
        got = [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in params]
        model.zero_grad(set_to_none=True)
        expected = _straightforward_loss(model, *batch)
        want = torch.autograd.grad(expected, params, allow_unused=True)
        assert loss.item() == pytest.approx(expected.item(), rel=tolerance)
        scale = max(w.abs().max().item() for w in want if w is not None)
        for (name, _), g, w in zip(named, got, want):
            w = torch.zeros_like(g) if w is None else w
            if name.endswith("out_bias"):  # LayerNorm removes a constant shift: the gradient is exactly 0
                assert max(g.abs().item(), w.abs().item()) < 10 * tolerance * scale, name
            elif dtype == torch.float64 or "attention" not in name:  # (entries that are exactly 0 add noise)
                assert (g - w).norm().item() <= tolerance * (w.norm().item() + 1e-6 * scale), name
        with torch.no_grad():
            for p in params:
                p.add_(torch.randn_like(p) * 1e-2)


# ----------------------------------------------------------------- shapes, gradients, options
@pytest.mark.parametrize("modalities", [["text"], ["image", "text"], ["image", "text", "extra"]])
def test_shapes_losses_and_gradients_for_one_two_and_three_modalities(planted, modalities):
    dataset = _with_image(planted)
    dataset.features["extra"] = np.random.default_rng(2).standard_normal((dataset.n_items, 5)).astype(np.float32)
    model = _model(dataset, modalities=modalities)
    losses = model.loss(*_batch(dataset))
    assert set(losses) == {"loss", "bpr", "contrast", "orthogonality"}
    torch.testing.assert_close(losses["loss"], losses["bpr"] + losses["contrast"] + losses["orthogonality"])
    assert (losses["contrast"].item() > 0) == (len(modalities) > 1)
    losses["loss"].backward()
    detached = {"user_knowledge.weight", "user_knowledge.bias", "item_knowledge.weight", "item_knowledge.bias"}
    for name, parameter in model.named_parameters():
        if name in detached:  # the meta-knowledge input is detached, as in the reference
            assert parameter.grad is None, name
        else:
            assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
    assert model.item_features[0].grad.abs().sum() > 0
    model.eval()
    users, items = model.embeddings()
    width = (len(modalities) + 1) * SMALL["embedding_size"]
    assert users.shape == (dataset.n_users, width) and items.shape == (dataset.n_items, width)
    scores = model.scores(torch.arange(3))
    torch.testing.assert_close(scores, users[:3] @ items.T)


def test_fixed_interest_shortcut_equals_the_user_interest_table(planted):
    """P W + b via R̄ (X⁰ W) equals the U × D table route, in value and in gradient."""
    dataset = _with_image(planted)
    fixed, table = _model(dataset, train_user_interest=False), _model(dataset, train_user_interest=True)
    table.load_state_dict(fixed.state_dict(), strict=False)
    batch = _batch(dataset)
    for model in (fixed, table):
        model.eval()
        model.loss(*batch)["loss"].backward()
    torch.testing.assert_close(fixed.embeddings(), table.embeddings(), rtol=1e-5, atol=1e-6)
    for a, b in zip(fixed.user_proj.parameters(), table.user_proj.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-6)
    assert not any(p is fixed.initial_features_0 for p in fixed.parameters())
    assert sum(p.numel() for p in table.user_interest) == dataset.n_users * sum(
        f.shape[1] for f in dataset.features.values())


def test_dropout_only_in_training(planted):
    model = _model(_with_image(planted))
    model.eval()
    first = model.embeddings()
    assert all(torch.equal(a, b) for a, b in zip(first, model.embeddings()))
    batch = _batch(planted)
    model.train()
    assert model.loss(*batch)["bpr"].item() != model.loss(*batch)["bpr"].item()


# ----------------------------------------------------------------- losses
def _direct_info_nce(a, b, tau):
    a, b = F.normalize(a.double(), dim=1), F.normalize(b.double(), dim=1)
    total = 0.0
    for n in range(a.shape[0]):
        logits = [math.exp(float(a[n] @ b[m]) / tau) for m in range(b.shape[0])]
        total -= math.log(logits[n] / sum(logits))
    return total / a.shape[0]


def _direct_orthogonality(x, y):
    x, y = x.double() - x.double().mean(0), y.double() - y.double().mean(0)
    x = x / (x.norm(dim=1, keepdim=True) + 1e-6)
    y = y / (y.norm(dim=1, keepdim=True) + 1e-6)
    d = x.shape[1]
    return sum(float(x[:, a] @ y[:, b]) ** 2 for a in range(d) for b in range(d)) / (d * d)


def test_contrast_and_orthogonality_terms_equal_direct_formulas(planted):
    dataset = _with_image(planted)
    model = _model(dataset, self_attention_dropout=0.0, cross_attention_dropout=0.0, temperature=0.3,
                   contrast_weight=0.5, orthogonality_weight=2.0)
    users, pos, neg = _batch(dataset)
    losses = model.loss(users, pos, neg)
    with torch.no_grad():
        feats, _ = model._propagated()
    v, t = feats.split(SMALL["embedding_size"], dim=1)
    items = torch.unique(torch.cat([pos, neg])) + dataset.n_users
    unique_users = torch.unique(users)
    contrast = _direct_info_nce(v[items], t[items], 0.3) + _direct_info_nce(v[unique_users], t[unique_users], 0.3)
    assert losses["contrast"].item() == pytest.approx(0.5 * contrast, rel=1e-4)
    positives = pos + dataset.n_users
    orthogonality = _direct_orthogonality(v[users], t[users]) + _direct_orthogonality(v[positives], t[positives])
    assert losses["orthogonality"].item() == pytest.approx(2.0 * orthogonality, rel=1e-4)


def test_orthogonality_loss_is_zero_for_orthogonal_views_and_grows_with_correlation():
    hadamard = torch.tensor([[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]], dtype=torch.float64)
    x, y = hadamard[:, 1:2], hadamard[:, 2:4]  # centred columns, orthogonal across x and y, equal row norms
    assert orthogonality_loss(x, y).item() == pytest.approx(0.0, abs=1e-12)
    assert orthogonality_loss(x, y).item() == pytest.approx(_direct_orthogonality(x, y), abs=1e-12)
    generator = torch.Generator().manual_seed(0)
    a, noise = torch.randn(256, 6, generator=generator), torch.randn(256, 6, generator=generator)
    values = [orthogonality_loss(a, rho * a + math.sqrt(1 - rho**2) * noise).item() for rho in (0.0, 0.3, 0.6, 0.9)]
    assert values == sorted(values) and values[-1] > 20 * values[0]
    assert values[2] == pytest.approx(_direct_orthogonality(a, 0.6 * a + 0.8 * noise), rel=1e-6)


# ----------------------------------------------------------------- config errors
def test_config_errors_name_the_fix(planted):
    with pytest.raises(ValueError, match="item_modality_weights"):
        _model(_with_image(planted), item_modality_weights={"image": 0.5, "text": 0.6})
    with pytest.raises(ValueError, match="model.modalities"):
        _model(planted, modalities=["audio"])
    planted.features = {}
    with pytest.raises(ValueError, match="item features"):
        _model(planted)


# ----------------------------------------------------------------- training
# Few train interactions per user (about 4) and informative text: collaborative signal alone is weak.
SYNTHETIC = {"n_users": 400, "n_items": 400, "interactions_per_user": 6, "n_clusters": 16, "popularity_skew": 0.3,
             "seed": 0}


def _run_config(tmp_path, model, lr, epochs, **model_keys):
    optimizer = "adamw" if model == "rearm" else "adam"
    return resolve({
        "run_name": "run", "output_dir": str(tmp_path), "cache_dir": None,
        "dataset": {"format": "synthetic", "synthetic": SYNTHETIC},
        "model": {"name": model, **model_keys},
        "train": {"optimizer": optimizer, "lr": lr, "batch_size": 512, "epochs": epochs, "patience": 50,
                  "progress": False},
        "eval": {"ks": [20], "metrics": ["recall", "ndcg"]},
    })


REARM_TEST = {"embedding_size": 16, "n_layers": 2, "item_knn_k": 10, "user_knn_k": 10}


def test_same_seed_gives_identical_metrics(tmp_path):
    dataset = load_dataset({"format": "synthetic", "synthetic": {**SYNTHETIC, "n_users": 200, "n_items": 100}})
    runs = [train(_run_config(tmp_path / name, "rearm", 3e-3, 2, **REARM_TEST), dataset=dataset) for name in "ab"]
    assert runs[0]["valid"] == runs[1]["valid"] and runs[0]["test"] == runs[1]["test"]


def test_learns_from_informative_features_and_beats_lightgcn(tmp_path):
    dataset = load_dataset({"format": "synthetic", "synthetic": SYNTHETIC})
    rearm = train(_run_config(tmp_path / "rearm", "rearm", 3e-3, 12, **REARM_TEST), dataset=dataset)
    lightgcn = train(_run_config(tmp_path / "lightgcn", "lightgcn", 1e-2, 30), dataset=dataset)
    run = build(_run_config(tmp_path / "init", "rearm", 3e-3, 1, **REARM_TEST), torch.device("cpu"),
                               dataset)
    untrained, task = run.model, run.task
    initial = task.evaluate(untrained, "test")
    assert rearm["test"]["recall@20"] > 1.1 * initial["recall@20"]
    assert rearm["test"]["recall@20"] > lightgcn["test"]["recall@20"]
    assert rearm["test"]["ndcg@20"] > lightgcn["test"]["ndcg@20"]
