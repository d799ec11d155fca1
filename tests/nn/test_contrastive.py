"""Fused InfoNCE: the value and gradients of recsys.losses.info_nce."""
import pytest
import torch

from recsys.losses import info_nce as composed
from recsys.nn.contrastive import info_nce


@pytest.mark.parametrize("temperature", [0.01, 0.03, 0.6, 1.5])  # 0.01: shift by row maxima
def test_value_and_gradients_equal_the_composed_loss(temperature):
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(40, 8, generator=generator, dtype=torch.float64, requires_grad=True)
    b = torch.randn(40, 8, generator=generator, dtype=torch.float64, requires_grad=True)
    got, want = info_nce(a, b, temperature), composed(a, b, temperature)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    for g, w in zip(torch.autograd.grad(got * 1.7, [a, b]), torch.autograd.grad(want * 1.7, [a, b])):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12)


def test_float32_within_rounding_and_short_rows():
    generator = torch.Generator().manual_seed(1)
    a = torch.randn(500, 64, generator=generator)
    b = torch.randn(500, 64, generator=generator)
    a[3] = 1e-14  # shorter than eps: F.normalize divides by eps and has no projection term
    a.requires_grad_(True)
    b.requires_grad_(True)
    exact_a, exact_b = (x.detach().double().requires_grad_() for x in (a, b))
    got, want = info_nce(a, b, 0.6), composed(exact_a, exact_b, 0.6)
    assert abs(got.item() - want.item()) < 1e-6 * abs(want.item())
    for g, w in zip(torch.autograd.grad(got, [a, b]), torch.autograd.grad(want, [exact_a, exact_b])):
        assert ((g.double() - w).norm() / w.norm()).item() < 1e-5
