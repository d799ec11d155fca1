"""Shared losses against direct (loop) computations of their formulas."""
import math

import numpy as np
import pytest
import torch

from recsys.losses import anchor_info_nce, bpr_loss, info_nce, l2_reg, orthogonality_loss


def _normalise(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _info_nce_direct(a, b, tau):
    """-mean_n log exp(a_n·b_n/τ) / Σ_m exp(a_n·b_m/τ), rows L2-normalised, one pair at a time."""
    a, b = _normalise(a), _normalise(b)
    total = 0.0
    for n in range(a.shape[0]):
        numerator = math.exp(a[n] @ b[n] / tau)
        denominator = sum(math.exp(a[n] @ b[m] / tau) for m in range(b.shape[0]))
        total -= math.log(numerator / denominator)
    return total / a.shape[0]


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    return rng.normal(size=(7, 5)), rng.normal(size=(7, 5))


@pytest.mark.parametrize("tau", [0.1, 0.5, 1.0])
def test_info_nce_matches_direct_formula(pair, tau):
    a, b = pair
    got = info_nce(torch.tensor(a), torch.tensor(b), tau).item()
    assert got == pytest.approx(_info_nce_direct(a, b, tau), rel=1e-9)


def test_symmetric_info_nce_averages_both_directions(pair):
    a, b = pair
    got = info_nce(torch.tensor(a), torch.tensor(b), 0.2, symmetric=True).item()
    expected = 0.5 * (_info_nce_direct(a, b, 0.2) + _info_nce_direct(b, a, 0.2))
    assert got == pytest.approx(expected, rel=1e-9)
    assert got != pytest.approx(_info_nce_direct(a, b, 0.2), rel=1e-3)


def test_info_nce_is_scale_invariant_and_small_for_aligned_views(pair):
    a, b = pair
    scaled = info_nce(torch.tensor(3.0 * a), torch.tensor(0.5 * b), 0.2)
    assert scaled.item() == pytest.approx(info_nce(torch.tensor(a), torch.tensor(b), 0.2).item(), rel=1e-9)
    aligned = info_nce(torch.tensor(a), torch.tensor(a), 0.05).item()
    assert aligned < 0.1 < _info_nce_direct(a, b, 0.05)


def test_anchor_info_nce_contrasts_each_positive_against_all_anchors(pair):
    anchor, positive = pair
    tau = 0.3
    an, po = _normalise(anchor), _normalise(positive)
    expected = 0.0
    for n in range(an.shape[0]):
        logits = np.array([po[n] @ an[m] / tau for m in range(an.shape[0])])
        expected -= logits[n] - math.log(np.exp(logits).sum())
    expected /= an.shape[0]
    got = anchor_info_nce(torch.tensor(anchor), torch.tensor(positive), tau).item()
    assert got == pytest.approx(expected, rel=1e-9)


def test_bpr_loss_matches_direct_formula():
    pos, neg = np.array([2.0, -1.0, 0.5]), np.array([1.0, 1.0, 0.5])
    expected = -np.mean([math.log(1 / (1 + math.exp(-(p - n)))) for p, n in zip(pos, neg)])
    assert bpr_loss(torch.tensor(pos), torch.tensor(neg)).item() == pytest.approx(expected, rel=1e-12)


def test_l2_reg_is_half_sum_of_squares_per_batch_row():
    a, b = torch.tensor([[1.0, 2.0], [3.0, 0.0]]), torch.tensor([[0.0, 1.0], [1.0, 1.0]])
    assert l2_reg(a, b).item() == pytest.approx((1 + 4 + 9 + 0 + 1 + 1 + 1) / (2 * 2))


def test_orthogonality_loss_matches_direct_formula():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(6, 3)), rng.normal(size=(6, 4))
    xc, yc = x - x.mean(0), y - y.mean(0)
    xc = xc / (np.linalg.norm(xc, axis=1, keepdims=True) + 1e-6)
    yc = yc / (np.linalg.norm(yc, axis=1, keepdims=True) + 1e-6)
    expected = np.mean([(xc[:, i] @ yc[:, j]) ** 2 for i in range(3) for j in range(4)])
    got = orthogonality_loss(torch.tensor(x), torch.tensor(y)).item()
    assert got == pytest.approx(expected, rel=1e-9)
