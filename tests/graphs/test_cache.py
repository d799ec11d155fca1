"""On-disk graph cache: hits, misses, corrupt entries, atomic writes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from recsys.graphs import GraphCache, knn_graph
from recsys.graphs.cache import parameter_hash


def _graph(seed=0):
    return knn_graph(np.random.default_rng(seed).standard_normal((20, 4)).astype(np.float32), 3)


class _Builder:
    def __init__(self, graph):
        self.graph, self.calls = graph, 0

    def __call__(self):
        self.calls += 1
        return self.graph


def _same(a, b):
    return (torch.equal(a.crow_indices(), b.crow_indices()) and torch.equal(a.col_indices(), b.col_indices())
            and torch.equal(a.values(), b.values()) and a.shape == b.shape)


def test_hit_returns_the_stored_graph_without_building(tmp_path):
    build = _Builder(_graph())
    cache = GraphCache(tmp_path, "abc")
    first = cache.load_or_build("item_knn", {"k": 3, "modality": "text"}, build, "cpu")
    second = GraphCache(tmp_path, "abc").load_or_build("item_knn", {"modality": "text", "k": 3}, build, "cpu")
    assert build.calls == 1 and _same(first, second) and second.layout == torch.sparse_csr
    assert [p.name for p in (tmp_path / "abc").iterdir()] == [cache.path("item_knn", {"k": 3, "modality": "text"}).name]


def test_other_parameters_fingerprints_or_builders_miss(tmp_path):
    build = _Builder(_graph())
    GraphCache(tmp_path, "abc").load_or_build("item_knn", {"k": 3}, build, "cpu")
    GraphCache(tmp_path, "abc").load_or_build("item_knn", {"k": 4}, build, "cpu")
    GraphCache(tmp_path, "xyz").load_or_build("item_knn", {"k": 3}, build, "cpu")
    GraphCache(tmp_path, "abc").load_or_build("user_knn", {"k": 3}, build, "cpu")
    assert build.calls == 4
    assert parameter_hash("a", {"x": 1, "y": 2}) == parameter_hash("a", {"y": 2, "x": 1})


@pytest.mark.parametrize("damage", ["truncate", "garbage", "foreign"])
def test_corrupt_entry_is_rebuilt_with_a_warning(tmp_path, damage):
    cache = GraphCache(tmp_path, "abc")
    good = _Builder(_graph())
    cache.load_or_build("item_knn", {"k": 3}, good, "cpu")
    path = cache.path("item_knn", {"k": 3})
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:50])
    elif damage == "garbage":
        path.write_bytes(b"not a torch file")
    else:  # a readable entry of another builder under this name
        other = GraphCache(tmp_path, "zzz")
        other.load_or_build("user_knn", {"k": 3}, _Builder(_graph(1)), "cpu")
        path.write_bytes(other.path("user_knn", {"k": 3}).read_bytes())
    rebuild = _Builder(_graph())
    with pytest.warns(RuntimeWarning, match="unusable"):
        graph = cache.load_or_build("item_knn", {"k": 3}, rebuild, "cpu")
    assert rebuild.calls == 1 and _same(graph, _graph())
    again = _Builder(_graph())
    assert _same(cache.load_or_build("item_knn", {"k": 3}, again, "cpu"), _graph()) and again.calls == 0


def test_dense_entries_and_no_leftover_temporary_files(tmp_path):
    cache = GraphCache(tmp_path, "abc")
    dense = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    cache.load_or_build("user_interest", {"modality": "text"}, lambda: dense, "cpu")
    loaded = cache.load_or_build("user_interest", {"modality": "text"}, lambda: None, "cpu")
    assert torch.equal(loaded, dense)
    assert not [p for p in (tmp_path / "abc").iterdir() if p.suffix == ".tmp"]


def test_a_failed_write_leaves_no_entry(tmp_path, monkeypatch):
    cache = GraphCache(tmp_path, "abc")

    def broken_save(obj, file):
        with open(file, "wb") as handle:
            handle.write(b"partial")
        raise OSError("disk full")
    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        cache.load_or_build("item_knn", {"k": 3}, lambda: _graph(), "cpu")
    assert list((tmp_path / "abc").iterdir()) == []
