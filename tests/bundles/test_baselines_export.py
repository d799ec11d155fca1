"""Training-free baselines against direct formulas; completion export; text encoding."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from recsys.data.text_encoding import encode_text
from recsys.errors import DataError
from recsys.export import complete_bundles, export_completions, read_partial_bundles
from recsys.models.bundle_baselines import FeatureKNNCompletion, PopularityCompletion

from .test_clhe import trained  # noqa: F401  (shared trained run fixture)


def test_popularity_counts_train_bundles_only(bundles):
    scores = PopularityCompletion(bundles).complete(torch.tensor([[0, bundles.n_items]]))
    counts = np.zeros(bundles.n_items)
    for item in bundles.bundle_pairs["train"][1]:
        counts[item] += 1
    assert np.array_equal(scores[0].numpy(), counts)


@pytest.mark.parametrize("aggregation", ["sum", "max"])
def test_feature_knn_matches_cosine_formula(bundles, aggregation):
    model = FeatureKNNCompletion(bundles, "text", aggregation)
    inputs = torch.tensor([[3, 8, 40], [7, bundles.n_items, bundles.n_items]])
    scores = model.complete(inputs).numpy()
    feat = bundles.features["text"] / np.linalg.norm(bundles.features["text"], axis=1, keepdims=True)
    for row, given in enumerate([[3, 8, 40], [7]]):
        sims = feat @ feat[given].T
        expected = sims.sum(1) if aggregation == "sum" else sims.max(1)
        assert np.allclose(scores[row], expected, atol=1e-5)


def test_export_gives_raw_ids_titles_and_excludes_inputs(trained, bundles, tmp_path):
    results, folder = trained
    partial = tmp_path / "partial.txt"
    partial.write_text("# two partial bundles\n3, 8\n\n40\n")
    assert read_partial_bundles(partial) == [(2, ["3", "8"]), (4, ["40"])]
    out = tmp_path / "completions.json"
    exported = export_completions(results["run_dir"], partial, out, k=5, device="cpu")
    assert json.loads(out.read_text()) == exported
    first = exported[0]
    assert first["line"] == 2 and [x["item_id"] for x in first["input"]] == ["3", "8"]
    assert first["input"][0]["title"] == bundles.item_titles[3]
    ranked = first["completions"]
    assert [c["rank"] for c in ranked] == [1, 2, 3, 4, 5]
    assert not {c["item_id"] for c in ranked} & {"3", "8"}
    assert all(a["score"] >= b["score"] for a, b in zip(ranked, ranked[1:]))
    assert ranked[0]["title"] == bundles.item_titles[int(ranked[0]["item_id"])]
    from recsys.runs import load_run

    run = load_run(results["run_dir"], device="cpu")
    scores = run.model.complete(torch.tensor([[3, 8]]), run.model.completion_cache())[0]
    scores[[3, 8]] = -torch.inf
    assert [int(c["item_id"]) for c in ranked] == scores.topk(5).indices.tolist()
    with pytest.raises(DataError, match="line 1: item id 'nope'"):
        complete_bundles(run.model, bundles, [(1, ["nope"])])


class _FakeEncoder:
    def encode(self, texts, batch_size):
        self.texts = list(texts)
        return np.array([[len(t), batch_size] for t in texts], dtype=np.float64)


def test_encode_text_joins_tables_and_writes_aligned_rows(tmp_path):
    pd.DataFrame({"item ID": [30, 10, 20], "titles": ["red shoe", "blue hat", "green coat"]}).to_csv(
        tmp_path / "titles.csv", index=False)
    pd.DataFrame({"item ID": [10, 30], "categories": ["[[Clothing, Shoes & Jewelry,Hats]]",
                                                      "[[Clothing, Shoes & Jewelry,Shoes],[Sale]]"]}).to_csv(
        tmp_path / "cats.csv", index=False)
    encoder = _FakeEncoder()
    feat_path, ids_path = encode_text([tmp_path / "titles.csv", tmp_path / "cats.csv"], ["titles", "categories"],
                                      tmp_path / "out", category_columns=["categories"], batch_size=7, encoder=encoder)
    assert encoder.texts == ["red shoe Clothing, Shoes & Jewelry, Shoes, Sale", "blue hat Clothing, Shoes & Jewelry, Hats"]
    assert np.load(ids_path).tolist() == [30, 10]
    feat = np.load(feat_path)
    assert feat.dtype == np.float32 and feat.tolist() == [[len(t), 7] for t in encoder.texts]
    with pytest.raises(DataError, match="text column"):
        encode_text([tmp_path / "titles.csv"], ["missing"], tmp_path / "out", encoder=encoder)
