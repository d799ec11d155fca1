"""Data-parallel training with ``torch.distributed`` (launched by ``torchrun``).

Every rank holds the full graphs and model; each global batch of triples is split into
equal contiguous shards, one per rank, and DistributedDataParallel averages the gradients.
Because every loss here is a mean over the batch (and the batch L2 term is divided by the
batch size), the averaged gradient equals the single-process gradient of the whole batch up
to float rounding (and the last, smaller batch of an epoch). Evaluation, checkpoints and
logs happen on rank 0; its early-stopping decision is broadcast so all ranks stop together.
"""
from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(device: torch.device) -> None:
    """Join the process group torchrun describes (gloo on CPU, NCCL on CUDA)."""
    if dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend)
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))


def local_device(device: torch.device) -> torch.device:
    if device.type == "cuda" and launched_by_torchrun():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main() -> bool:
    return rank() == 0


def wrap(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` in DistributedDataParallel when several ranks run, else itself.

    Graph buffers (sparse, built identically from the same data on every rank) are left out
    of DDP's buffer synchronisation, which handles dense tensors only.
    """
    if world_size() == 1:
        return model
    sparse_buffers = [name for name, buf in model.named_buffers() if buf.layout != torch.strided]
    DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(model, sparse_buffers)
    return DistributedDataParallel(model, forward_sync_buffers=False)


def shard(batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """This rank's contiguous share of a global batch."""
    world = world_size()
    if world == 1:
        return batch
    size = batch[0].shape[0]
    bounds = [size * r // world for r in range(world + 1)]
    return tuple(t[bounds[rank()]:bounds[rank() + 1]] for t in batch)


def broadcast(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if world_size() == 1:
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
