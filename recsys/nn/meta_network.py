"""Meta-network factor heads of REARM (Ma et al., ACM MM 2025, §3.4 "shared knowledge").

A head maps a node's knowledge vector κ (d values) to a low-rank factor:

    pre = κ W_hᵀ + b_h,   h = PReLU_a(pre),   y = h W_oᵀ + b_o,   ŷ = y / max(‖y‖, ε)

(Linear(d → d·r) → PReLU → Linear(d·r → d·r) → L2-normalise, ε = 1e-12 as in
``F.normalize``). REARM needs ŷ only for the nodes of a batch and the mean of ŷ over all n
nodes of a type (added to every node's factor as a bias), yet the mean makes every node's ŷ
depend on the parameters. :func:`factor_rows_and_mean` computes both for several heads that
share κ with one autograd function whose backward is written out:

    Ĝ_i = ḡ/n + Σ_{b: rows_b = i} g_b          (ḡ: gradient of the mean, g_b: of row b)
    ∂y_i = (Ĝ_i − ŷ_i (ŷ_i · Ĝ_i)) / ‖y_i‖      (Ĝ_i / ε where ‖y_i‖ < ε)
    ∂W_o = ∂yᵀ h,  ∂b_o = Σ_i ∂y_i,  ∂h = ∂y W_o
    ∂pre = ∂h ⊙ (1 if pre ≥ 0 else a),  ∂a = Σ ∂h ⊙ min(pre, 0)
    ∂W_h = ∂preᵀ κ,  ∂b_h = Σ_i ∂pre_i        (κ is a constant: REARM detaches it)

Same values and gradients as composing the modules with autograd, with fewer passes over the
n × d·r intermediates: the broadcast gradient of the mean is never expanded into its own
tensor, the rows' gradients are added in place, and the PReLU gradient uses leaky ReLU's backward
kernel with the slope as a number (torch's PReLU backward kernel is over 10× slower on CPU).
The matrix products go through :mod:`recsys.nn.dense` (oneDNN on CPU).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from recsys.nn.dense import autocast_active, linear, matmul

_EPS = 1e-12
_PARAMS_PER_HEAD = 5


class FactorHead(nn.Module):
    """Linear(d → d·r) → PReLU → Linear(d·r → d·r) → L2-normalise (REARM's ``MLP``)."""

    def __init__(self, dim: int, rank: int) -> None:
        super().__init__()
        self.hidden = nn.Linear(dim, dim * rank)
        self.act = nn.PReLU()
        self.out = nn.Linear(dim * rank, dim * rank)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.out(self.act(self.hidden(x))), dim=-1, eps=_EPS)

    def flat_parameters(self) -> tuple[torch.Tensor, ...]:
        return self.hidden.weight, self.hidden.bias, self.act.weight, self.out.weight, self.out.bias


def factor_rows_and_mean(kappa: torch.Tensor, rows: torch.Tensor,
                         heads: list[FactorHead]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """For each head: (ŷ[rows], mean of ŷ over all rows of ``kappa``).

    ``kappa`` (n × d) is treated as a constant; ``rows`` is a 1-D index (repeats allowed).
    Under autocast the heads run as plain modules.
    """
    if autocast_active(kappa):
        factors = [head(kappa.detach()) for head in heads]
        return [(y.index_select(0, rows), y.mean(0)) for y in factors]
    params = [p for head in heads for p in head.flat_parameters()]
    outputs = _FactorHeads.apply(kappa.detach(), rows, *params)
    return [(outputs[2 * k], outputs[2 * k + 1]) for k in range(len(heads))]


class _FactorHeads(torch.autograd.Function):
    @staticmethod
    def forward(ctx, kappa, rows, *params):
        outputs, saved = [], []
        for hidden_weight, hidden_bias, slope, out_weight, out_bias in _heads(params):
            pre = linear(kappa, hidden_weight, hidden_bias)
            hidden = F.prelu(pre, slope)
            y = linear(hidden, out_weight, out_bias)
            norm = torch.linalg.vector_norm(y, dim=1, keepdim=True).clamp_min_(_EPS)
            y.div_(norm)
            outputs += [y.index_select(0, rows), y.mean(0)]
            saved += [pre, y, norm]  # h = PReLU(pre) is formed again in the backward pass (less memory)
        ctx.save_for_backward(kappa, rows, *saved, *params)
        ctx.n_heads = len(params) // _PARAMS_PER_HEAD
        return tuple(outputs)

    @staticmethod
    def backward(ctx, *grads):
        kappa, rows, *rest = ctx.saved_tensors
        saved, params = rest[:3 * ctx.n_heads], rest[3 * ctx.n_heads:]
        out = []
        for k, (_, _, slope, out_weight, _) in enumerate(_heads(params)):
            pre, y, norm = saved[3 * k: 3 * k + 3]
            hidden = F.prelu(pre, slope)
            n, width = y.shape
            grad_rows, grad_mean = grads[2 * k], grads[2 * k + 1]
            # contiguous: index_add_ takes a much slower path for strided sources
            grad_rows = grad_rows.contiguous() if grad_rows is not None else y.new_zeros(rows.shape[0], width)
            mean_share = grad_mean / n if grad_mean is not None else y.new_zeros(width)
            # ∂y = (Ĝ − ŷ (ŷ·Ĝ)) / ‖y‖ with Ĝ = ḡ/n + the rows' gradients added at their nodes
            dot = y @ mean_share
            dot.index_add_(0, rows, (y.index_select(0, rows) * grad_rows).sum(1))
            dot.masked_fill_(norm.squeeze(1) <= _EPS, 0.0)
            grad_y = torch.addcmul(mean_share.expand(n, width), y, dot.unsqueeze(1), value=-1.0)
            grad_y.index_add_(0, rows, grad_rows).div_(norm)
            grad_hidden = matmul(grad_y, out_weight)
            grad_slope = torch.vdot(grad_hidden.view(-1), pre.clamp(max=0.0).view(-1)).reshape(1)
            # ∂pre = ∂h where pre > 0, ∂h·a elsewhere (PReLU's convention at 0): leaky ReLU's kernel
            grad_pre = torch.ops.aten.leaky_relu_backward(grad_hidden, pre, float(slope), False)
            out += [matmul(grad_pre.t(), kappa), grad_pre.sum(0), grad_slope, matmul(grad_y.t(), hidden), grad_y.sum(0)]
        return (None, None, *out)


def _heads(params):
    return [params[i:i + _PARAMS_PER_HEAD] for i in range(0, len(params), _PARAMS_PER_HEAD)]
