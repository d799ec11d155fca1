"""GraphStore planning mode: expensive graphs are sized from their definition, never built, and
the sizes bound the real graphs; cheap graphs are built and recorded exactly."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from recsys.data import Dataset
from recsys.graphs import GraphSize, GraphStore
from recsys.graphs.planning import placeholder


def _dataset(seed=0):
    rng = np.random.default_rng(seed)
    n_users, n_items = 50, 30
    users, items = rng.integers(0, 46, 160), rng.integers(0, 28, 160)   # users 46+, items 28+ unused
    pairs = np.unique(np.stack([users, items], axis=1), axis=0).T.astype(np.int64)
    lonely = np.array([[46], [28]])                                     # an item co-occurring with nothing
    empty = np.zeros((2, 0), dtype=np.int64)
    features = {"text": rng.standard_normal((n_items, 6)).astype(np.float32),
                "image": rng.standard_normal((n_items, 10)).astype(np.float32)}
    return Dataset("plan", n_users + 1, n_items, np.concatenate([pairs, lonely], axis=1), empty, empty, features)


EXPENSIVE = [
    ("item_knn", ({"text": 1.0}, 5)),
    ("item_knn", ({"text": 0.5, "image": 0.5}, 4)),
    ("item_knn", ({"text": 1.0}, 40)),                      # k above the number of items
    ("user_interest_knn", ({"text": 0.3, "image": 0.7}, 6)),
    ("item_cooccurrence", (5,)),
    ("user_cooccurrence", (7,)),
    ("item_homography", ({"text": 1.0}, 5, 0.4)),
    ("user_homography", ({"image": 1.0}, 4, 1.0)),
    ("item_cooccurrence_rownorm", (3,)),
    ("enhanced_item_graph", ("text", 4, 3, 0.5)),
    ("enhanced_item_graph", ("image", 4, 3, 0.0)),
    ("user_interest", ("image",)),
]


def _nnz(graph: torch.Tensor) -> int:
    return graph.numel() if graph.layout == torch.strided else graph._nnz()


@pytest.mark.parametrize("method,args", EXPENSIVE, ids=[f"{m}{a}" for m, a in EXPENSIVE])
def test_planned_size_bounds_the_real_graph(method, args):
    data = _dataset()
    real = getattr(GraphStore(data, "cpu"), method)(*args)
    store = GraphStore(data, "cpu", planning=True)
    stand_in = getattr(store, method)(*args)
    planned = store.plan[-1]
    assert not planned.built and planned.call.startswith(method.replace("item_knn", "item_knn_mix")
                                                         .replace("user_interest_knn", "user_interest_knn_mix"))
    assert tuple(real.shape) == planned.size.shape == tuple(stand_in.shape)
    assert _nnz(real) <= planned.size.nnz
    if planned.size.exact:
        assert _nnz(real) == planned.size.nnz
    if stand_in.layout == torch.strided:
        assert planned.size.dense and not stand_in.any()
    else:
        assert stand_in._nnz() == 0 and stand_in.crow_indices().dtype == torch.int32


def test_planning_builds_no_expensive_graph(monkeypatch):
    import recsys.graphs.store as module

    for name in ("knn_graph", "interest_knn_graph", "item_cooccurrence_graph", "user_cooccurrence_graph",
                 "item_cooccurrence_rownorm", "user_interest", "mix_graphs", "homography_graph",
                 "enhanced_item_graph"):
        monkeypatch.setattr(module, name, lambda *a, _name=name, **k: pytest.fail(f"planning built {_name}"))
    data = _dataset()
    store = GraphStore(data, "cpu", planning=True)
    for method, args in EXPENSIVE:
        getattr(store, method)(*args)
    homography = store.item_homography({"text": 1.0}, 5, 0.4)
    recorded = len(store.plan)
    assert store.item_homography({"text": 1.0}, 5, 0.4) is homography and len(store.plan) == recorded
    transposed = store.transpose(homography)
    assert store.plan[-1].size == store.size_of(homography).transposed() and not store.plan[-1].built
    assert transposed.shape == (30, 30) and transposed._nnz() == 0


def test_cheap_graphs_are_built_and_recorded_exactly():
    data = _dataset()
    real = GraphStore(data, "cpu")
    store = GraphStore(data, "cpu", planning=True)
    pairs = [(store.user_item(), real.user_item()), (store.user_mean_items(), real.user_mean_items()),
             (store.pruned_user_item(0.5, 3, 1), real.pruned_user_item(0.5, 3, 1))]
    pairs.append((store.transpose(pairs[1][0]), real.transpose(pairs[1][1])))
    for (planned_graph, real_graph), record in zip(pairs, store.plan):
        assert torch.equal(planned_graph.to_dense(), real_graph.to_dense())
        assert record.built and record.size.exact and record.size.nnz == real_graph._nnz()
    assert [p.call.split("(")[0] for p in store.plan] == ["user_item", "user_mean_items", "pruned_user_item",
                                                          "transpose"]


def test_bad_requests_fail_in_planning_mode_too():
    store = GraphStore(_dataset(), "cpu", planning=True)
    with pytest.raises(ValueError, match="co_weight"):
        store.item_homography({"text": 1.0}, 3, co_weight=1.5)
    with pytest.raises(ValueError, match="sum to 1"):
        store.item_knn({"text": 0.5, "image": 0.2}, 3)
    with pytest.raises(ValueError, match="beta must lie in"):
        store.enhanced_item_graph("text", 4, 3, -0.1)


def test_bytes_of_a_planned_graph():
    csr = GraphSize((10, 20), 30)
    assert csr.bytes == 30 * (4 + 4) + 11 * 4
    assert GraphSize((10, 20), 200, dense=True).bytes == 800
    assert GraphSize((3, 3), 2**31, exact=True).bytes == 2**31 * 12 + 4 * 8
    empty = placeholder(GraphSize((4, 6), 9))
    assert empty.shape == (4, 6) and empty._nnz() == 0
