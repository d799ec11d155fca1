"""Full ranking and top-K on every device: the same scores give the same items (ties by the
lower index) and the same metrics as the brute-force reference and as the CPU.

Ranking selects and compares scores, it never adds them, so the chosen items are identical
on every device; metrics are float64 per-user values whose mean is a device reduction, equal
to the reference within 1e-12.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from recsys.evaluation import evaluate_ranking, stable_topk, topk_excluding
from recsys.evaluation import ranking
from recsys.evaluation.ranking import csr_rows_to_coo
from tests.evaluation import reference
from tests.evaluation.test_ranking import METRICS, _csr, _random_case


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("k", [1, 4, 25, 40])
def test_stable_topk_matches_the_reference_order(device, seed, k):
    scores, excluded, _ = _random_case(seed, n_users=30, n_items=25)
    got_values, got_items = stable_topk(torch.from_numpy(scores).to(device), k)
    assert got_items.device.type == device.type
    expected = [reference.ranked_items(row, set(), k) for row in scores]
    assert got_items.cpu().tolist() == expected
    np.testing.assert_array_equal(got_values.cpu().numpy(), np.take_along_axis(scores, np.array(expected), 1))


def test_ties_are_resolved_the_same_in_small_chunks(device, monkeypatch):
    scores, excluded, _ = _random_case(9, n_users=40, n_items=30, levels=2)
    whole = stable_topk(torch.from_numpy(scores).to(device), 6)[1].cpu()
    monkeypatch.setattr(ranking, "_TIE_CHUNK_ENTRIES", 2 * scores.shape[1])
    assert torch.equal(stable_topk(torch.from_numpy(scores).to(device), 6)[1].cpu(), whole)


def test_topk_excluding_never_returns_an_excluded_item_unless_nothing_else_is_left(device):
    scores, excluded, _ = _random_case(4, n_users=30, n_items=25)
    exclude_csr = _csr(excluded, *scores.shape)
    rows = np.arange(scores.shape[0])
    values, items = topk_excluding(torch.from_numpy(scores).to(device), csr_rows_to_coo(exclude_csr, rows, device), 10)
    expected = [reference.ranked_items(row, excluded[u], 10) for u, row in enumerate(scores)]
    assert items.cpu().tolist() == expected
    assert bool((values > float("-inf")).all())


@pytest.mark.parametrize("seed", range(3))
def test_metrics_match_the_reference_and_the_cpu(device, seed):
    scores, excluded, targets = _random_case(seed, n_users=50, n_items=40)
    n_users, n_items = scores.shape
    table = torch.from_numpy(scores)

    def evaluate(on):
        return evaluate_ranking(lambda users: table.to(on)[users].clone(), _csr(excluded, n_users, n_items),
                                _csr(targets, n_users, n_items), ks=[1, 5, 20], metrics=METRICS, batch_size=16,
                                device=on)

    got = evaluate(device)
    want = reference.evaluate(scores, excluded, targets, [1, 5, 20], METRICS)
    assert got.keys() == want.keys()
    assert got == pytest.approx(want, abs=1e-12)
    assert got == pytest.approx(evaluate(torch.device("cpu")), abs=1e-12)
