"""GraphStore: the graphs models ask for, consistent with the pure builders, memoised, cached."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from recsys.data import Dataset
from recsys.errors import ConfigError
from recsys.graphs import (GraphStore, interest_knn_graph, item_cooccurrence_graph, knn_graph, mix_graphs,
                           user_cooccurrence_graph)


def _dataset(seed=0):
    rng = np.random.default_rng(seed)
    n_users, n_items = 50, 30
    users, items = rng.integers(0, 46, 200), rng.integers(0, 28, 200)   # users 46+, items 28+ unused
    pairs = np.unique(np.stack([users, items], axis=1), axis=0).T.astype(np.int64)
    empty = np.zeros((2, 0), dtype=np.int64)
    features = {"text": rng.standard_normal((n_items, 6)).astype(np.float32),
                "image": rng.standard_normal((n_items, 10)).astype(np.float32)}
    return Dataset("store", n_users, n_items, pairs, empty, empty, features)


def _dense(graph):
    return graph.to_dense().numpy()


def test_graphs_equal_the_pure_builders():
    data = _dataset()
    store = GraphStore(data, "cpu")
    r = data.csr("train")
    weights = {"image": 0.1, "text": 0.9}
    item_s = mix_graphs([(0.1, knn_graph(data.features["image"], 4)), (0.9, knn_graph(data.features["text"], 4))])
    np.testing.assert_allclose(_dense(store.item_knn(weights, 4)), _dense(item_s), atol=1e-7)
    user_s = mix_graphs([(0.1, interest_knn_graph(r, data.features["image"], 6)),
                         (0.9, interest_knn_graph(r, data.features["text"], 6))])
    np.testing.assert_allclose(_dense(store.user_interest_knn(weights, 6)), _dense(user_s), atol=1e-7)
    item_c, user_c = item_cooccurrence_graph(r, 4), user_cooccurrence_graph(r, 6)
    np.testing.assert_allclose(_dense(store.item_cooccurrence(4)), _dense(item_c), atol=1e-7)
    np.testing.assert_allclose(_dense(store.item_homography(weights, 4, co_weight=0.2)),
                               0.2 * _dense(item_c) + 0.8 * _dense(item_s), atol=1e-6)
    np.testing.assert_allclose(_dense(store.user_homography(weights, 6, co_weight=0.7)),
                               0.7 * _dense(user_c) + 0.3 * _dense(user_s), atol=1e-6)
    np.testing.assert_allclose(store.user_interest("text").numpy()[46:], 0.0)
    mean = _dense(store.user_mean_items())
    np.testing.assert_allclose(mean.sum(1)[:46][np.asarray(r.sum(1)).ravel()[:46] > 0], 1.0, atol=1e-6)


def test_homography_with_a_separate_cooccurrence_k_and_pure_weights():
    data = _dataset(seed=1)
    store = GraphStore(data, "cpu")
    only_co = store.user_homography({"text": 1.0}, 5, co_weight=1.0, co_k=3)
    np.testing.assert_allclose(_dense(only_co), _dense(store.user_cooccurrence(3)), atol=1e-7)
    only_knn = store.item_homography({"text": 1.0}, 5, co_weight=0.0)
    np.testing.assert_allclose(_dense(only_knn), _dense(store.item_knn({"text": 1.0}, 5)), atol=1e-7)


def test_no_nan_for_users_and_items_without_interactions():
    store = GraphStore(_dataset(), "cpu")
    weights = {"image": 0.5, "text": 0.5}
    for graph in (store.user_item(), store.item_knn(weights, 3), store.user_interest_knn(weights, 3),
                  store.item_cooccurrence(3), store.user_cooccurrence(3), store.item_homography(weights, 3, 0.5),
                  store.user_homography(weights, 3, 0.5)):
        assert torch.isfinite(graph.values()).all()
    assert torch.isfinite(store.user_interest("image")).all()


def test_memoised_and_cached_on_disk(tmp_path, monkeypatch):
    data = _dataset()
    store = GraphStore(data, "cpu", cache_dir=tmp_path)
    graph = store.item_knn({"text": 1.0}, 3)
    assert store.item_knn({"text": 1.0}, 3) is graph
    store.user_cooccurrence(4)
    import recsys.graphs.store as module

    def refuse(*args, **kwargs):
        raise AssertionError("rebuilt a cached graph")
    monkeypatch.setattr(module, "knn_graph", refuse)
    monkeypatch.setattr(module, "user_cooccurrence_graph", refuse)
    fresh = GraphStore(data, "cpu", cache_dir=tmp_path)
    np.testing.assert_array_equal(_dense(fresh.item_knn({"text": 1.0}, 3)), _dense(graph))
    fresh.user_cooccurrence(4)
    assert (tmp_path / data.fingerprint()).is_dir()


def test_projection_option_reaches_both_knn_builders():
    data = _dataset()
    store = GraphStore(data, "cpu", knn_projection=4)
    np.testing.assert_allclose(_dense(store.item_knn({"image": 1.0}, 3)),
                               _dense(knn_graph(data.features["image"], 3, projection=4)), atol=1e-7)
    np.testing.assert_allclose(_dense(store.user_interest_knn({"image": 1.0}, 3)),
                               _dense(interest_knn_graph(data.csr("train"), data.features["image"], 3, projection=4)),
                               atol=1e-7)


def test_bad_requests_name_the_fix():
    store = GraphStore(_dataset(), "cpu")
    with pytest.raises(ConfigError, match="has no 'audio' features"):
        store.item_knn({"audio": 1.0}, 3)
    with pytest.raises(ValueError, match="sum to 1"):
        store.item_knn({"text": 0.5, "image": 0.2}, 3)
    with pytest.raises(ValueError, match="co_weight"):
        store.item_homography({"text": 1.0}, 3, co_weight=1.5)


def test_graphs_are_handed_out_with_int32_indices_and_kept_as_they_are():
    store = GraphStore(_dataset(), "cpu")
    graph = store.item_homography({"text": 1.0}, 3, co_weight=0.5)
    assert graph.crow_indices().dtype == graph.col_indices().dtype == torch.int32
    assert store.item_homography({"text": 1.0}, 3, co_weight=0.5) is graph
    from recsys.nn import compact_csr

    assert compact_csr(graph) is graph   # a model's compact_csr keeps the store's tensor, no copy


def test_transpose_is_memoised_and_only_for_the_stores_graphs():
    data = _dataset()
    store = GraphStore(data, "cpu")
    for graph in (store.user_mean_items(), store.user_homography({"image": 1.0}, 4, co_weight=0.3),
                  store.item_knn({"text": 1.0}, 3)):
        transposed = store.transpose(graph)
        np.testing.assert_array_equal(_dense(transposed), _dense(graph).T)
        assert transposed.layout == torch.sparse_csr and transposed.crow_indices().dtype == torch.int32
        assert store.transpose(graph) is transposed
    with pytest.raises(ValueError, match="not returned by this GraphStore"):
        store.transpose(knn_graph(data.features["text"], 3))


def test_siger_graphs_equal_the_pure_builders_and_the_cooccurrence_is_cached(tmp_path, monkeypatch):
    from recsys.graphs.enhanced import enhanced_item_graph, item_cooccurrence_rownorm

    data = _dataset(seed=2)
    store = GraphStore(data, "cpu", cache_dir=tmp_path)
    co = item_cooccurrence_rownorm(data.csr("train"), 3)
    np.testing.assert_allclose(_dense(store.item_cooccurrence_rownorm(3)), _dense(co), atol=1e-7)
    knn = knn_graph(data.features["image"], 4, weighted=False)
    for beta, expected in ((0.4, enhanced_item_graph(knn, co, 0.4)), (0.0, enhanced_item_graph(knn, None, 0.0))):
        np.testing.assert_allclose(_dense(store.enhanced_item_graph("image", 4, 3, beta)), _dense(expected), atol=1e-7)
    import recsys.graphs.store as module

    monkeypatch.setattr(module, "item_cooccurrence_rownorm", lambda *a, **k: pytest.fail("rebuilt a cached graph"))
    np.testing.assert_array_equal(_dense(GraphStore(data, "cpu", cache_dir=tmp_path).item_cooccurrence_rownorm(3)),
                                  _dense(co))
    with pytest.raises(ValueError, match="beta must lie in"):
        store.enhanced_item_graph("image", 4, 3, 1.5)
