"""InfoNCE with in-batch negatives as one autograd function (the value of ``recsys.losses.info_nce``).

For paired rows a_i, b_i (n of them), â = a/max(‖a‖, ε), b̂ likewise (ε = 1e-12, as
``F.normalize``) and temperature τ:

    L_ij = â_i · b̂_j / τ,    loss = (1/n) Σ_i (log Σ_j exp L_ij − L_ii)

    ∂L = (softmax_rows(L) − I) ḡ / n,   ∂â = ∂L b̂ / τ,   ∂b̂ = ∂Lᵀ â / τ,
    ∂a_i = (∂â_i − â_i (â_i · ∂â_i)) / ‖a_i‖   (∂â_i / ε where ‖a_i‖ < ε), b likewise.

The forward pass keeps the n × n logits and their row log-sum-exps; the backward pass turns
them into softmax − I in place and needs two matrix products (through ``recsys.nn.dense``:
oneDNN on CPU). Composed from autograd operations the same loss makes several more passes
over n × n matrices (the division by τ and log-softmax, forward and backward) and runs its
products through MKL's slower kernels on this machine.
"""
from __future__ import annotations

import torch

from recsys import losses
from recsys.nn.dense import autocast_active, matmul

_EPS = 1e-12


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """InfoNCE over paired rows of ``a`` and ``b`` with in-batch negatives (see module docstring);
    under autocast the composed ``recsys.losses.info_nce``."""
    if autocast_active(a):
        return losses.info_nce(a, b, temperature)
    return _InfoNCE.apply(a, b, float(temperature))


def _unit_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    norm = torch.linalg.vector_norm(x, dim=1, keepdim=True).clamp_min_(_EPS)
    return x / norm, norm


def _unit_rows_backward(grad: torch.Tensor, unit: torch.Tensor, norm: torch.Tensor) -> torch.Tensor:
    dot = (unit * grad).sum(1, keepdim=True).masked_fill_(norm <= _EPS, 0.0)
    return grad.addcmul_(unit, dot, value=-1.0).div_(norm)


class _InfoNCE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b, temperature):
        unit_a, norm_a = _unit_rows(a)
        unit_b, norm_b = _unit_rows(b)
        logits = matmul(unit_a / temperature, unit_b.t())
        log_norm = torch.logsumexp(logits, dim=1)
        loss = (log_norm - logits.diagonal()).mean()
        ctx.save_for_backward(unit_a, norm_a, unit_b, norm_b, logits, log_norm)
        ctx.temperature = temperature
        return loss

    @staticmethod
    def backward(ctx, grad):
        unit_a, norm_a, unit_b, norm_b, logits, log_norm = ctx.saved_tensors
        n = logits.shape[0]
        delta = logits.sub_(log_norm.unsqueeze(1)).exp_()  # softmax rows, in the saved logits
        delta.diagonal().sub_(1.0)
        delta.mul_(grad / (n * ctx.temperature))
        grad_a = _unit_rows_backward(matmul(delta, unit_b), unit_a, norm_a)
        grad_b = _unit_rows_backward(matmul(delta.t(), unit_a), unit_b, norm_b)
        return grad_a, grad_b, None
