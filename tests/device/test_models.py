"""Every model's loss terms and parameter gradients on a fixed batch at fixed weights, on every
device, against the same model in float64 on the CPU (and, on CUDA, against float32 on the CPU).

The model is built on the CPU; its state dict is loaded into the same model built on
``device`` (whose graphs that device's GraphStore builds). No training step runs in between.
The losses are made free of random draws: REARM without attention dropout, SIGER with zero
perturbation (``noise_norm`` 0), FREEDOM with one pruned user-item graph drawn on the CPU and given to
both, CLHE with a modality-dropout rate of 0 and no bundle-level contrast.

Float32 error: sums run in another order on every device (MKL, cuSPARSE, cuBLAS and
``index_add_``, which is atomic on CUDA), so each gradient is compared with a normwise
tolerance: max |g − g_ref| ≤ 1e-4 · max |g_ref| + 1e-5 · (largest gradient entry of the
model). The second term covers gradients that are zero in exact arithmetic (a bias followed
by LayerNorm or a softmax shift), where float32 leaves rounding noise. Measured on the CPU:
float32 against float64 at most 3e-6 relative per parameter, 3e-7 against the largest entry.
"""
from __future__ import annotations

from functools import lru_cache

import pytest
import torch

from recsys.compose import build, resolve
from recsys.data.synthetic import generate
from recsys.models import available_models, get_model_class
from recsys.nn import compact_csr
from tests.bundles.synthetic import planted_bundles

RTOL, ATOL_OF_LARGEST, LOSS_RTOL = 1e-4, 1e-5, 1e-5
CPU = torch.device("cpu")
INTERACTION_MODELS = [m for m in available_models() if get_model_class(m).task == "interaction"]
BUNDLE_MODELS = [m for m in available_models() if get_model_class(m).task == "bundle"]
DETERMINISTIC = {
    "rearm": {"self_attention_dropout": 0.0, "cross_attention_dropout": 0.0, "item_knn_k": 5, "user_knn_k": 8},
    "siger": {"noise_norm": 0.0},
    "freedom": {"item_knn_k": 5},
    "clhe": {"item_augment": "modality_dropout", "item_augment_dropout": 0.0, "bundle_cl_weight": 0.0,
             "cf_source": "lightgcn"},
}


@lru_cache(maxsize=None)
def _dataset(task: str):
    if task == "bundle":
        return planted_bundles(n_items=60, n_bundles=120, n_users=30)
    return generate(n_users=120, n_items=80, n_clusters=4, interactions_per_user=8, informative_dim=12, noise_dim=20,
                    seed=3)


def _config(name: str) -> dict:
    return resolve({"cache_dir": None, "model": {"name": name, "embedding_size": 16, **DETERMINISTIC.get(name, {})},
                    "train": {"batch_size": 64}})


class _Fixed:
    """The random parts of a model's loss, drawn once on the CPU and given to every copy."""

    def __init__(self, model) -> None:
        self.pruned = None
        if model.name == "freedom":
            self.pruned = model.graphs.pruned_user_item(model.edge_dropout, seed=0, epoch=1)

    def apply(self, model, device: torch.device, dtype: torch.dtype) -> None:
        if self.pruned is not None:
            model.pruned_adjacency = compact_csr(self.pruned.to(device=device, dtype=dtype))


def _loss_and_gradients(model, batch) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor | None]]:
    model.zero_grad(set_to_none=True)
    losses = model.loss(*batch)
    losses["loss"].backward()
    return ({k: v.detach().double().cpu() for k, v in losses.items()},
            {n: None if p.grad is None else p.grad.detach().double().cpu() for n, p in model.named_parameters()})


def _assert_close(got, reference, what: str) -> None:
    (losses, grads), (ref_losses, ref_grads) = got, reference
    assert losses.keys() == ref_losses.keys(), what
    for key, ref in ref_losses.items():
        torch.testing.assert_close(losses[key], ref, rtol=LOSS_RTOL, atol=1e-7, msg=lambda m: f"{what} {key}: {m}")
    assert grads.keys() == ref_grads.keys(), what
    assert [n for n, g in grads.items() if g is None] == [n for n, g in ref_grads.items() if g is None], what
    largest = max(float(g.abs().max()) for g in ref_grads.values() if g is not None)
    assert largest > 0, what
    for name, ref in ref_grads.items():
        if ref is None:
            continue
        error = float((grads[name] - ref).abs().max())
        bound = RTOL * float(ref.abs().max()) + ATOL_OF_LARGEST * largest
        assert error <= bound, f"{what}: gradient of {name} differs by {error:.3g} (allowed {bound:.3g})"


def _parity(name: str, device: torch.device) -> None:
    task = get_model_class(name).task
    dataset, config = _dataset(task), _config(name)
    cpu = build(config, CPU, dataset, pretrain=False)
    model = cpu.model.train()
    for key, buffer in model.state_dict().items():        # CLHE's pre-trained CF table: not all zeros
        if key.endswith(".cf"):
            buffer.copy_(torch.randn(buffer.shape, generator=torch.Generator().manual_seed(5)))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    fixed = _Fixed(model)
    fixed.apply(model, CPU, torch.float32)
    batch = next(iter(cpu.task.batches(1)))
    cpu32 = _loss_and_gradients(model, batch)

    on_device = build(config, device, dataset, pretrain=False)
    on_device.model.load_state_dict(state)
    on_device.model.train()
    fixed.apply(on_device.model, device, torch.float32)
    assert all(p.device.type == device.type for p in on_device.model.parameters())
    got = _loss_and_gradients(on_device.model, [b.to(device) for b in batch])

    model.double()
    fixed.apply(model, CPU, torch.float64)
    cpu64 = _loss_and_gradients(model, batch)
    _assert_close(got, cpu64, f"{name} on {device.type} vs float64 on the CPU")
    _assert_close(got, cpu32, f"{name} on {device.type} vs float32 on the CPU")


@pytest.mark.parametrize("name", INTERACTION_MODELS)
def test_interaction_model_loss_and_gradients(device, name):
    _parity(name, device)


@pytest.mark.parametrize("name", BUNDLE_MODELS)
def test_bundle_model_loss_and_gradients(device, name):
    _parity(name, device)


def test_every_model_is_covered():
    assert set(INTERACTION_MODELS) | set(BUNDLE_MODELS) == set(available_models())
    assert set(DETERMINISTIC) <= set(available_models())
    assert {"bpr", "lightgcn", "vbpr", "freedom", "siger", "rearm"} <= set(INTERACTION_MODELS)
