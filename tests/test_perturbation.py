"""Modulus-based personalised perturbation (docs/models/siger.md §3) and its SimGCL special case."""
import pytest
import torch

from recsys.nn import propagate
from recsys.nn.perturbation import noise_scale, perturb, perturbed_propagate


def _embeddings(seed=0, n=50, d=8):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    return x * torch.linspace(0.1, 5.0, n, dtype=torch.float64)[:, None]  # spread of moduli


def test_noise_norm_is_eps_times_relative_modulus():
    x = _embeddings()
    eps = 0.3
    noise = perturb(x, eps, "modulus", torch.Generator().manual_seed(1)) - x
    moduli = x.norm(dim=1)
    expected = eps * moduli / moduli.mean()
    assert torch.allclose(noise.norm(dim=1), expected, rtol=1e-10)


def test_noise_scales_linearly_with_the_modulus_of_a_node():
    x = _embeddings(n=6)
    x[1] = 4.0 * x[0]
    noise = perturb(x, 0.2, "modulus", torch.Generator().manual_seed(2)) - x
    assert noise[1].norm() / noise[0].norm() == pytest.approx(4.0, rel=1e-10)


def test_noise_does_not_change_with_a_global_rescaling_of_the_relative_sizes():
    x = _embeddings()
    scale_a = noise_scale(x, 0.1)
    scale_b = noise_scale(10.0 * x, 0.1)
    assert torch.allclose(scale_a, scale_b, rtol=1e-12)
    assert scale_a.mean().item() == pytest.approx(0.1, rel=1e-12)


def test_constant_scaling_is_simgcl_with_norm_eps():
    x = _embeddings()
    noise = perturb(x, 0.25, "constant", torch.Generator().manual_seed(3)) - x
    assert torch.allclose(noise.norm(dim=1), torch.full((x.shape[0],), 0.25, dtype=x.dtype), rtol=1e-10)


def test_noise_stays_in_the_orthant_of_the_embedding():
    x = _embeddings()
    noise = perturb(x, 0.5, "modulus", torch.Generator().manual_seed(4)) - x
    assert (noise * torch.sign(x) >= 0).all()
    assert ((noise != 0) == (x != 0)).float().mean() > 0.99


def test_zero_embeddings_give_zero_noise_not_nan():
    x = torch.zeros(5, 4)
    assert torch.equal(perturb(x, 0.1), x)


def test_gradient_flows_only_through_the_embedding():
    x = _embeddings().requires_grad_(True)
    weight = torch.randn_like(x)
    (perturb(x, 0.4) * weight).sum().backward()
    assert torch.allclose(x.grad, weight)


def test_same_generator_seed_gives_same_view_and_others_differ():
    x = _embeddings()
    a = perturb(x, 0.1, generator=torch.Generator().manual_seed(5))
    b = perturb(x, 0.1, generator=torch.Generator().manual_seed(5))
    c = perturb(x, 0.1, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.allclose(a, c)


def test_unknown_scaling_is_an_error():
    with pytest.raises(ValueError, match="modulus"):
        perturb(torch.ones(2, 2), 0.1, "popularity")


def _ring_adjacency(n=12):
    rows = torch.arange(n)
    dense = torch.zeros(n, n, dtype=torch.float64)
    dense[rows, (rows + 1) % n] = 0.5
    dense[(rows + 1) % n, rows] = 0.5
    return dense


def test_perturbed_propagation_adds_noise_after_every_layer():
    dense = _ring_adjacency()
    adj = dense.to_sparse_csr()
    x = _embeddings(n=12, d=4)
    got = perturbed_propagate(adj, x, 2, 0.2, "modulus", generator=torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(7)
    e1 = perturb(dense @ x, 0.2, "modulus", g)
    e2 = perturb(dense @ e1, 0.2, "modulus", g)
    assert torch.allclose(got, (x + e1 + e2) / 3, rtol=1e-12)
    clean = perturbed_propagate(adj, x, 2, 0.0)
    assert torch.allclose(clean, propagate(adj, x, 2, symmetric=True), rtol=1e-12)
