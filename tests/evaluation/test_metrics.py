import math

import pytest
import torch

from recsys.evaluation.metrics import per_user_metrics, validate


def test_hand_computed_single_user():
    hits = torch.tensor([[True, False, True, False]])
    values = per_user_metrics(hits, torch.tensor([2]), ks=[1, 3], metrics=["recall", "precision", "hit", "ndcg", "map"])
    assert values["recall@1"].item() == pytest.approx(0.5)
    assert values["recall@3"].item() == pytest.approx(1.0)
    assert values["precision@3"].item() == pytest.approx(2 / 3)
    assert values["hit@1"].item() == 1.0
    assert values["ndcg@3"].item() == pytest.approx((1 + 0.5) / (1 + 1 / math.log2(3)))
    assert values["map@3"].item() == pytest.approx((1 + 2 / 3) / 2)
    assert values["map@1"].item() == pytest.approx(1.0)  # normalised by min(|T_u|, K) = 1


def test_normalisers_use_min_of_targets_and_k():
    # 5 targets, K=2, both top items hit: perfect NDCG and MAP, recall 2/5
    values = per_user_metrics(torch.tensor([[True, True]]), torch.tensor([5]), ks=[2], metrics=["ndcg", "map", "recall"])
    assert values["ndcg@2"].item() == pytest.approx(1.0)
    assert values["map@2"].item() == pytest.approx(1.0)
    assert values["recall@2"].item() == pytest.approx(0.4)


def test_no_hits_is_zero_and_keys_are_metric_major():
    values = per_user_metrics(torch.zeros(3, 20, dtype=torch.bool), torch.tensor([1, 2, 30]), ks=[20, 10],
                              metrics=["ndcg", "recall"])
    assert list(values) == ["ndcg@10", "ndcg@20", "recall@10", "recall@20"]
    assert all(v.shape == (3,) and v.abs().sum() == 0 for v in values.values())


def test_unknown_metric_names_the_closest():
    with pytest.raises(ValueError, match="did you mean 'recall'"):
        validate([10], ["recal"])
    with pytest.raises(ValueError, match="positive integers"):
        validate([0, 10], ["recall"])


def test_users_without_targets_are_rejected():
    with pytest.raises(ValueError, match="at least one held-out item"):
        per_user_metrics(torch.zeros(2, 5, dtype=torch.bool), torch.tensor([1, 0]), ks=[5], metrics=["recall"])
