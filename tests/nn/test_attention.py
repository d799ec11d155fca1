"""Attention over vector entries: equal to nn.MultiheadAttention(1, 1), exact gradients, masks."""
import math

import pytest
import torch
from torch import nn

from recsys.nn.attention import KeepMasks, ScalarTokenAttention, scalar_token_attention


def _copy_from_mha(ours: ScalarTokenAttention, mha: nn.MultiheadAttention) -> None:
    with torch.no_grad():
        ours.in_weight.copy_(mha.in_proj_weight[:, 0])
        ours.in_bias.copy_(mha.in_proj_bias)
        ours.out_weight.copy_(mha.out_proj.weight[0])
        ours.out_bias.copy_(mha.out_proj.bias)


def _direct(q, k, v, keep, p):
    """Loop over nodes: softmax_j(q_i k_j), masked and rescaled by 1/(1-p), times v."""
    rows = []
    for n in range(q.shape[0]):
        weights = torch.softmax(q[n][:, None] * k[n][None, :], dim=1)
        rows.append((weights * keep[n] / (1 - p)) @ v[n])
    return torch.stack(rows)


@pytest.mark.parametrize("block_rows", [1, 4, 1000])
def test_matches_multihead_attention_values_and_gradients(block_rows):
    torch.manual_seed(0)
    query = torch.randn(37, 8, dtype=torch.float64, requires_grad=True)
    key_value = torch.randn(37, 8, dtype=torch.float64, requires_grad=True)
    mha = nn.MultiheadAttention(1, 1, batch_first=True).double()
    with torch.no_grad():
        mha.in_proj_bias.normal_()
        mha.out_proj.bias.normal_()
    ours = ScalarTokenAttention().double()
    _copy_from_mha(ours, mha)
    kv = key_value.unsqueeze(2)
    expected = mha(query.unsqueeze(2), kv, kv, need_weights=False)[0].squeeze(2)
    w, b = ours.in_weight, ours.in_bias
    got = scalar_token_attention(query * w[0] + b[0], key_value * w[1] + b[1], key_value * w[2] + b[2],
                                 block_rows=block_rows) * ours.out_weight + ours.out_bias
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    upstream = torch.randn_like(got)
    grads = torch.autograd.grad(got, [query, key_value, w, b], upstream)
    ref = torch.autograd.grad(expected, [query, key_value, mha.in_proj_weight, mha.in_proj_bias], upstream)
    for g, r in zip(grads, ref):
        torch.testing.assert_close(g, r.reshape(g.shape), rtol=1e-10, atol=1e-12)


def test_module_matches_multihead_attention():
    torch.manual_seed(1)
    mha = nn.MultiheadAttention(1, 1, batch_first=True)
    ours = ScalarTokenAttention()
    _copy_from_mha(ours, mha)
    query, key_value = torch.randn(20, 16), torch.randn(20, 16)
    kv = key_value.unsqueeze(2)
    expected = mha(query.unsqueeze(2), kv, kv, need_weights=False)[0].squeeze(2)
    torch.testing.assert_close(ours(query, key_value), expected, rtol=1e-5, atol=1e-6)


def test_dropout_equals_direct_computation_with_the_same_masks():
    torch.manual_seed(2)
    q, k, v = (torch.randn(9, 6, dtype=torch.float64) for _ in range(3))
    got = scalar_token_attention(q, k, v, p=0.3, seed=11, block_rows=4)
    stream = KeepMasks(0.3, 11, torch.device("cpu"))
    keep = torch.cat([stream.next((len(range(s, min(s + 4, 9))), 6, 6)) for s in range(0, 9, 4)])
    torch.testing.assert_close(got, _direct(q, k, v, keep.double(), 0.3), rtol=1e-12, atol=1e-12)
    assert 0 < (keep == 0).sum() < keep.numel()


def test_dropout_gradients_are_exact():
    torch.manual_seed(3)
    inputs = tuple(torch.randn(7, 5, dtype=torch.float64, requires_grad=True) for _ in range(3))
    assert torch.autograd.gradcheck(lambda q, k, v: scalar_token_attention(q, k, v, 0.5, seed=4, block_rows=3), inputs)


def test_same_seed_same_output_and_global_rng_drives_the_seed():
    q, k, v = (torch.randn(30, 8) for _ in range(3))
    a = scalar_token_attention(q, k, v, 0.4, seed=5)
    assert torch.equal(a, scalar_token_attention(q, k, v, 0.4, seed=5))
    assert not torch.equal(a, scalar_token_attention(q, k, v, 0.4, seed=6))
    torch.manual_seed(0)
    b = scalar_token_attention(q, k, v, 0.4)
    torch.manual_seed(0)
    assert torch.equal(b, scalar_token_attention(q, k, v, 0.4))


@pytest.mark.parametrize("p", [0.0, 0.1, 0.6])
def test_keep_rate(p):
    keep = KeepMasks(p, 0, torch.device("cpu")).next((400, 64, 64)).double()
    assert keep.mean().item() == pytest.approx(1 - round(p * 2**16) / 2**16, abs=4 / math.sqrt(keep.numel()))


def test_full_dropout_returns_the_output_bias_and_zero_gradients():
    attention = ScalarTokenAttention(dropout=1.0)
    with torch.no_grad():
        attention.out_bias.fill_(0.7)
    x = torch.randn(5, 4)
    out = attention(x, x)
    torch.testing.assert_close(out, torch.full((5, 4), 0.7))
    out.sum().backward()
    assert torch.equal(attention.in_weight.grad, torch.zeros(3))
    assert attention.out_bias.grad.item() == 20.0
    attention.eval()
    assert not torch.allclose(attention(x, x), out)


def test_invalid_dropout_is_rejected():
    with pytest.raises(ValueError, match="dropout"):
        ScalarTokenAttention(dropout=1.5)
    with pytest.raises(ValueError, match="dropout"):
        scalar_token_attention(*(torch.randn(2, 3) for _ in range(3)), p=-0.1)



def test_masks_drawn_again_give_the_gradients_of_kept_masks(monkeypatch):
    """Beyond the kept-mask budget the backward pass draws the masks again from the seed."""
    import recsys.nn.attention as attention

    torch.manual_seed(4)
    inputs = [torch.randn(11, 6, dtype=torch.float64, requires_grad=True) for _ in range(3)]
    upstream = torch.randn(11, 6, dtype=torch.float64)
    kept = torch.autograd.grad(scalar_token_attention(*inputs, 0.4, seed=9, block_rows=4), inputs, upstream)
    assert attention._CallMasks(0.4, 9, torch.device("cpu"), 11 * 36).packed is not None
    monkeypatch.setattr(attention, "_KEPT_MASK_BYTES", 0)
    assert attention._CallMasks(0.4, 9, torch.device("cpu"), 11 * 36).packed is None
    drawn = torch.autograd.grad(scalar_token_attention(*inputs, 0.4, seed=9, block_rows=4), inputs, upstream)
    for a, b in zip(kept, drawn):
        assert torch.equal(a, b)
    assert torch.autograd.gradcheck(lambda q, k, v: scalar_token_attention(q, k, v, 0.4, seed=9, block_rows=4), inputs)
