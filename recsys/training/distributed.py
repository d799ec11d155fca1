"""Data-parallel training with ``torch.distributed`` (launched by ``torchrun``).

Every rank holds the full graphs and model; each global batch of triples is split into
equal contiguous shards, one per rank, and DistributedDataParallel averages the gradients.
Because every loss here is a mean over the batch (and the batch L2 term is divided by the
batch size), the averaged gradient equals the single-process gradient of the whole batch up
to float rounding (and the last, smaller batch of an epoch). Evaluation, checkpoints and
logs happen on rank 0; its early-stopping decision is broadcast so all ranks stop together.

Backends: gloo on CPU; NCCL on CUDA, one GPU per process (``cuda:LOCAL_RANK``).
"""
from __future__ import annotations

import gc
import os
import weakref
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from recsys.errors import ConfigError


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def backend_for(device: torch.device) -> str:
    """The collective backend for tensors on ``device``: NCCL for CUDA, gloo otherwise."""
    return "nccl" if device.type == "cuda" else "gloo"


def local_device(device: torch.device) -> torch.device:
    """This process's device: ``cuda:LOCAL_RANK`` for a CUDA run under torchrun, else ``device``.

    NCCL needs a distinct GPU per process on a machine; a rank whose local index has no GPU
    is a configuration error (too many processes for the visible GPUs).
    """
    if device.type != "cuda" or not launched_by_torchrun():
        return device
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    visible = torch.cuda.device_count()
    if local_rank >= visible:
        raise ConfigError(f"--nproc starts {os.environ.get('LOCAL_WORLD_SIZE', local_rank + 1)} processes on this "
                          f"machine but only {visible} CUDA device(s) are visible, and each process needs its own "
                          f"GPU; use --nproc {max(visible, 1)} or fewer, or device=cpu")
    return torch.device("cuda", local_rank)


def init(device: torch.device) -> None:
    """Join the process group torchrun describes (gloo on CPU, NCCL on this rank's GPU).

    ``torch.distributed.nn.functional`` is imported first, on purpose. Its functions take
    ``group=group.WORLD`` as a default argument, evaluated once, when the module is first
    imported; DistributedDataParallel imports it on first construction (through
    torch._dynamo, FSDP and sharded tensors). Imported after ``init_process_group``, those
    defaults hold the default process group for the rest of the process, so
    ``destroy_process_group`` cannot free it and gloo's worker threads outlive it. A worker
    that is still dropping the tensors of the last collective (the final broadcast of the
    results) when the interpreter finalises then needs the GIL, which a finalising
    interpreter refuses by ending the thread; that thread exit unwinds through a ``noexcept``
    destructor and aborts the rank ("terminate called without an active exception",
    SIGABRT) at random, after training succeeded. Imported before, the defaults hold
    ``None`` and :func:`shutdown` really destroys the group and joins its threads.
    """
    if dist.is_initialized():
        return
    import torch.distributed.nn.functional  # noqa: F401  (see the docstring: must precede init_process_group)

    device = local_device(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend_for(device))


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
    device_ids = [model.device.index] if model.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids, forward_sync_buffers=False)


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
    """Destroy the process group, and fail loudly if anything still holds it.

    Destroying the group joins the backend's worker threads while the interpreter is fully
    alive; a group that something still references survives ``destroy_process_group`` and
    its threads can abort the process at exit (see :func:`init`). Call this after the
    DistributedDataParallel module is gone (it references the group too).
    """
    if not dist.is_initialized():
        return
    group = weakref.ref(dist.group.WORLD)
    dist.destroy_process_group()
    if group() is not None:
        gc.collect()
    if group() is not None:
        raise RuntimeError("the default process group is still referenced after destroy_process_group (by "
                           f"{', '.join(_holders(group())) or 'an object outside the garbage collector'}); its "
                           "worker threads would outlive it and can abort the process at exit. Release those "
                           "references before recsys.training.distributed.shutdown()")


def _holders(obj: object) -> list[str]:
    """What references ``obj``: functions (also through their default-argument tuples) by
    qualified name, other objects by type. Plain loops only: a comprehension here would hold
    ``obj`` in a closure cell and report itself."""
    found = []
    for holder in gc.get_objects():
        for ref in gc.get_referents(holder):
            if ref is obj or (type(ref) is tuple and _contains(ref, obj)):
                if callable(holder) and hasattr(holder, "__qualname__"):
                    found.append(f"{getattr(holder, '__module__', '?')}.{holder.__qualname__}")
                else:
                    found.append(type(holder).__name__)
                break
    return found


def _contains(items: tuple, obj: object) -> bool:
    for item in items:
        if item is obj:
            return True
    return False
