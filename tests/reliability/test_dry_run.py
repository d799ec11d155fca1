"""recsys train --dry-run: validation, parameter count, graph sizes and memory without training."""
from __future__ import annotations

import pytest
import torch

from recsys.cli import main
from recsys.compose import resolve
from recsys.data import DataError
from recsys.dry_run import GraphProbe, dry_run, inspect_run
from recsys.errors import ConfigError
from recsys.graphs import GraphStore
from recsys.models import Recommender, registry


def _config(tmp_path, model="lightgcn", **sections):
    raw = {"output_dir": str(tmp_path / "runs"), "cache_dir": str(tmp_path / "cache"), "model": {"name": model},
           "eval": {"ks": [10, 20], "metrics": ["recall", "ndcg"]}}
    for key, value in sections.items():
        raw[key] = {**raw.get(key, {}), **value}
    return resolve(raw)


class _ProbeModel(Recommender):
    """Asks for every expensive graph; its parameters do not depend on them."""

    name = "dry_run_probe_model"

    @classmethod
    def default_config(cls):
        return {"embedding_size": 8, "k": 5}

    def __init__(self, dataset, config, graphs):
        super().__init__(dataset, config, graphs)
        k = int(self.config["k"])
        weights = {m: 1.0 / len(dataset.features) for m in dataset.features}
        self.graphs = [graphs.user_item(), graphs.item_knn(weights, k), graphs.user_cooccurrence(k),
                       graphs.item_homography(modality_weights=weights, k=k, co_weight=0.3),
                       graphs.user_interest("text")]
        self.emb = torch.nn.Parameter(torch.zeros(self.n_users + self.n_items, int(self.config["embedding_size"])))
        self.frozen = torch.nn.Parameter(torch.zeros(3, 3), requires_grad=False)


@pytest.fixture
def probe_model(monkeypatch):
    """Registers the test model for one test only (the registry is global)."""
    monkeypatch.setitem(registry._MODELS, _ProbeModel.name, _ProbeModel)
    return _ProbeModel


class _NoHeavyGraphs:
    """A GraphStore whose expensive builders must never be called."""

    def __init__(self, store):
        self.store = store

    def user_item(self):
        return self.store.user_item()

    def __getattr__(self, name):
        raise AssertionError(f"dry run built the graph '{name}'")


def test_parameter_count_and_exact_graph_match_the_real_build(planted, tmp_path):
    from recsys.compose import build

    config = _config(tmp_path, "lightgcn")
    report = inspect_run(config, planted)
    model = build(config, torch.device("cpu"), planted).model
    assert report.trainable == sum(p.numel() for p in model.parameters()) == (planted.n_users + planted.n_items) * 64
    (graph,) = report.graphs
    real = GraphStore(planted, "cpu").user_item()
    assert graph.exact and graph.nnz == real._nnz() == 2 * planted.csr("train").nnz
    assert graph.shape == (planted.n_users + planted.n_items,) * 2
    assert report.batches_per_epoch == -(-planted.train.shape[1] // 2048)
    assert report.memory["parameters, gradients, Adam"] == 16 * report.trainable
    assert report.memory["evaluation block"] == 2 * planted.n_users * planted.n_items * 4


def test_expensive_graphs_are_bounded_not_built(planted, tmp_path, monkeypatch, probe_model):
    import recsys.dry_run as module

    real_init = GraphProbe.__init__
    monkeypatch.setattr(GraphProbe, "__init__",
                        lambda self, dataset, store: real_init(self, dataset, _NoHeavyGraphs(store)))
    report = module.inspect_run(_config(tmp_path, "dry_run_probe_model"), planted)
    by_call = {g.call.split("(")[0]: g for g in report.graphs}
    n_users, n_items, k = planted.n_users, planted.n_items, 5
    assert by_call["item_knn"].nnz == n_items * k and not by_call["item_knn"].exact
    assert by_call["user_cooccurrence"].nnz == n_users * k
    assert by_call["item_homography"].nnz == 2 * n_items * k
    assert by_call["user_interest"].dense and by_call["user_interest"].shape == (n_users, 4)
    assert report.trainable == (n_users + n_items) * 8 and report.frozen == 9


@pytest.mark.parametrize("method,args", [
    ("item_knn", ({"text": 1.0}, 5)),
    ("item_cooccurrence", (5,)),
    ("user_cooccurrence", (5,)),
    ("user_interest_knn", ({"text": 1.0}, 5)),
    ("item_homography", ({"text": 1.0}, 5, 0.4)),
    ("user_homography", ({"text": 1.0}, 4, 0.6)),
])
def test_bounds_hold_for_the_real_graphs(planted, method, args):
    store = GraphStore(planted, "cpu")
    if not hasattr(store, method):
        pytest.skip(f"GraphStore has no {method} yet")
    real = getattr(store, method)(*args)
    probe = GraphProbe(planted, store)
    getattr(probe, method)(*args)
    (info,) = probe.graphs
    assert tuple(real.shape) == info.shape
    assert real.to_sparse_csr()._nnz() <= info.nnz


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without CUDA")
def test_unavailable_device_is_a_config_error(planted, tmp_path):
    with pytest.raises(ConfigError, match="CUDA is not available"):
        dry_run(resolve({"device": "cuda", "model": {"name": "bpr"}}), planted)


def test_bad_data_path_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        dry_run(_config(tmp_path, "bpr", dataset={"format": "rearm", "path": str(tmp_path / "nowhere")}))


def test_cli_dry_run_reports_and_trains_nothing(tmp_path, capsys):
    code = main(["train", "--dry-run", "--set", f"output_dir={tmp_path / 'runs'}", "model.name=lightgcn",
                 "dataset.synthetic.n_users=300", "dataset.synthetic.n_items=100"])
    out = capsys.readouterr().out
    assert code == 0
    assert "nothing was trained" in out and f"params    {(300 + 100) * 64:,} trainable" in out
    assert "user_item()" in out and "memory    ~" in out
    assert not (tmp_path / "runs").exists()
    assert main(["train", "--dry-run", "--set", "train.monitor=recall@7"]) == 2
    assert "train.monitor = 'recall@7'" in capsys.readouterr().err


@pytest.mark.integration
def test_dry_run_on_real_data_is_fast_and_exact_for_the_bipartite_graph(shared_data, tmp_path):
    import time

    from recsys.data.loading import load_dataset

    section = {"format": "rearm", "path": str(shared_data / "amazon" / "sports"), "name": "sports"}
    dataset = load_dataset(section)
    start = time.perf_counter()
    report = inspect_run(_config(tmp_path, "lightgcn", dataset=section), dataset)
    assert time.perf_counter() - start < 30
    assert report.graphs[0].nnz == 2 * dataset.csr("train").nnz
    assert report.trainable == (35598 + 18357) * 64


def test_every_registered_model_dry_runs_on_synthetic_data(tmp_path):
    from recsys.models import available_models, get_model_class

    for name in available_models():
        if get_model_class(name).task != "interaction":
            continue
        config = _config(tmp_path, name, dataset={"synthetic": {"n_users": 120, "n_items": 60}})
        report = inspect_run(config)
        assert report.trainable > 0, name
        assert any(g.call == "user_item()" for g in report.graphs) or name in ("bpr", "vbpr"), name


def test_model_that_rejects_its_config_is_a_config_error(planted, monkeypatch):
    class _Picky(Recommender):
        name = "dry_run_picky_model"

        @classmethod
        def default_config(cls):
            return {"rank": 3}

        def __init__(self, dataset, config, graphs):
            super().__init__(dataset, config, graphs)
            if self.config["rank"] < 1:
                raise ValueError("model.rank must be >= 1")

    monkeypatch.setitem(registry._MODELS, _Picky.name, _Picky)
    with pytest.raises(ConfigError, match="model 'dry_run_picky_model' rejects its configuration: model.rank"):
        dry_run(resolve({"model": {"name": "dry_run_picky_model", "rank": 0}}), planted)
