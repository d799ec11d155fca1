"""InfoNCE with in-batch negatives as one autograd function (the value of ``recsys.losses.info_nce``).

For paired rows a_i, b_i (n of them), â = a/max(‖a‖, ε), b̂ likewise (ε = 1e-12, as
``F.normalize``) and temperature τ:

    L_ij = â_i · b̂_j / τ,    loss = (1/n) Σ_i (log Σ_j exp L_ij − L_ii)

    ∂L = (softmax_rows(L) − I) ḡ / n,   ∂â = ∂L b̂ / τ,   ∂b̂ = ∂Lᵀ â / τ,
    ∂a_i = (∂â_i − â_i (â_i · ∂â_i)) / ‖a_i‖   (∂â_i / ε where ‖a_i‖ < ε), b likewise.

Since the rows are unit vectors, |L_ij| ≤ 1/τ: the forward pass forms E = exp(L − c) with the
constant c = 1/τ subtracted inside the matrix product (a bias), so every entry lies in
[e^(−2/τ), 1] (no overflow, and no underflow to zero while 1/τ ≤ 40; below τ = 1/40, c is
each row's maximum), then log Σ_j exp L_ij = c + log Z_i with Z_i = Σ_j E_ij, and L_ii from
the paired rows directly. It keeps E and Z; the backward pass turns E into softmax − I in
place (one scaling by ḡ / (n τ Z_i) per row) and needs two matrix products (through
``recsys.nn.dense``: oneDNN on CPU). One pass over the n × n matrix in each direction besides
the products; composed from autograd operations the same loss makes several more (the
division by τ and log-softmax, forward and backward) and runs its products through MKL's
slower kernels on this machine.
"""
from __future__ import annotations

import torch

from recsys import losses
from recsys.nn.dense import autocast_active, linear, matmul

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


_CONSTANT_SHIFT_MAX = 40.0


def _shifted_exp_logits(scaled_a: torch.Tensor, unit_b: torch.Tensor, inverse_temperature: float):
    """(E, c): E = exp(L − c) for L = scaled_a unit_bᵀ, with c = 1/τ while that is at most 40
    (subtracted as the product's bias), else the row maxima (n × 1)."""
    if inverse_temperature <= _CONSTANT_SHIFT_MAX:
        bias = scaled_a.new_full((unit_b.shape[0],), -inverse_temperature)
        return linear(scaled_a, unit_b, bias).exp_(), inverse_temperature
    logits = matmul(scaled_a, unit_b.t())
    shift = logits.amax(1, keepdim=True)
    return logits.sub_(shift).exp_(), shift.squeeze(1)


class _InfoNCE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b, temperature):
        unit_a, norm_a = _unit_rows(a)
        unit_b, norm_b = _unit_rows(b)
        scaled_a = unit_a / temperature
        exp_logits, shift = _shifted_exp_logits(scaled_a, unit_b, 1.0 / temperature)
        total = exp_logits.sum(1)
        loss = (total.log() + shift - (scaled_a * unit_b).sum(1)).mean()
        ctx.save_for_backward(unit_a, norm_a, unit_b, norm_b, exp_logits, total)
        ctx.temperature = temperature
        return loss

    @staticmethod
    def backward(ctx, grad):
        unit_a, norm_a, unit_b, norm_b, exp_logits, total = ctx.saved_tensors
        n = exp_logits.shape[0]
        step = grad / (n * ctx.temperature)
        delta = exp_logits.mul_((step / total).unsqueeze(1))  # (softmax − I)·step, in the saved E
        delta.diagonal().sub_(step)
        grad_a = _unit_rows_backward(matmul(delta, unit_b), unit_a, norm_a)
        grad_b = _unit_rows_backward(matmul(delta.t(), unit_a), unit_b, norm_b)
        return grad_a, grad_b, None
