"""Sparse propagation: layer mean / last layer against dense products, values and gradients."""
import pytest
import torch

from recsys.nn import compact_csr, propagate


def _graph(n, symmetric, seed=0):
    generator = torch.Generator().manual_seed(seed)
    dense = torch.rand(n, n, generator=generator, dtype=torch.float64) * (torch.rand(n, n, generator=generator) < 0.3)
    if symmetric:
        dense = dense + dense.T
    return dense


@pytest.mark.parametrize("combine", ["mean", "last"])
@pytest.mark.parametrize("mode", ["symmetric", "transpose", "generic"])
def test_equals_dense_layers(combine, mode):
    n, layers = 12, 3
    dense = _graph(n, symmetric=mode == "symmetric")
    adj = compact_csr(dense.to_sparse_csr())
    kwargs = {"symmetric": True} if mode == "symmetric" else \
        {"adj_t": compact_csr(dense.T.contiguous().to_sparse_csr())} if mode == "transpose" else {}
    x = torch.randn(n, 4, dtype=torch.float64, requires_grad=True)
    got = propagate(adj, x, layers, combine=combine, **kwargs)
    outputs = [x]
    for _ in range(layers):
        outputs.append(dense @ outputs[-1])
    expected = torch.stack(outputs).mean(0) if combine == "mean" else outputs[-1]
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    upstream = torch.randn_like(got)
    torch.testing.assert_close(torch.autograd.grad(got, x, upstream)[0], torch.autograd.grad(expected, x, upstream)[0],
                               rtol=1e-12, atol=1e-12)


def test_zero_layers_and_unknown_combine():
    x = torch.randn(5, 2)
    adj = compact_csr(torch.eye(5).to_sparse_csr())
    assert torch.equal(propagate(adj, x, 0), x)
    with pytest.raises(ValueError, match="combine"):
        propagate(adj, x, 1, combine="sum")
