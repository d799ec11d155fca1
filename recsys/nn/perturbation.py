"""Random-noise perturbation of embeddings for contrastive views (SimGCL family).

SimGCL (Yu et al., "Are Graph Augmentations Necessary? Simple Graph Contrastive Learning for
Recommendation", SIGIR 2022) builds a view by adding, after every propagation layer,

    e'_n = e_n + Δ_n,   Δ_n = ε_n · sign(e_n) ⊙ normalize(u_n),   u_n ~ U(0, 1)^d,

so the noise has L2 norm ε_n and stays in the orthant of e_n. SimGCL uses one constant
ε_n = ε for every node. SIGER (Zhang et al., arXiv 2508.06154, 2025; docs/models/siger.md §3)
makes it personalised by the embedding modulus:

    ε_n = ε · ‖e_n‖₂ / mean_m ‖e_m‖₂          (mean over all rows of the layer),

so large-modulus (popular, well-trained) nodes receive proportionally larger noise. The
noise is a constant of the step: ε_n is computed from detached moduli, and sign(·) has no
gradient, so gradients flow only through e_n itself.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from recsys.nn.propagation import sparse_matmul

SCALINGS = ("modulus", "constant")


def noise_scale(x: torch.Tensor, eps: float, scaling: str = "modulus") -> torch.Tensor:
    """Per-row noise norms ε_n (a column vector, detached): modulus-scaled or constant ε."""
    if scaling == "constant":
        return torch.full((x.shape[0], 1), float(eps), dtype=x.dtype, device=x.device)
    if scaling == "modulus":
        norms = x.detach().norm(dim=1, keepdim=True)
        return eps * norms / norms.mean().clamp_min(torch.finfo(x.dtype).tiny)
    raise ValueError(f"noise scaling must be one of {SCALINGS}, got '{scaling}'")


def perturb(x: torch.Tensor, eps: float, scaling: str = "modulus",
            generator: torch.Generator | None = None) -> torch.Tensor:
    """``x + ε_n · sign(x) ⊙ normalize(U(0,1)^d)`` row-wise (see the module docstring)."""
    uniform = torch.rand(x.shape, dtype=x.dtype, device=x.device, generator=generator)
    direction = torch.sign(x.detach()) * F.normalize(uniform, dim=1)
    return x + noise_scale(x, eps, scaling) * direction


def perturbed_propagate(adj: torch.Tensor, x: torch.Tensor, n_layers: int, eps: float,
                        scaling: str = "modulus", symmetric: bool = True,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """LightGCN propagation with noise after every layer; output = mean of layers 0..L.

    E^(l+1) = perturb(Â E^(l)); layer 0 (the ID embeddings) is left clean, as in SimGCL.
    """
    layers = [x]
    for _ in range(n_layers):
        layers.append(perturb(sparse_matmul(adj, layers[-1], symmetric=symmetric), eps, scaling, generator))
    return torch.stack(layers).mean(dim=0)
