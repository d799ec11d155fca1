"""Meta-network factor heads: the fused function against composing the modules with autograd."""
import pytest
import torch

from recsys.nn.meta_network import FactorHead, factor_rows_and_mean


def _heads(dim, rank, n_heads, seed):
    torch.manual_seed(seed)
    heads = [FactorHead(dim, rank).double() for _ in range(n_heads)]
    with torch.no_grad():
        for index, head in enumerate(heads):
            head.act.weight.fill_(0.1 + 0.3 * index)  # distinct PReLU slopes, negative inputs matter
            head.hidden.bias.normal_()
    return heads


def _straightforward(kappa, rows, heads):
    outputs = []
    for head in heads:
        factors = head(kappa)
        outputs.append((factors[rows], factors.mean(0)))
    return outputs


@pytest.mark.parametrize("use_rows,use_mean", [(True, True), (True, False), (False, True)])
def test_values_and_gradients_equal_the_composed_modules(use_rows, use_mean):
    dim, rank, n = 6, 3, 40
    heads = _heads(dim, rank, 2, seed=0)
    kappa = torch.randn(n, dim, dtype=torch.float64)
    rows = torch.tensor([3, 7, 7, 0, 39, 3, 12])  # repeats: their gradients add up
    generator = torch.Generator().manual_seed(1)
    upstream = [(torch.randn(len(rows), dim * rank, generator=generator, dtype=torch.float64),
                 torch.randn(dim * rank, generator=generator, dtype=torch.float64)) for _ in heads]
    params = [p for head in heads for p in head.parameters()]

    def objective(outputs):
        total = 0.0
        for (out_rows, out_mean), (g_rows, g_mean) in zip(outputs, upstream):
            total = total + (out_rows * g_rows).sum() * use_rows + (out_mean * g_mean).sum() * use_mean
        return total

    fused = factor_rows_and_mean(kappa, rows, heads)
    expected = _straightforward(kappa, rows, heads)
    for (a_rows, a_mean), (b_rows, b_mean) in zip(fused, expected):
        torch.testing.assert_close(a_rows, b_rows, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(a_mean, b_mean, rtol=1e-12, atol=1e-12)
    got = torch.autograd.grad(objective(fused), params, allow_unused=True)
    want = torch.autograd.grad(objective(expected), params, allow_unused=True)
    for g, w, p in zip(got, want, params):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12, msg=f"parameter of shape {tuple(p.shape)}")


def test_float32_gradients_within_rounding_of_the_composed_modules():
    heads = [h.float() for h in _heads(16, 7, 2, seed=3)]
    kappa = torch.randn(500, 16)
    rows = torch.randint(0, 500, (300,))
    params = [p for head in heads for p in head.parameters()]
    losses = []
    for outputs in (factor_rows_and_mean(kappa, rows, heads), _straightforward(kappa, rows, heads)):
        total = sum((r.sin().sum() + (m * torch.arange(m.numel())).sum()) for r, m in outputs)
        losses.append(torch.autograd.grad(total, params))
    for got, want in zip(*losses):
        assert ((got - want).norm() / want.norm()).item() < 1e-5


def test_outputs_shorter_than_eps_use_the_clamped_norm_like_f_normalize():
    """‖y‖ < ε: ŷ = y / ε, whose gradient has no projection term."""
    heads = _heads(4, 2, 1, seed=5)
    with torch.no_grad():
        heads[0].out.weight.zero_()
        heads[0].out.bias.zero_()
        heads[0].out.bias[0] = 1e-13  # y = (1e-13, 0, ...) for every node
    kappa = torch.randn(10, 4, dtype=torch.float64)
    rows = torch.tensor([1, 2])
    params = list(heads[0].parameters())
    (out_rows, out_mean), = factor_rows_and_mean(kappa, rows, heads)
    (ref_rows, ref_mean), = _straightforward(kappa, rows, heads)
    torch.testing.assert_close(out_rows, ref_rows, rtol=1e-12, atol=0.0)
    got = torch.autograd.grad(out_rows.sum() + out_mean.sum(), params)
    want = torch.autograd.grad(ref_rows.sum() + ref_mean.sum(), params)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=0.0)
