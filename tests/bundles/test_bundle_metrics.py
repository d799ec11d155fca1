"""Bundle completion metrics against a brute-force per-bundle computation."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recsys.evaluation.bundle_metrics import BUNDLE_KS, evaluate_completion, evaluate_completion_per_bundle


def _brute_force(scores, inputs, gts, ks):
    totals = {f"{m}@{k}": 0.0 for m in ("recall", "ndcg") for k in ks}
    rows = [b for b in range(len(gts)) if gts[b]]
    for b in rows:
        ranking = [i for i in sorted(range(scores.shape[1]), key=lambda i: (-scores[b, i], i)) if i not in inputs[b]]
        for k in ks:
            top = ranking[:k]
            hits = [i in gts[b] for i in top]
            totals[f"recall@{k}"] += sum(hits) / len(gts[b])
            dcg = sum(1 / math.log2(r + 2) for r, h in enumerate(hits) if h)
            idcg = sum(1 / math.log2(r + 2) for r in range(min(k, len(gts[b]))))
            totals[f"ndcg@{k}"] += dcg / idcg
    return {key: value / len(rows) for key, value in totals.items()}


def _csr(sets, n_items):
    rows = [b for b, s in enumerate(sets) for _ in s]
    cols = [i for s in sets for i in sorted(s)]
    return sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(sets), n_items))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_completion_metrics_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    n_bundles, n_items = 23, 100
    # coarse scores force ties, which must be broken by the lower item index
    scores = rng.integers(0, 6, size=(n_bundles, n_items)).astype(np.float32)
    inputs, gts = [], []
    for b in range(n_bundles):
        members = rng.choice(n_items, size=int(rng.integers(2, 9)), replace=False).tolist()
        cut = max(1, len(members) // 2)
        inputs.append(set(members[:cut]))
        gts.append(set(members[cut:]) if b % 7 else set())
    got = evaluate_completion(lambda rows: torch.from_numpy(scores)[rows].clone(), _csr(inputs, n_items),
                              _csr(gts, n_items), batch_size=5)
    want = _brute_force(scores, inputs, gts, BUNDLE_KS)
    assert got.keys() == want.keys()
    for key in want:
        assert got[key] == pytest.approx(want[key], abs=1e-9), key


def test_input_items_are_never_ranked():
    n_items = 30
    scores = torch.arange(n_items, 0, -1, dtype=torch.float32).expand(1, -1)
    inputs, gts = [{0, 1, 2}], [{3}]
    got = evaluate_completion(lambda rows: scores[rows].clone(), _csr(inputs, n_items), _csr(gts, n_items), ks=[1])
    assert got["recall@1"] == 1.0 and got["ndcg@1"] == 1.0


def test_overlapping_input_and_ground_truth_is_rejected():
    with pytest.raises(ValueError, match="both in its input and in its ground truth"):
        evaluate_completion(lambda rows: torch.zeros(len(rows), 5), _csr([{1, 2}], 5), _csr([{2}], 5))


def test_per_bundle_metrics_cover_the_bundles_with_ground_truth_and_average_to_the_split():
    inputs, gts, n_items = [{0}, {1}, {2}, {3, 4}], [{5}, set(), {1, 6}, {7}], 10
    scores = torch.arange(n_items, 0, -1, dtype=torch.float32).expand(4, -1)
    args = (lambda rows: scores[rows].clone(), _csr(inputs, n_items), _csr(gts, n_items))
    per_bundle = evaluate_completion_per_bundle(*args, ks=[5])
    assert per_bundle.users.tolist() == [0, 2, 3]
    # bundle 0 ranks 1,2,3,4,5: item 5 at rank 5; bundle 2 ranks 0,1,3,4,5: item 1 only; bundle 3: 0,1,2,5,6
    assert per_bundle.values["recall@5"].tolist() == [1.0, 0.5, 0.0]
    assert per_bundle.means() == evaluate_completion(*args, ks=[5])
