"""Mixed precision (``train.amp``): which dtypes the trainer's autocast region really uses, and
how far the loss moves from float32.

Inside :meth:`Trainer._autocast` every dense matrix product (``nn.Linear``, ``@``, ``bmm``)
must run in the 16-bit dtype and every sparse graph product in float32
(``recsys.nn.propagation``); the loss terms stay within a stated tolerance of float32 at the
same weights and batch, and the gradients point the same way. bf16 runs on the CPU (CPU
autocast supports it) and on CUDA; fp16 on CUDA only. Models whose loss has no dense product
(BPR-MF, LightGCN: gathers, sparse products and element-wise ops) give float32 results
unchanged; that is asserted too, so a claim that they "use" mixed precision would fail here.
"""
from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from recsys.compose import build, resolve
from recsys.training import Trainer
from tests.device.test_models import DETERMINISTIC, _dataset

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
LOSS_RTOL = {"bf16": 1e-2, "fp16": 2e-3}   # per loss term, relative; plus 1e-5 absolute for tiny terms
DENSE_PRODUCTS = {"mm", "addmm", "bmm", "baddbmm", "addbmm"}
WITH_DENSE_PRODUCTS = ["vbpr", "freedom", "siger", "rearm", "clhe"]
SPARSE_ONLY = ["bpr", "lightgcn"]


class _ProductDtypes(TorchDispatchMode):
    """Output dtypes of the dense and the sparse matrix products run inside the mode (after
    autocast has cast their inputs)."""

    def __init__(self) -> None:
        super().__init__()
        self.dense: set[torch.dtype] = set()
        self.sparse: set[torch.dtype] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        if any(t.layout != torch.strided for t in tensors) and torch.is_tensor(out):
            self.sparse.add(out.dtype)
        elif func.overloadpacket.__name__ in DENSE_PRODUCTS:
            self.dense.add(out.dtype)
        return out


def _amp_device(device: torch.device, amp: str) -> None:
    if amp == "fp16" and device.type != "cuda":
        pytest.skip("fp16 autocast is checked on CUDA only")


def _run(name: str, device: torch.device, amp: str | None, tmp_path):
    task = "bundle" if name == "clhe" else "interaction"
    config = resolve({"cache_dir": None, "model": {"name": name, "embedding_size": 16, **DETERMINISTIC.get(name, {})},
                      # every parameter's gradient is compared: with the amp switched off the Trainer's
                      # settings would otherwise step REARM's feature tables inside the backward pass
                      "train": {"batch_size": 64, "amp": amp, "progress": False, "tables_in_backward": False}})
    run = build(config, device, _dataset(task), pretrain=False)
    if name == "freedom":
        run.model.edge_dropout = 0.0          # the full user-item graph: no random pruning between the two passes
    run.model.pre_epoch(1)
    trainer = Trainer(run.model.train(), run.task, config["train"], tmp_path)
    batch = [b.to(device) for b in next(iter(run.task.batches(1)))]
    return run.model, trainer, batch


def _loss_and_gradient(model, trainer, batch, record=None):
    model.zero_grad(set_to_none=True)
    with trainer._autocast():
        if record is None:
            losses = model.loss(*batch)
        else:
            with record:
                losses = model.loss(*batch)
    losses["loss"].backward()
    grad = torch.cat([p.grad.flatten().float() for p in model.parameters() if p.grad is not None])
    return {k: float(v.detach()) for k, v in losses.items()}, grad


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
@pytest.mark.parametrize("name", WITH_DENSE_PRODUCTS)
def test_dense_products_run_in_16_bits_sparse_in_32_and_the_loss_stays_close(device, amp, name, tmp_path):
    _amp_device(device, amp)
    model, trainer, batch = _run(name, device, amp, tmp_path)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    linear_outputs: list[torch.dtype] = []
    hooks = [m.register_forward_hook(lambda module, args, out: linear_outputs.append(out.dtype))
             for m in model.modules() if isinstance(m, torch.nn.Linear)]
    products = _ProductDtypes()
    mixed, mixed_grad = _loss_and_gradient(model, trainer, batch, products)
    for hook in hooks:
        hook.remove()
    assert set(linear_outputs) <= {DTYPES[amp]}, linear_outputs       # SIGER projects with `@`, not Linear
    assert products.dense == {DTYPES[amp]}
    assert products.sparse <= {torch.float32}

    model.load_state_dict(state)
    trainer.cfg = {**trainer.cfg, "amp": None}
    full, full_grad = _loss_and_gradient(model, trainer, batch)
    assert mixed.keys() == full.keys()
    for key, value in full.items():
        assert abs(mixed[key] - value) <= LOSS_RTOL[amp] * abs(value) + 1e-5, (key, mixed[key], value)
    assert torch.isfinite(mixed_grad).all()
    assert float(torch.nn.functional.cosine_similarity(mixed_grad, full_grad, dim=0)) > 0.99


@pytest.mark.parametrize("name", SPARSE_ONLY)
def test_models_without_dense_products_are_unchanged_by_autocast(device, name, tmp_path):
    model, trainer, batch = _run(name, device, "bf16", tmp_path)
    products = _ProductDtypes()
    mixed, mixed_grad = _loss_and_gradient(model, trainer, batch, products)
    assert not products.dense and products.sparse <= {torch.float32}
    trainer.cfg = {**trainer.cfg, "amp": None}
    full, full_grad = _loss_and_gradient(model, trainer, batch)
    if device.type == "cpu":
        assert mixed == full and torch.equal(mixed_grad, full_grad)
    else:                            # CUDA accumulates gathered rows' gradients atomically, in any order
        assert mixed == pytest.approx(full, rel=1e-6)
        assert float((mixed_grad - full_grad).abs().max()) <= 1e-6 * float(full_grad.abs().max())


@pytest.mark.parametrize("amp", [None, "bf16", "fp16"])
def test_the_training_loop_runs_under_the_configured_autocast(device, amp, tmp_path):
    if amp is not None:
        _amp_device(device, amp)
    model, trainer, _ = _run("vbpr", device, amp, tmp_path)
    trainer.cfg = {**trainer.cfg, "epochs": 1}
    seen: dict[bool, set[torch.dtype]] = {True: set(), False: set()}
    model.projection.register_forward_hook(lambda module, args, out: seen[module.training].add(out.dtype))
    assert trainer.fit()["epoch"] == 1
    assert seen[True] == {DTYPES[amp] if amp else torch.float32}, "training steps"
    assert seen[False] == {torch.float32}, "evaluation runs outside autocast"
