"""recsys train --dry-run: validation, parameter count, graph sizes and memory without training."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from recsys.cli import main
from recsys.compose import resolve
from recsys.data import DataError
from recsys.dry_run import dry_run, inspect_run
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


def test_parameter_count_and_exact_graph_match_the_real_build(planted, tmp_path):
    from recsys.compose import build

    config = _config(tmp_path, "lightgcn")
    report = inspect_run(config, planted)
    model = build(config, torch.device("cpu"), planted).model
    assert report.trainable == sum(p.numel() for p in model.parameters()) == (planted.n_users + planted.n_items) * 64
    (graph,) = report.graphs
    real = GraphStore(planted, "cpu").user_item()
    assert graph.built and graph.size.exact and graph.size.nnz == real._nnz() == 2 * planted.csr("train").nnz
    assert graph.size.shape == (planted.n_users + planted.n_items,) * 2
    assert report.batches_per_epoch == -(-planted.train.shape[1] // 2048)
    assert report.memory["parameters"] == report.memory["gradients"] == 4 * report.trainable
    assert report.memory["optimiser state"] == 8 * report.trainable
    assert report.memory["graphs"] == graph.bytes == 8 * graph.size.nnz + 4 * (graph.size.shape[0] + 1)
    assert report.memory["evaluation scores"] == planted.n_users * planted.n_items * 4   # one block of all users
    assert report.memory_total == max(report.memory_phases.values())


def test_expensive_graphs_are_sized_not_built(planted, tmp_path, monkeypatch, probe_model):
    import recsys.graphs.store as store

    for name in ("knn_graph", "user_cooccurrence_graph", "item_cooccurrence_graph", "user_interest"):
        monkeypatch.setattr(store, name, lambda *a, _name=name, **k: pytest.fail(f"dry run built {_name}"))
    report = inspect_run(_config(tmp_path, "dry_run_probe_model"), planted)
    by_call = {g.call.split("(")[0]: g for g in report.graphs}
    n_users, n_items, k = planted.n_users, planted.n_items, 5
    assert by_call["item_knn"].size.nnz == n_items * k and not by_call["item_knn"].built
    assert by_call["user_cooccurrence"].size.nnz == n_users * k
    assert by_call["item_homography"].size.nnz == 2 * n_items * k
    assert by_call["user_interest"].size.dense and by_call["user_interest"].size.shape == (n_users, 4)
    assert by_call["user_item"].built and by_call["user_item"].size.exact
    assert report.trainable == (n_users + n_items) * 8 and report.frozen == 9


def test_freedoms_pruned_graph_of_the_first_epoch_is_reported(planted, tmp_path):
    config = _config(tmp_path, "freedom")
    config["model"]["edge_dropout"] = 0.5
    report = inspect_run(config, planted)
    (pruned,) = [g for g in report.graphs if g.call.startswith("pruned_user_item")]
    assert pruned.built and pruned.size.nnz == 2 * (planted.train.shape[1] // 2)
    assert any(g.call.startswith("transpose") for g in report.graphs)


def test_clhe_dry_run_skips_the_pre_training_and_is_fast(tmp_path, monkeypatch):
    import sys
    import time

    from recsys.training import pretraining

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bundles.synthetic import planted_bundles

    monkeypatch.setattr(pretraining, "train_lightgcn_items", lambda *a, **k: pytest.fail("dry run pre-trained"))
    bundles = planted_bundles()
    config = _config(tmp_path, "clhe", dataset={"format": "bundle_csv"})
    inspect_run(config, bundles)                            # imports and first calls out of the timing
    start = time.perf_counter()
    report = inspect_run(config, bundles)
    assert time.perf_counter() - start < 0.5
    assert report.trainable > 0 and report.dataset_stats["bundles"] == bundles.n_bundles


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
    assert report.graphs[0].size.nnz == 2 * dataset.csr("train").nnz
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


MEMORY_DATA = {"n_users": 4000, "n_items": 2000, "informative_dim": 64, "noise_dim": 256}


def _memory_case(name: str):
    """A run of ``name`` big enough that its memory (tens to hundreds of MB) is well above the
    allocator's noise, small enough to measure in seconds."""
    from recsys.models import get_model_class

    if get_model_class(name).task == "bundle":
        import sys

        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from bundles.synthetic import planted_bundles

        return (resolve({"model": {"name": name}, "dataset": {"format": "bundle_csv"}, "train": {"batch_size": 2048}}),
                planted_bundles(n_items=4000, n_bundles=3000, n_users=500))
    return resolve({"model": {"name": name}, "dataset": {"synthetic": MEMORY_DATA}}), None


@pytest.mark.parametrize("name", sorted(registry._MODELS))
def test_memory_estimate_is_within_30_percent_of_the_measured_peak(name):
    from recsys.dry_run import measure_memory

    config, dataset = _memory_case(name)
    estimate = inspect_run(config, dataset)
    measured = measure_memory(config, dataset)
    assert 0.7 <= estimate.memory_total / measured["peak"] <= 1.3, (
        f"{name}: estimate {estimate.memory_phases}, measured {measured}")


def test_the_warm_up_miniature_is_a_small_dataset_of_the_same_kind(planted):
    import sys

    from recsys.dry_run import _miniature

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bundles.synthetic import planted_bundles

    small = _miniature(planted)
    assert small.n_users == 64 and small.n_items <= planted.n_items and small.valid.shape[1] > 0
    assert set(small.features) == set(planted.features) and small.features["text"].shape[0] == small.n_items
    for split in ("train", "valid", "test"):
        pairs = small.split(split)
        assert pairs[0].max() < small.n_users and pairs[1].max() < small.n_items
    bundles = _miniature(planted_bundles())
    assert bundles.n_bundles == 32 and bundles.heldout_bundles("valid").size > 0
    assert bundles.bundle_pairs["train"][1].max() < bundles.n_items
