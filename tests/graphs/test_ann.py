"""FAISS kNN search (recsys.graphs.ann) and exact ranking of candidates (knn.refine_topk),
against the exact builders and dense brute-force references."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from recsys.graphs import GraphStore, interest_knn_graph, knn_graph
from recsys.graphs.ann import FaissSearch, knn_search
from recsys.graphs.knn import cosine_topk, refine_topk
from tests.graphs.reference import cosine, knn_dense, ordered_topk, random_interactions


def _features(n=300, d=8, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((6, d))
    x = (centres[rng.integers(6, size=n)] + 0.4 * rng.standard_normal((n, d))).astype(np.float32)
    x[4] = 0.0                 # a zero row: similar to nothing
    x[10] = x[3]               # copies of row 3: exact ties
    x[11] = x[3]
    return x


def _recall(found: torch.Tensor, exact: torch.Tensor) -> float:
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found.tolist(), exact.tolist())]))


# ----------------------------------------------------------------------------- refine_topk (no FAISS needed)
def test_refine_ranks_each_rows_candidates_exactly():
    x = _features(n=60)
    rng = np.random.default_rng(1)
    candidates = torch.from_numpy(rng.integers(-1, 60, size=(60, 9)))     # -1 = none, repeats allowed
    values, indices = refine_topk(torch.from_numpy(x), candidates, 4, chunk=7)
    sims = np.float32(cosine(x))
    for row in range(60):
        if row == 4:
            assert indices[row].tolist() == [0, 1, 2, 3] and values[row].abs().max() == 0.0
            continue
        pool = sorted({row, *[c for c in candidates[row].tolist() if c >= 0]})
        if len(pool) < 4:                                                   # too few: the whole row
            expected = ordered_topk(sims[row:row + 1], 4)[0]
        else:
            order = np.lexsort((pool, -sims[row, pool]))[:4]
            expected = np.asarray(pool)[order]
        assert indices[row].tolist() == sorted(expected.tolist()), row
        np.testing.assert_allclose(values[row].numpy(), sims[row, indices[row].numpy()], atol=1e-6)


def test_refine_without_candidates_is_the_exact_top_k():
    x = _features(n=50, seed=2)
    exact_values, exact_indices = cosine_topk(x, 5)
    values, indices = refine_topk(torch.from_numpy(x), torch.full((50, 3), -1), 5, chunk=8)
    assert torch.equal(indices, exact_indices)
    torch.testing.assert_close(values, exact_values, atol=1e-6, rtol=0)


# ----------------------------------------------------------------------------- FAISS
faiss = pytest.importorskip("faiss")


@pytest.mark.parametrize("weighted", [True, False])
def test_flat_index_gives_the_exact_graph(weighted):
    x = _features()
    graph = knn_graph(x, 5, weighted, search=FaissSearch(index="flat"))
    exact = knn_graph(x, 5, weighted)
    assert torch.equal(graph.crow_indices(), exact.crow_indices())
    assert torch.equal(graph.col_indices(), exact.col_indices())
    np.testing.assert_allclose(graph.to_dense().numpy(), knn_dense(x, 5, weighted), atol=1e-6)


def test_auto_picks_flat_up_to_the_threshold_then_hnsw():
    search = FaissSearch(flat_max_rows=100)
    assert search.index_for(100) == "flat" and search.index_for(101) == "hnsw"
    assert FaissSearch(index="hnsw", flat_max_rows=100).index_for(5) == "hnsw"


def test_hnsw_graph_has_the_exact_semantics_and_high_recall():
    x = _features(n=2000, d=8, seed=3)
    search = FaissSearch(index="hnsw", hnsw_m=16, ef_construction=40, ef_search=32)
    values, indices = search.topk(x, 10)
    _, exact_indices = cosine_topk(x, 10)
    assert _recall(indices, exact_indices) >= 0.97
    sims = np.float32(cosine(x))
    nonzero = np.linalg.norm(x, axis=1) > 0
    for row in np.flatnonzero(nonzero):
        assert row in indices[row].tolist()                                # own row always a neighbour
    assert {3, 10, 11} <= set(indices[3].tolist())                         # ties kept
    assert indices[4].tolist() == list(range(10))                          # zero row as in the exact builder
    np.testing.assert_allclose(values.numpy(), np.take_along_axis(sims, indices.numpy(), 1), atol=1e-6)
    graph = knn_graph(x, 10, search=search).to_dense().numpy()
    expected = np.zeros_like(graph)
    np.put_along_axis(expected, indices.numpy(), np.take_along_axis(sims, indices.numpy(), 1) / 10, 1)
    np.testing.assert_allclose(graph, expected, atol=1e-6)


def test_hnsw_is_deterministic_for_a_seed():
    x = _features(n=3000, d=16, seed=4)
    search = FaissSearch(index="hnsw", hnsw_m=8, ef_construction=16, ef_search=16, seed=7)
    first, second = knn_graph(x, 6, search=search), knn_graph(x, 6, search=search)
    assert torch.equal(first.col_indices(), second.col_indices())
    assert torch.equal(first.values(), second.values())


def test_user_interest_graph_with_faiss():
    r = random_interactions(120, 80, 700, seed=5, active_users=110)
    x = _features(n=80, d=6, seed=6)
    exact = interest_knn_graph(r, x, 7)
    flat = interest_knn_graph(r, x, 7, search=FaissSearch(index="flat"))
    assert torch.equal(flat.col_indices(), exact.col_indices())
    torch.testing.assert_close(flat.values(), exact.values(), atol=1e-6, rtol=0)
    hnsw = interest_knn_graph(r, x, 7, method="gram", search=FaissSearch(index="hnsw", ef_search=200))
    assert hnsw.shape == (120, 120) and hnsw._nnz() == 120 * 7
    dense, expected = hnsw.to_dense(), exact.to_dense()
    kept = dense != 0
    torch.testing.assert_close(dense[kept], expected[kept], atol=1e-6, rtol=0)   # found neighbours weigh the same
    assert (kept & (expected != 0)).sum() >= 0.95 * (expected != 0).sum()


def test_store_uses_the_configured_backend_and_keys_the_cache_by_it(tmp_path):
    from tests.graphs.test_store import _dataset

    data = _dataset()
    config = {"knn_backend": "faiss", "faiss": {"index": "hnsw", "ef_search": 64}}
    store = GraphStore(data, "cpu", cache_dir=tmp_path, graphs=config)
    search = FaissSearch(index="hnsw", ef_search=64)
    expected = knn_graph(data.features["text"], 4, search=search)
    assert torch.equal(store.item_knn({"text": 1.0}, 4).to_dense(), expected.to_dense())
    exact_store = GraphStore(data, "cpu", cache_dir=tmp_path)
    exact_store.item_knn({"text": 1.0}, 4)
    GraphStore(data, "cpu", cache_dir=tmp_path, graphs={"knn_backend": "faiss"}).item_knn({"text": 1.0}, 4)
    assert len(list(tmp_path.rglob("item_knn-*.pt"))) == 3          # exact, faiss hnsw, faiss defaults
    reloaded = GraphStore(data, "cpu", cache_dir=tmp_path, graphs=config).item_knn({"text": 1.0}, 4)
    assert torch.equal(reloaded.to_dense(), expected.to_dense())


@pytest.mark.parametrize("section, message", [
    ({"knn_backend": "annoy"}, "graphs.knn_backend"),
    ({"knn_backend": "faiss", "faiss": {"index": "ivf"}}, "graphs.faiss.index"),
    ({"knn_backend": "faiss", "faiss": {"hnsw_m": 0}}, "graphs.faiss.hnsw_m"),
    ({"knn_backend": "faiss", "faiss": {"ef_serch": 10}}, "graphs.faiss.ef_serch"),
])
def test_bad_graphs_section_names_the_key(section, message):
    with pytest.raises(ValueError, match=message):
        knn_search(section)


def test_exact_backend_is_no_search():
    assert knn_search(None) is None and knn_search({"knn_backend": "exact", "faiss": {"index": "hnsw"}}) is None


def test_missing_faiss_says_how_to_install(monkeypatch):
    from recsys.errors import ConfigError
    from recsys.evaluation.retrieval import FaissRetriever

    monkeypatch.setitem(sys.modules, "faiss", None)
    with pytest.raises(ConfigError, match=r"graphs.knn_backend: faiss needs .*pip install \"recsys\[faiss\]\""):
        knn_search({"knn_backend": "faiss"})
    with pytest.raises(ConfigError, match=r"--index faiss.*pip install"):
        FaissRetriever(torch.ones(3, 2))


def test_run_config_selects_the_backend(monkeypatch):
    from recsys import compose
    from recsys.errors import ConfigError
    from tests.graphs.test_store import _dataset

    stores = []

    class RecordingStore(GraphStore):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            stores.append(self)

    monkeypatch.setattr(compose, "GraphStore", RecordingStore)
    data = _dataset()
    config = compose.resolve({"model": {"name": "freedom", "item_knn_k": 3}, "device": "cpu", "cache_dir": None,
                              "graphs": {"knn_backend": "faiss", "faiss": {"index": "hnsw", "seed": 3}}})
    compose.build(config, torch.device("cpu"), data)
    assert stores[-1].knn_search == FaissSearch(index="hnsw", seed=3)
    compose.build(compose.resolve({"device": "cpu", "cache_dir": None}), torch.device("cpu"), data)
    assert stores[-1].knn_search is None and stores[-1].knn_search_key == "exact"
    with pytest.raises(ConfigError, match="graphs.faiss.ef_search"):          # checked when the config is read
        compose.resolve({"graphs": {"knn_backend": "faiss", "faiss": {"ef_search": -1}}, "device": "cpu"})
    with pytest.raises(ConfigError, match="graphs.knn_backend"):
        compose.resolve({"graphs": {"knn_backend": "annoy"}})
    with pytest.raises(ConfigError, match="'graphs' names a section"):
        compose.resolve({"graphs": 1})


def test_config_defaults_are_the_search_defaults():
    from dataclasses import asdict

    from recsys.config import CORE_DEFAULTS

    assert CORE_DEFAULTS["graphs"]["knn_backend"] == "exact"
    assert CORE_DEFAULTS["graphs"]["faiss"] == asdict(FaissSearch())
