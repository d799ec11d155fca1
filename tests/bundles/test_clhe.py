"""CLHE: learning on planted bundles, loss terms, augmentations, CF pre-training cache."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from recsys.compose import build, resolve
from recsys.data.clhe_format import write_clhe
from recsys.graphs import GraphStore
from recsys.models.bundle_baselines import PopularityCompletion
from recsys.runs import train
from recsys.training.bundle_task import BundleTask
from recsys.training.pretraining import pretrained_item_embeddings

SMALL_CF = {"embedding_size": 16, "n_layers": 1, "epochs": 5, "batch_size": 512}


def _config(tmp_path, dataset=None, **model):
    return resolve({
        "dataset": dataset or {},
        "run_name": "clhe", "output_dir": str(tmp_path), "cache_dir": str(tmp_path / "cache"), "device": "cpu",
        "model": {"name": "clhe", "embedding_size": 32, "cf_pretrain": SMALL_CF, **model},
        "train": {"lr": 5e-3, "batch_size": 64, "epochs": 25, "patience": 6, "progress": False, "monitor": "recall@10",
                  "weight_decay": 1e-5},
        "eval": {"ks": [5, 10], "metrics": ["recall", "ndcg"], "batch_size": 256},
    })


@pytest.fixture(scope="module")
def trained(tmp_path_factory, bundles):
    """A run trained end to end from a config whose dataset is the planted bundles in the CLHE layout."""
    folder = tmp_path_factory.mktemp("clhe_run")
    write_clhe(bundles, folder / "data")
    return train(_config(folder, {"format": "clhe", "path": str(folder / "data")})), folder


def test_clhe_learns_and_beats_popularity(trained, bundles):
    results, _ = trained
    task = BundleTask(bundles, {"batch_size": 64}, {"ks": [5, 10], "metrics": ["recall", "ndcg"], "batch_size": 256},
                      0, torch.device("cpu"))
    popularity = task.evaluate(PopularityCompletion(bundles), "test")
    assert results["test"]["recall@10"] > 1.5 * popularity["recall@10"]
    assert results["test"]["ndcg@10"] > 1.5 * popularity["ndcg@10"]
    assert results["best_epoch"] > 1


def test_loss_terms_and_gradients(tmp_path, bundles):
    run = build(_config(tmp_path), torch.device("cpu"), bundles)
    model, task = run.model, run.task
    (items,) = next(iter(task.batches(1)))
    losses = model.loss(items)
    assert set(losses) == {"loss", "recon", "item_cl", "bundle_cl"}
    assert torch.allclose(losses["loss"], losses["recon"] + losses["item_cl"] + losses["bundle_cl"])
    assert all(losses[k].item() > 0 for k in losses)
    losses["loss"].backward()
    for name, param in model.named_parameters():
        if not name.startswith("projector"):
            assert param.grad is not None and torch.isfinite(param.grad).all(), name
    ablated = build(_config(tmp_path / "b", item_cl_weight=0.0, bundle_cl_weight=0.0), torch.device("cpu"),
                    bundles).model
    parts = ablated.loss(items)
    assert float(parts["item_cl"]) == float(parts["bundle_cl"]) == 0.0
    assert torch.allclose(parts["loss"], parts["recon"])


@pytest.mark.parametrize("augment", ["feature_dropout", "feature_noise"])
def test_projector_augmentations_train_the_projector(tmp_path, bundles, augment):
    run = build(_config(tmp_path, item_augment=augment), torch.device("cpu"), bundles)
    model, task = run.model, run.task
    (items,) = next(iter(task.batches(1)))
    model.loss(items)["item_cl"].backward()
    assert model.projector.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("augment", ["item_dropout", "item_replace"])
def test_bundle_view_keeps_a_share_of_each_bundle(tmp_path, bundles, augment):
    model = build(_config(tmp_path, bundle_augment=augment, bundle_ratio=0.5), torch.device("cpu"), bundles).model
    pad = 50
    rows = torch.tensor([[3, 4, 5, 6, pad, pad], [7, 8, pad, pad, pad, pad], [9, pad, pad, pad, pad, pad],
                         [10, 11, 12, 13, 14, 15]])
    for _ in range(20):
        view = model.bundle_view(rows, pad)
        for original, augmented in zip(rows.tolist(), view.tolist()):
            real = [r for r in original if r != pad]
            same = sum(v == o for v, o in zip(augmented, original) if o != pad)
            expected = min(max(int(np.ceil(len(real) * 0.5)), 1), max(len(real) - 1, 1))
            n_real = sum(v != pad for v in augmented)
            if augment == "item_dropout":
                assert same == n_real == expected
                assert all(v in (o, pad) for v, o in zip(augmented, original))
            else:  # replacements may coincide with the original item
                assert same >= expected and n_real == len(real)


def test_completion_ignores_input_order_and_padding(trained, bundles):
    _, folder = trained
    run = build(_config(folder), torch.device("cpu"), bundles)
    model = run.model
    model.eval()
    cache = model.completion_cache()
    pad = bundles.n_items
    a = torch.tensor([[5, 17, 42, pad]])
    b = torch.tensor([[42, pad, 5, 17, pad, pad]])
    assert torch.allclose(model.complete(a, cache), model.complete(b, cache), atol=1e-5)


def test_items_without_feedback_use_the_content_token(tmp_path, bundles):
    model = build(_config(tmp_path), torch.device("cpu"), bundles).model
    warm = model.encoder.cf_warm
    assert (~warm).any() and warm.any()
    tokens = model.encoder.tokens()
    assert torch.equal(tokens[~warm, 2], tokens[~warm, 0])
    assert not torch.allclose(tokens[warm, 2], tokens[warm, 0])
    assert torch.equal(tokens[:, 1], model.encoder.item_id), "learned ID tokens for every item by default"


def test_cold_id_token_replaces_ids_of_items_in_no_train_bundle(tmp_path, bundles):
    model = build(_config(tmp_path, cold_id_token="content"), torch.device("cpu"), bundles).model
    in_train = torch.from_numpy(np.bincount(bundles.bundle_pairs["train"][1], minlength=bundles.n_items) > 0)
    assert (~in_train).any()
    tokens = model.encoder.tokens()
    assert torch.equal(tokens[~in_train, 1], tokens[~in_train, 0])
    assert torch.equal(tokens[in_train, 1], model.encoder.item_id[in_train])
    subset = torch.tensor([0, 5, 7])
    assert torch.allclose(model.encoder.tokens(subset), tokens[subset], atol=1e-6)


def test_cf_pretraining_is_cached_and_keeps_the_random_state(tmp_path, bundles):
    graphs = GraphStore(bundles, "cpu")
    torch.manual_seed(5)
    first, warm = pretrained_item_embeddings(bundles, graphs, SMALL_CF, tmp_path)
    after_miss = torch.rand(3)
    torch.manual_seed(5)
    second, _ = pretrained_item_embeddings(bundles, graphs, SMALL_CF, tmp_path)
    after_hit = torch.rand(3)
    assert len(list((tmp_path / "clhe_cf").glob("*.npy"))) == 1
    assert np.array_equal(first, second) and torch.equal(after_miss, after_hit)
    assert first.shape == (bundles.n_items, 16)
    assert np.array_equal(warm, np.asarray(bundles.csr("train").sum(0)).ravel() > 0)


def test_reference_variant_freezes_query_key_and_drops_value_projections(tmp_path, bundles):
    run = build(_config(tmp_path, variant="reference", cold_id_token="content"), torch.device("cpu"), bundles)
    model, task = run.model, run.task
    names = dict(model.named_parameters())
    assert not any(name.startswith("bundle_encoder") for name in names), "the bundle encoder has nothing to train"
    assert not any(".v." in name for name in names), "no value projection anywhere"
    assert {"encoder.fusion.q.weight", "encoder.fusion.k.weight"} <= set(names)
    frozen = {k: v.clone() for k, v in model.bundle_encoder.state_dict().items()}
    assert set(frozen) == {"layers.0.q_weight", "layers.0.k_weight"}
    bound = 1 / 32 ** 0.5  # torch's default nn.Linear initialisation: U(-1/sqrt(d), 1/sqrt(d))
    assert all(float(w.abs().max()) <= bound for w in frozen.values())
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    (items,) = next(iter(task.batches(1)))
    model.loss(items)["loss"].backward()
    optimizer.step()
    assert all(torch.equal(v, model.bundle_encoder.state_dict()[k]) for k, v in frozen.items())
    assert model.encoder.id_warm.all(), "learned ID tokens for every item, cold ones included"


def test_reference_views_keep_the_code_share_and_fill_with_item_zero(tmp_path, bundles):
    pad, first = 50, 60
    rows = torch.tensor([[3, 4, 5, 6, 7, 8], [7, 8, pad, pad, pad, pad], [9, 10, 11, pad, pad, pad]])
    sizes = [6, 2, 3]
    kept_expected = [min(round(n * 0.5 + 0.5), n - 1) for n in sizes]  # Python's round is half-to-even
    assert kept_expected == [4, 1, 2]
    dropout = build(_config(tmp_path, variant="reference", bundle_ratio=0.5), torch.device("cpu"), bundles).model
    replace = build(_config(tmp_path / "r", variant="reference", bundle_ratio=0.5, bundle_augment="item_replace"),
                    torch.device("cpu"), bundles).model
    for _ in range(20):
        for model in (dropout, replace):
            view = model.bundle_view(rows, pad, first_items=first)
            for original, augmented, n, keep in zip(rows.tolist(), view.tolist(), sizes, kept_expected):
                assert augmented[n:] == original[n:], "padding stays padding (the full bundle's mask)"
                assert sum(a == o for a, o in zip(augmented[:n], original[:n])) == keep
                fillers = [a for a, o in zip(augmented[:n], original[:n]) if a != o]
                if model is dropout:
                    assert fillers == [first] * (n - keep)
                else:
                    assert len(set(fillers)) == n - keep and all(first <= f < first + n for f in fillers)


def test_reference_augmented_view_attends_to_item_zero_under_the_full_mask(tmp_path, bundles):
    model = build(_config(tmp_path, variant="reference", bundle_ratio=0.5), torch.device("cpu"), bundles).model
    pad = bundles.n_items
    items = torch.tensor([[3, 9, 14, 20, 27, 33], [40, 41, pad, pad, pad, pad]])
    present = torch.unique(items[items != pad])
    table = torch.cat([model.encoder(present), torch.zeros(1, model.encoder.item_id.shape[1])])
    local = torch.searchsorted(present, items)
    torch.manual_seed(3)
    got = model._augmented_bundles(items, table, local, len(present))
    torch.manual_seed(3)
    view = model.bundle_view(local, len(present), first_items=len(present) + 1)
    zero = model.encoder(torch.tensor([0]))
    for row in range(2):
        real = [int(i) for i in local[row] if i != len(present)]
        kept = [int(v) for v in view[row][:len(real)] if v < len(present)]
        x = torch.cat([table[kept], zero.expand(len(real) - len(kept), -1)])[None]
        want = model.bundle_encoder(x, torch.zeros(1, len(real), dtype=torch.bool))
        assert torch.allclose(got[row], want[0], atol=1e-5)


def test_variant_is_checked(tmp_path, bundles):
    from recsys.errors import ConfigError

    with pytest.raises(ConfigError, match="model.variant = 'official' is unknown; use one of paper, reference"):
        build(_config(tmp_path, variant="official"), torch.device("cpu"), bundles)
