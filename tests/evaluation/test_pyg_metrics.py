"""Our full-ranking metrics against an independent implementation: PyTorch Geometric's
link-prediction metrics (LinkPredRecall, LinkPredNDCG, ...) on random scores, exclusions and
held-out sets. PyG's MAP normalises by min(|T_u|, K) as MMRec does, and its means skip users
without held-out items, as ours do."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recsys.evaluation import evaluate_ranking

link_pred = pytest.importorskip("torch_geometric.metrics")

PYG = {"recall": "LinkPredRecall", "ndcg": "LinkPredNDCG", "precision": "LinkPredPrecision",
       "map": "LinkPredMAP", "hit": "LinkPredHitRatio"}


def _case(seed: int, n_users: int = 60, n_items: int = 40):
    """Continuous scores (no ties); per user 0..5 excluded items and 0, 1, 3 or 25 held-out ones."""
    rng = np.random.default_rng(seed)
    scores = torch.from_numpy(rng.standard_normal((n_users, n_items)).astype(np.float32))
    exclude, target = np.zeros((n_users, n_items), bool), np.zeros((n_users, n_items), bool)
    for user in range(n_users):
        order = rng.permutation(n_items)
        n_exclude, n_target = int(rng.integers(0, 6)), [0, 1, 3, 25][user % 4]
        exclude[user, order[:n_exclude]] = True
        target[user, order[n_exclude:n_exclude + n_target]] = True
    return scores, exclude, target


@pytest.mark.parametrize("seed", [0, 1])
def test_metrics_equal_pyg_link_prediction_metrics(seed):
    scores, exclude, target = _case(seed)
    ks = [1, 5, 10, 20]
    ours = evaluate_ranking(lambda users: scores[users].clone(), sp.csr_matrix(exclude.astype(np.float32)),
                            sp.csr_matrix(target.astype(np.float32)), ks=ks, metrics=list(PYG), batch_size=16)
    masked = scores.masked_fill(torch.from_numpy(exclude), -torch.inf)
    top = masked.topk(max(ks), dim=1).indices
    labels = torch.from_numpy(np.stack(np.nonzero(target)))
    for name, cls in PYG.items():
        for k in ks:
            metric = getattr(link_pred, cls)(k)
            metric.update(top, labels)
            assert ours[f"{name}@{k}"] == pytest.approx(float(metric.compute()), rel=1e-5, abs=1e-7), f"{name}@{k}"
