"""A trainable feature table projected by a linear map, with reusable gradient memory.

REARM trains its item feature tables X (I × D) and user interest tables P (U × D), D up to
4,096, through Linear(D → d): y = X Wᵀ + b. The backward pass is

    ∂W = ∂yᵀ X,   ∂b = Σ_rows ∂y,   ∂X = ∂y W      (n × d times d × D: a dense n × D matrix)

so every step produces a fresh n × D gradient (118 MB for 7,226 users × 4,096). On CPU a fresh
allocation of that size is new memory from the operating system: each 4 KB page is faulted
in and zeroed on first write and returned when the gradient is freed (the trainer drops
gradients with ``zero_grad(set_to_none=True)``), which cost more than the product itself.
Here ∂X is written into memory kept by a :class:`GradientMemory` from step to step and
handed to autograd as a new tensor over that memory, which autograd stores as ``X.grad``
without a copy. Values and semantics are those of the plain expression: when ``X.grad``
already holds a gradient (accumulation over several backward passes), ∂X goes to fresh
memory and autograd adds it as usual (likewise for a table that is not a leaf). The one
difference: a reference to ``X.grad`` kept
across a later backward pass sees that pass's gradient, since the memory is reused.
The products go through :mod:`recsys.nn.dense` (oneDNN on CPU).

Update in the backward pass. When the memory carries a row update (``GradientMemory.update``,
set by the trainer: :mod:`recsys.training.table_step`), ∂X is never stored whole: it is formed
in blocks of rows, ∂X[r] = ∂y[r] W, and each block is handed to the update while it is in
cache, which applies the optimiser step to X[r] at once; autograd then receives no gradient
for X (``X.grad`` stays None). ∂W = ∂yᵀ X is formed first, from X before its update. This
removes the n × D gradient from memory (for Clothing's tables, 1.1 GB) and one write and
read of it per step.
"""
from __future__ import annotations

from typing import Callable, Iterator

import torch

from recsys.nn.dense import autocast_active, linear, matmul, matmul_into, row_blocks

RowUpdate = Callable[[torch.Tensor, Iterator[tuple[slice, torch.Tensor]]], None]


class GradientMemory:
    """Where the gradient of one table goes: memory reused from one backward pass to the next
    or, when ``update`` is set, an update applied block by block in the backward pass.

    ``update(table, blocks)`` receives the table and an iterator of ``(rows, ∂X[rows])``
    covering every row once; each block is valid only until the next one is drawn.
    """

    def __init__(self) -> None:
        self._memory: torch.Tensor | None = None
        self.update: RowUpdate | None = None

    def like(self, table: torch.Tensor) -> torch.Tensor:
        memory = self._memory
        if memory is None or memory.shape != table.shape or memory.dtype != table.dtype \
                or memory.device != table.device:
            memory = self._memory = torch.empty_like(table, memory_format=torch.contiguous_format)
        return memory


def project_table(table: torch.Tensor, projection: torch.nn.Linear, memory: GradientMemory) -> torch.Tensor:
    """``projection(table)`` (X Wᵀ + b), with ∂X written into ``memory`` (see module docstring);
    under autocast simply ``projection(table)``."""
    if autocast_active(table):
        return projection(table)
    return _TableProjection.apply(table, projection.weight, projection.bias, memory)


class _TableProjection(torch.autograd.Function):
    @staticmethod
    def forward(ctx, table, weight, bias, memory):
        ctx.save_for_backward(table, weight)
        ctx.memory = memory
        return linear(table, weight, bias)

    @staticmethod
    def backward(ctx, grad):
        table, weight = ctx.saved_tensors
        grad_weight = matmul(grad.t(), table) if ctx.needs_input_grad[1] else None
        grad_bias = grad.sum(0) if ctx.needs_input_grad[2] else None
        grad_table = None
        if ctx.needs_input_grad[0]:
            updatable = table.is_leaf and table.grad is None
            if updatable and ctx.memory.update is not None:
                ctx.memory.update(table, row_blocks(grad, weight))
            elif updatable:
                grad_table = matmul_into(grad, weight, ctx.memory.like(table)).detach()
            else:
                grad_table = matmul(grad, weight)
        return grad_table, grad_weight, grad_bias, None
