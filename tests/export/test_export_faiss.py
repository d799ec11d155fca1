"""Export and recommend with the FAISS index (--index faiss) against the exact export."""
from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import pytest
import torch

from recsys.cli.export import add_parsers as add_export_parser
from recsys.export import export
from recsys.models.bpr import BPRMF
from recsys.serving import TrainedRun
from tests.export.test_export import N_ITEMS, N_USERS, _dataset, _read

pytest.importorskip("faiss")


def _recommender(index: str) -> TrainedRun:
    """Continuous random embeddings (no tied scores), the same for both indexes."""
    dataset = _dataset()
    model = BPRMF(dataset, {"embedding_size": 4, "reg_weight": 0.0}, None)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        model.user_embedding.copy_(torch.randn(N_USERS, 4, generator=gen))
        model.item_embedding.copy_(torch.randn(N_ITEMS, 4, generator=gen) * torch.rand(N_ITEMS, 1, generator=gen))
    return TrainedRun(model, dataset, index=index)


@pytest.mark.parametrize("exclude", ["train", "train+valid", "none"])
@pytest.mark.parametrize("k", [3, N_ITEMS + 4])
def test_faiss_export_equals_the_exact_export(tmp_path, k, exclude):
    exact = export(_recommender("exact"), k, exclude=exclude, out=tmp_path / "exact.parquet", progress=False)
    approx = export(_recommender("faiss"), k, exclude=exclude, out=tmp_path / "faiss.parquet", progress=False,
                    batch_size=7)
    assert approx["index"] == "faiss" and exact["index"] == "exact" and approx["rows"] == exact["rows"]
    a, b = _read(tmp_path / "exact.parquet", "parquet"), _read(tmp_path / "faiss.parquet", "parquet")
    assert a[["user", "rank", "item"]].equals(b[["user", "rank", "item"]])
    np.testing.assert_allclose(a["score"], b["score"], rtol=1e-5, atol=1e-6)


def test_recommend_with_faiss_equals_exact():
    users = [f"user-{100 + 7 * u}" for u in (0, 5, 36)]
    exact = _recommender("exact").recommend(users, k=4, exclude="train+valid")
    approx = _recommender("faiss").recommend(users, k=4, exclude="train+valid")
    pd.testing.assert_frame_equal(exact.drop(columns="score"), approx.drop(columns="score"))


def test_faiss_index_needs_inner_product_scores():
    class OwnRule(BPRMF):
        def scores(self, users, cache=None):
            return -super().scores(users, cache)

    with pytest.raises(ValueError, match="own rule"):
        TrainedRun(OwnRule(_dataset(), {"embedding_size": 2, "reg_weight": 0.0}, None), _dataset(), index="faiss")
    with pytest.raises(ValueError, match="index must be one of"):
        _recommender("annoy")


def test_cli_takes_the_index():
    parser = argparse.ArgumentParser()
    add_export_parser(parser.add_subparsers())
    assert parser.parse_args(["export", "run", "--index", "faiss"]).index == "faiss"
    assert parser.parse_args(["export", "run"]).index == "exact"
    with pytest.raises(SystemExit):
        parser.parse_args(["export", "run", "--index", "hnsw"])


def test_exact_scores_are_taken_in_bounded_blocks(monkeypatch):
    """At a million items a batch of 4,096 users would be 16 GB of scores: the exact path scores
    at most SCORE_BLOCK_ELEMENTS at a time, with the same rows."""
    from recsys import serving

    users = [f"user-{100 + 7 * u}" for u in range(N_USERS)]
    whole = _recommender("exact").recommend(users, k=5)
    calls = []
    recommender = _recommender("exact")
    scores = recommender._scores
    monkeypatch.setattr(recommender, "_scores", lambda batch: calls.append(len(batch)) or scores(batch))
    monkeypatch.setattr(serving, "SCORE_BLOCK_ELEMENTS", 2 * N_ITEMS)
    pd.testing.assert_frame_equal(recommender.recommend(users, k=5), whole)
    assert max(calls) == 2 and sum(calls) == N_USERS
