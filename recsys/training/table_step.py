"""The optimiser step of large feature tables, applied inside the backward pass.

A model's trainable feature tables X (n × D, D up to 4,096: REARM's item feature tables and
user interest tables) are projected through :func:`recsys.nn.feature_table.project_table`,
whose backward pass can hand ∂X to an update block of rows by block of rows instead of
storing it (:meth:`recsys.models.base.Recommender.feature_tables` lists them). This module
makes that update the run's own optimiser step: Adam or AdamW of ``torch.optim``, per element

    t ← t + 1,  m ← β₁m + (1 − β₁)g,  v ← β₂v + (1 − β₂)g²,
    x ← x − lr·λx − lr·(m / (1 − β₁ᵗ)) / (√(v / (1 − β₂ᵗ)) + ε)     (AdamW; Adam adds λx to g),

computed by torch's own kernel (the fused one when the optimiser is fused) on each row block,
with the optimiser's state tensors (``optimizer.state[X]``: step, exp_avg, exp_avg_sq) and its
parameter group's hyper-parameters read at every step. The update is elementwise, so applying
it block by block is the same step; checkpoints (``optimizer.state_dict()``), resuming and
learning-rate changes (``train.lr_plateau``) cover the tables as before. The table's gradient
is never stored: for Clothing's tables (62,420 rows × 4,480 floats) 1.1 GB less memory and
one write and read of it fewer per step.

It applies when ``train.tables_in_backward`` is true (the default), ``train.grad_clip`` is off
(a global norm needs every gradient before any step) and the run is not data-parallel (there
each rank's gradient is averaged before the step); otherwise the tables' gradients are stored
and stepped with the rest. Under autocast (``train.amp``) the projection is plain autograd, so
the tables are stepped with the rest too. A non-finite gradient of a table comes from a
non-finite ∂y, which also makes the projection's ∂W = ∂yᵀX non-finite: the trainer's check of
the gradients it holds still stops the run at that step, after the tables were updated; the
checkpoints kept (``best.pt``, and ``last.pt`` of the previous epoch) do not contain that step.
"""
from __future__ import annotations

import logging
from typing import Iterator

import torch
from torch.optim.adam import adam

from recsys.training import distributed

log = logging.getLogger("recsys.train")


def applies(train_config: dict) -> bool:
    """Whether the run's settings let feature tables be stepped in the backward pass."""
    return bool(train_config.get("tables_in_backward", True)) and not train_config.get("grad_clip") \
        and distributed.world_size() == 1


def elements_in_backward(model, train_config: dict) -> int:
    """How many parameter elements the run steps in the backward pass: those of ``model``'s
    trainable feature tables where :func:`applies` allows it (their gradients are never stored)."""
    if not applies(train_config):
        return 0
    return sum(table.numel() for table, _ in model.feature_tables() if table.requires_grad)


def attach(model, optimizer: torch.optim.Optimizer, train_config: dict) -> int:
    """Make ``optimizer``'s step of each of ``model``'s feature tables part of the backward
    pass where :func:`applies` allows it (and detach it otherwise); returns how many tables
    are stepped there."""
    tables = [(table, memory) for table, memory in model.feature_tables() if table.requires_grad]
    use = applies(train_config) and isinstance(optimizer, torch.optim.Adam)
    for table, memory in tables:
        memory.update = AdamTableStep(optimizer, table) if use else None
    if use and tables:
        log.info("%d feature tables (%.0f MB) are stepped in the backward pass", len(tables),
                 sum(t.numel() * t.element_size() for t, _ in tables) / 1e6)
    return len(tables) if use else 0


def detach(model) -> None:
    """Stop stepping ``model``'s feature tables in the backward pass: their update hooks (and
    the hold these keep on the optimiser and its state) are dropped; gradients are stored again."""
    for _, memory in model.feature_tables():
        memory.update = None


class AdamTableStep:
    """One table's Adam/AdamW step, applied to the row blocks of its gradient (module docstring)."""

    def __init__(self, optimizer: torch.optim.Adam, table: torch.nn.Parameter) -> None:
        self.optimizer = optimizer
        self.table = table

    def _group(self) -> dict:
        return next(g for g in self.optimizer.param_groups if any(p is self.table for p in g["params"]))

    def _state(self, group: dict) -> dict:
        """``optimizer.state[table]``, initialised as ``torch.optim.Adam`` does on its first step."""
        state = self.optimizer.state[self.table]
        if not state:
            table = self.table
            on_device = group["fused"] or group["capturable"]
            state["step"] = torch.zeros((), dtype=torch.float32, device=table.device) if on_device \
                else torch.tensor(0.0, dtype=torch.float32)
            state["exp_avg"] = torch.zeros_like(table, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(table, memory_format=torch.preserve_format)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = torch.zeros_like(table, memory_format=torch.preserve_format)
        return state

    @torch.no_grad()
    def __call__(self, table: torch.Tensor, blocks: Iterator[tuple[slice, torch.Tensor]]) -> None:
        group = self._group()
        state = self._state(group)
        beta1, beta2 = group["betas"]
        step = state["step"]
        for rows, grad in blocks:
            block_step = step.clone()
            adam(
                [table[rows]], [grad], [state["exp_avg"][rows]], [state["exp_avg_sq"][rows]],
                [state["max_exp_avg_sq"][rows]] if group["amsgrad"] else [], [block_step],
                foreach=False, fused=bool(group["fused"]), capturable=bool(group["capturable"]),
                decoupled_weight_decay=bool(group["decoupled_weight_decay"]), amsgrad=bool(group["amsgrad"]),
                beta1=beta1, beta2=beta2, lr=group["lr"], weight_decay=group["weight_decay"], eps=group["eps"],
                maximize=bool(group["maximize"]))
        step.add_(1)
