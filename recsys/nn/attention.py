"""Attention over the entries of a vector: each of the d values is a token of size 1.

REARM (Ma et al., ACM MM 2025, §3.3 "attention integration") applies single-head attention
with embedding size 1 to every item's modality vector, i.e. ``nn.MultiheadAttention(1, 1)``
on a batch of N sequences of d scalar tokens. For one node with query vector x_q and
key/value vector x_kv (both d values):

    q = w_q x_q + b_q,   k = w_k x_kv + b_k,   v = w_v x_kv + b_v      (scalar affine maps)
    A_ij = softmax_j(q_i k_j)          (head size 1, so the 1/√head scale is 1)
    o_i  = Σ_j dropout(A)_ij v_j,      out = w_o o + b_o

Dropout acts on the attention weights (training only), as in ``nn.MultiheadAttention``.

Doing this with generic ops materialises several N × d × d tensors (d = 64: 115 MB each
for 7,050 items) and the dropout mask alone costs more than the attention. Here the
attention core is one autograd function that works on blocks of nodes small enough to stay
in cache and has a hand-written backward (with o the output and M the keep-mask,
dS_ij = A_ij dO_i (M_ij v_j / (1−p) − o_i), reduced by batched vector–matrix products
without forming dS); the softmax max is computed in closed form
(max_j q_i k_j = q_i·max k if q_i ≥ 0 else q_i·min k). Keep-masks are drawn as
16-bit uniform integers, i.e. the drop probability is p rounded to a multiple of 2⁻¹⁶
(|error| ≤ 8·10⁻⁶), four draws per 64-bit random number. On CPU the forward pass keeps the
masks bit-packed for the backward pass (d²/8 bytes per node: 1.5 MB per attention over 3,000
items), up to 256 MiB per call; beyond that, and on accelerators, the backward pass draws the
same masks again from the seed (keeping them as bytes would cost d² bytes per node: 16 GB for
REARM's four attentions over a million items).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from recsys.nn.dense import autocast_active

_INT16_RANGE = 1 << 16
_KEPT_MASK_BYTES = 2**28


class KeepMasks:
    """A seeded stream of dropout keep-masks (uint8 0/1), kept with probability ≈ 1 − p.

    Each entry compares a uniform 16-bit integer with round(p·2¹⁶), so the drop probability
    is p rounded to a multiple of 2⁻¹⁶. On CPU the bits come from NumPy's SFC64 generator
    (``random_raw``: about 3× faster than torch's CPU generator, which dominated the cost);
    on other devices from a device ``torch.Generator``. Same seed, same masks.
    """

    def __init__(self, p: float, seed: int, device: torch.device) -> None:
        self.threshold = round(p * _INT16_RANGE) - _INT16_RANGE // 2
        self.device = torch.device(device)
        if self.device.type == "cpu":
            self._bits = np.random.SFC64(seed)
        else:
            self._generator = torch.Generator(device=self.device)
            self._generator.manual_seed(seed)

    def next(self, shape: tuple[int, ...]) -> torch.Tensor:
        numel = math.prod(shape)
        words = -(-numel // 4)
        if self.device.type == "cpu":
            # NumPy's comparison is about 6× faster than torch's int16 kernel on CPU
            draws = self._bits.random_raw(words).view(np.int16)[:numel].reshape(shape)
            return torch.from_numpy(draws >= np.int16(self.threshold)).view(torch.uint8)
        raw = torch.randint(-(2**63), 2**63 - 1, (words,), dtype=torch.int64,
                            generator=self._generator, device=self.device)
        draws = raw.view(torch.int16)[:numel].view(shape)
        return (draws >= self.threshold).view(torch.uint8)


class _CallMasks:
    """The keep-masks of one attention call, block by block: drawn in the forward pass and
    either replayed from their bit-packed copies or drawn again in the backward pass."""

    def __init__(self, p: float, seed: int, device: torch.device, n_weights: int) -> None:
        self.p, self.seed, self.device = p, seed, device
        self.stream = KeepMasks(p, seed, device)
        self.packed: list[np.ndarray] | None = \
            [] if device.type == "cpu" and n_weights // 8 <= _KEPT_MASK_BYTES else None

    def draw(self, shape: tuple[int, ...]) -> torch.Tensor:
        mask = self.stream.next(shape)
        if self.packed is not None:
            self.packed.append(np.packbits(mask.numpy()))
        return mask

    def again(self) -> "_MaskReplay":
        return _MaskReplay(self)


class _MaskReplay:
    def __init__(self, masks: _CallMasks) -> None:
        self.packed = masks.packed
        self.stream = KeepMasks(masks.p, masks.seed, masks.device) if masks.packed is None else None
        self.index = 0

    def next(self, shape: tuple[int, ...]) -> torch.Tensor:
        if self.stream is not None:
            return self.stream.next(shape)
        bits = np.unpackbits(self.packed[self.index], count=math.prod(shape))
        self.index += 1
        return torch.from_numpy(bits.reshape(shape))


def default_block_rows(d: int, device: torch.device) -> int:
    """Nodes per block: ~2¹⁹ attention entries on CPU (2 MB a block, cache sized: 128 nodes for
    d = 64; forward and backward over 2,982 nodes take 28.2 ms on one thread and 18.6 on two,
    against 28.5 and 20.1 with half of it), 2²⁶ on accelerators."""
    budget = 2**19 if device.type == "cpu" else 2**26
    return max(1, budget // (d * d))


class _ScalarTokenAttention(torch.autograd.Function):
    """o = dropout(softmax(q kᵀ)) v per node, for q, k, v of shape (N, d)."""

    @staticmethod
    def forward(ctx, q, k, v, p: float, seed: int, block_rows: int):
        scale = 1.0 / (1.0 - p)
        masks = _CallMasks(p, seed, q.device, q.numel() * q.shape[1]) if p > 0 else None
        q2, row_max = _log2_scores_and_max(q, k)
        out = torch.empty_like(q)
        norm = torch.empty_like(q)
        for block in _blocks(q.shape[0], block_rows):
            weights = _exp_scores(q2[block], k[block], row_max[block])
            torch.sum(weights, 2, out=norm[block])
            if masks is not None:
                weights.mul_(masks.draw(weights.shape))
            _rows_times(weights, v[block], out[block])
        out.div_(norm).mul_(scale)
        ctx.save_for_backward(q, k, v, out, norm)
        ctx.masks, ctx.scale, ctx.block_rows = masks, scale, block_rows
        return out

    @staticmethod
    def backward(ctx, grad_out):
        # With E = exp(S − max), Z = Σ_j E_ij, M the mask (E⊙M = E when there is none),
        # s = 1/(1−p) and g = dO / Z:  dS_ij = s g_i (E⊙M)_ij v_j − g_i o_i E_ij, hence
        # dq_i = g_i (s Σ_j (E⊙M)_ij v_j k_j − o_i Σ_j E_ij k_j),
        # dk_j = s v_j Σ_i g_i q_i (E⊙M)_ij − Σ_i g_i o_i q_i E_ij,   dv_j = s Σ_i g_i (E⊙M)_ij,
        # five batched products per block; dS itself is never formed. Everything that is a
        # function of single rows is computed once for all rows, outside the block loop.
        q, k, v, out, norm = ctx.saved_tensors
        scale = ctx.scale
        masks = ctx.masks.again() if ctx.masks is not None else None
        q2, row_max = _log2_scores_and_max(q, k)
        g = grad_out / norm
        goq = g * out * q
        left = torch.stack([g, g * q], dim=1)  # (N, 2, d): rows multiplying E⊙M from the left
        vk = v * k
        row_k, row_vk, col_goq = torch.empty_like(q), torch.empty_like(q), torch.empty_like(q)
        col = torch.empty_like(left)
        for block in _blocks(q.shape[0], ctx.block_rows):
            weights = _exp_scores(q2[block], k[block], row_max[block])
            _rows_times(weights, k[block], row_k[block])
            torch.bmm(goq[block].unsqueeze(1), weights, out=col_goq[block].unsqueeze(1))
            if masks is not None:
                weights.mul_(masks.next(weights.shape))
            _rows_times(weights, vk[block], row_vk[block])
            torch.bmm(left[block], weights, out=col[block])
        col_g, col_gq = col.unbind(1)
        grad_q = g * (scale * row_vk - out * row_k)
        grad_k = torch.addcmul(-col_goq, v, col_gq, value=scale)
        grad_v = col_g.mul_(scale)
        return grad_q, grad_k, grad_v, None, None, None


_LOG2_E = 1.0 / math.log(2.0)


def _blocks(n: int, block_rows: int):
    return [slice(start, start + block_rows) for start in range(0, n, block_rows)]


def _log2_scores_and_max(q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """log₂e·q and max_j log₂e·q_i k_j (closed form: q_i·max k if q_i ≥ 0 else q_i·min k)."""
    q2 = q * _LOG2_E
    row_max = torch.where(q2 >= 0, q2 * k.amax(1, keepdim=True), q2 * k.amin(1, keepdim=True))
    return q2, row_max


def _rows_times(weights: torch.Tensor, x: torch.Tensor, out: torch.Tensor) -> None:
    """out_i = Σ_j weights_ij x_j per node, as row vector × matrixᵀ (MKL's batched kernel is
    several times faster in this orientation than as matrix × column vector). Under autocast
    the product runs in autocast's dtype (``out=`` would pin it to float32)."""
    if autocast_active(weights):
        out.copy_(torch.bmm(x.unsqueeze(1), weights.transpose(1, 2)).squeeze(1))
    else:
        torch.bmm(x.unsqueeze(1), weights.transpose(1, 2), out=out.unsqueeze(1))


def _exp_scores(q2: torch.Tensor, k: torch.Tensor, row_max: torch.Tensor) -> torch.Tensor:
    """exp(q_i k_j − max_j q_i k_j) as (n, d, d), computed as 2^(log₂e·q_i k_j − max): torch's
    exp2 kernel is about twice as fast as exp."""
    return torch.mul(q2.unsqueeze(2), k.unsqueeze(1)).sub_(row_max.unsqueeze(2)).exp2_()


def scalar_token_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, p: float = 0.0,
                           seed: int | None = None, block_rows: int | None = None) -> torch.Tensor:
    """``dropout_p(softmax(q_i k_j)) v`` per row of (N, d) tensors; p = 1 gives zeros.

    ``seed`` fixes the dropout masks (drawn from torch's global generator when None).
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"attention dropout must be in [0, 1], got {p}")
    if p >= 1.0:
        # Every weight is dropped; keep zero gradients flowing (as nn.MultiheadAttention does)
        # so that weight decay still sees the in-projection.
        return (q + k + v) * 0.0
    if seed is None:
        seed = int(torch.randint(0, 2**62, (1,)).item()) if p > 0 else 0
    block_rows = block_rows or default_block_rows(q.shape[1], q.device)
    return _ScalarTokenAttention.apply(q.contiguous(), k.contiguous(), v.contiguous(), float(p), seed, block_rows)


class ScalarTokenAttention(nn.Module):
    """``nn.MultiheadAttention(1, 1, dropout)`` over the d entries of (N, d) vectors.

    Same parameters and initialisation as that module: in-projection (w_q, w_k, w_v)
    xavier-uniform with zero bias, out-projection weight U(−1, 1) with zero bias.
    """

    def __init__(self, dropout: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"attention dropout must be in [0, 1], got {dropout}")
        self.dropout = float(dropout)
        self.in_weight = nn.Parameter(torch.empty(3))
        self.in_bias = nn.Parameter(torch.zeros(3))
        self.out_weight = nn.Parameter(torch.empty(1))
        self.out_bias = nn.Parameter(torch.zeros(1))
        bound = math.sqrt(6.0 / (1 + 3))
        nn.init.uniform_(self.in_weight, -bound, bound)
        nn.init.uniform_(self.out_weight, -1.0, 1.0)

    def forward(self, query: torch.Tensor, key_value: torch.Tensor) -> torch.Tensor:
        w, b = self.in_weight, self.in_bias
        q = query * w[0] + b[0]
        k = key_value * w[1] + b[1]
        v = key_value * w[2] + b[2]
        p = self.dropout if self.training else 0.0
        return scalar_token_attention(q, k, v, p) * self.out_weight + self.out_bias
