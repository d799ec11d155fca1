"""Scalar-token attention on every device: values and gradients against a float64 CPU
reference, and its dropout.

What is promised about dropout (``recsys.nn.attention``): masks come from a seeded stream —
NumPy's SFC64 on the CPU, a device ``torch.Generator`` elsewhere — so the same seed gives the
same masks on one device, the CPU and CUDA masks differ, the backward pass redraws exactly
the forward pass's masks, and an entry is kept with probability 1 − round(p·2¹⁶)/2¹⁶. Those
are what is tested here; CPU and CUDA outputs are compared only without dropout.
"""
from __future__ import annotations

import math

import pytest
import torch

from recsys.nn.attention import KeepMasks, ScalarTokenAttention, scalar_token_attention


def _reference(q, k, v, keep=None, p=0.0):
    """Per node: softmax_j(q_i k_j), masked and rescaled by 1/(1−p), times v (plain autograd ops)."""
    weights = torch.softmax(q[:, :, None] * k[:, None, :], dim=2)
    if keep is not None:
        weights = weights * keep / (1.0 - p)
    return (weights @ v[:, :, None]).squeeze(2)


def _inputs(n=53, d=16, seed=0, dtype=torch.float32):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(n, d, generator=generator, dtype=dtype) * 2 for _ in range(4)]   # q, k, v, upstream


def _block_masks(p, seed, n, d, block_rows, device):
    """The masks the attention draws: one (rows, d, d) draw per block of rows, in order."""
    stream = KeepMasks(p, seed, device)
    return torch.cat([stream.next((min(block_rows, n - s), d, d)) for s in range(0, n, block_rows)]).double()


def test_values_and_gradients_match_float64_on_the_cpu(device):
    q, k, v, upstream = _inputs()
    leaves = [t.to(device).requires_grad_() for t in (q, k, v)]
    out = scalar_token_attention(*leaves, block_rows=7)
    grads = torch.autograd.grad(out, leaves, upstream.to(device))
    ref_leaves = [t.double().requires_grad_() for t in (q, k, v)]
    expected = _reference(*ref_leaves)
    ref_grads = torch.autograd.grad(expected, ref_leaves, upstream.double())
    for got, ref in zip([out, *grads], [expected, *ref_grads]):
        assert got.device.type == device.type and got.dtype == torch.float32
        ref = ref.detach()
        torch.testing.assert_close(got.detach().double().cpu(), ref, rtol=1e-5, atol=1e-5 * float(ref.abs().max()))


def test_module_without_dropout_in_eval_mode_matches_float64(device):
    torch.manual_seed(0)
    module = ScalarTokenAttention(dropout=0.5)
    with torch.no_grad():
        module.in_bias.normal_()
        module.out_bias.normal_()
    q, k, _, _ = _inputs(n=20, d=12, seed=1)
    expected = module.double().eval()(q.double(), k.double())
    got = module.float().to(device).eval()(q.to(device), k.to(device))
    torch.testing.assert_close(got.double().cpu(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("p", [0.2, 0.7])
def test_dropout_masks_are_the_same_forward_and_backward(device, p):
    q, k, v, upstream = (t.double().to(device) for t in _inputs(n=29, d=8, seed=2))
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    out = scalar_token_attention(*leaves, p=p, seed=123, block_rows=5)
    grads = torch.autograd.grad(out, leaves, upstream)
    keep = _block_masks(p, 123, 29, 8, 5, device)
    assert 0 < int((keep == 0).sum()) < keep.numel()
    ref_leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    expected = _reference(*ref_leaves, keep=keep, p=p)
    ref_grads = torch.autograd.grad(expected, ref_leaves, upstream)
    for got, ref in zip([out, *grads], [expected, *ref_grads]):
        torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-10)
    again = scalar_token_attention(q, k, v, p=p, seed=123, block_rows=5)
    torch.testing.assert_close(again, out.detach(), rtol=1e-12, atol=1e-12)
    assert not torch.equal(scalar_token_attention(q, k, v, p=p, seed=124, block_rows=5), again)


@pytest.mark.parametrize("p", [0.1, 0.4, 0.6])
def test_keep_rate(device, p):
    keep = KeepMasks(p, 7, device).next((200, 64, 64))
    assert keep.device.type == device.type and keep.dtype == torch.uint8
    rate = 1 - round(p * 2**16) / 2**16
    assert float(keep.double().mean()) == pytest.approx(rate, abs=5 * math.sqrt(rate * (1 - rate) / keep.numel()))
    first, second = KeepMasks(p, 7, device), KeepMasks(p, 7, device)
    assert torch.equal(first.next((3, 5, 5)), second.next((3, 5, 5)))
    assert not torch.equal(first.next((3, 5, 5)), first.next((3, 5, 5)))
