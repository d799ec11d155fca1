"""Check a run without training it: ``recsys train --dry-run``.

:func:`inspect_run` takes a config from :func:`recsys.compose.resolve` (which has checked its
values: monitored metric, cut-offs, optimiser, positive integers), checks that its device is
present, loads and validates the dataset, builds the model and the task exactly as training
would, and reports:

* the dataset's users, items, interactions per split and feature shapes;
* the model's parameter count (trainable and frozen);
* every graph the model asks for (when it is built and, through ``model.pre_epoch(1)``, before
  its first epoch), with its shape and number of stored entries (nnz). The model is built on a
  :class:`recsys.graphs.GraphStore` in planning mode, the same builders as in training: the
  cheap graphs are built for real, the expensive ones are sized by their builder module from
  their definition and the model receives an empty matrix of the right shape in their place,
  which is all its constructor needs to allocate its parameters. Pre-training steps are not
  run (their results are zeros of the same shapes);
* an estimate of the device memory of a training step: parameters, gradients and the two
  Adam moments (16 bytes per trainable parameter), buffers, the graphs (CSR: 12 bytes per
  entry + 8 per row), the propagated embeddings kept for the backward pass
  ((U+I)·d·(L+1) floats, twice) and one evaluation block (eval.batch_size × I scores, twice
  for the masked copy). It is a floor for planning, not a measurement.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from recsys.compose import build, resolve_device
from recsys.data.loading import load_dataset
from recsys.errors import ConfigError
from recsys.graphs import GraphStore, PlannedGraph

FLOAT = 4
ADAM_BYTES_PER_PARAM = 4 * FLOAT  # value, gradient, first and second moment


@dataclass
class DryRunReport:
    config: dict
    dataset_stats: dict
    device: str
    trainable: int
    frozen: int
    buffer_bytes: int
    graphs: list[PlannedGraph] = field(default_factory=list)
    batches_per_epoch: int = 0
    memory: dict[str, int] = field(default_factory=dict)

    @property
    def memory_total(self) -> int:
        return sum(self.memory.values())

    def render(self) -> str:
        return _render(self)


def _device(config: dict) -> torch.device:
    try:
        return resolve_device(config["device"])
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(str(exc)) from exc


def _activation_bytes(model_config: dict, n_nodes: int) -> int:
    dim = int(model_config.get("embedding_size", 64))
    layers = int(model_config.get("n_layers", 0))
    return 2 * n_nodes * dim * (layers + 1) * FLOAT


def inspect_run(config: dict, dataset=None) -> DryRunReport:
    """Validate ``config`` (resolved, so its values are checked) and its data; build the model
    with graph estimates."""
    device = _device(config)
    dataset = dataset if dataset is not None else load_dataset(config["dataset"])
    cpu = torch.device("cpu")
    store = GraphStore(dataset, cpu, planning=True)
    run = build(config, cpu, dataset, graphs=store, pretrain=False)
    model, task = run.model, run.task
    model.pre_epoch(1)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    buffer_bytes = sum(b.numel() * b.element_size() for b in model.buffers() if b.layout == torch.strided)
    n_batches = getattr(task, "n_batches", None)
    report = DryRunReport(config=config, dataset_stats=dataset.stats(), device=str(device), trainable=trainable,
                          frozen=frozen, buffer_bytes=buffer_bytes, graphs=store.plan,
                          batches_per_epoch=int(n_batches()) if callable(n_batches) else 0)
    report.memory = {
        "parameters, gradients, Adam": trainable * ADAM_BYTES_PER_PARAM + frozen * FLOAT,
        "buffers": buffer_bytes,
        "graphs": sum(g.bytes for g in store.plan),
        "propagated embeddings": _activation_bytes(config["model"], dataset.n_users + dataset.n_items),
        "evaluation block": 2 * min(int(config["eval"]["batch_size"]), dataset.n_users) * dataset.n_items * FLOAT,
    }
    return report


def dry_run(config: dict, dataset=None) -> str:
    """The text report of :func:`inspect_run` (raises ConfigError/DataError on a bad config or data)."""
    return inspect_run(config, dataset).render()


def _mib(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB"


def _render(r: DryRunReport) -> str:
    s, cfg = r.dataset_stats, r.config
    model_params = ", ".join(f"{k}={v}" for k, v in cfg["model"].items() if k != "name")
    lines = [
        "dry run: the config and the data are valid; nothing was trained",
        f"dataset   {s['name']} ({cfg['dataset']['format']}): {s['users']:,} users, {s['items']:,} items, "
        f"{s['interactions']:,} interactions (train {s['train']:,} / valid {s['valid']:,} / test {s['test']:,}), "
        f"density {1 - s['sparsity']:.2e}",
        "features  " + (", ".join(f"{m} {shape[0]:,} x {shape[1]}" for m, shape in sorted(s["features"].items()))
                        or "none"),
        f"model     {cfg['model']['name']} ({model_params})",
        f"params    {r.trainable:,} trainable" + (f" + {r.frozen:,} frozen" if r.frozen else ""),
        "graphs    (nnz = stored entries; '<=' = bound; 'planned' = sized from its definition, not built)",
    ]
    for g in r.graphs:
        shape = " x ".join(f"{d:,}" for d in g.size.shape)
        kind = "dense" if g.size.dense else ("" if g.size.exact else "<=")
        built = "" if g.built else "planned"
        lines.append(f"  {g.call}")
        lines.append(f"  {'':<8}{shape:>21}  {kind:>5} {g.size.nnz:>14,} nnz  {_mib(g.bytes):>12}  {built}")
    if not r.graphs:
        lines.append("  none")
    train = cfg["train"]
    lines.append(f"training  batch {train['batch_size']:,} -> {r.batches_per_epoch:,} batches per epoch, up to "
                 f"{train['epochs']:,} epochs, early stopping on valid {train['monitor']} "
                 f"(patience {train['patience']}, every {train['eval_every']} epoch(s))")
    parts = ", ".join(f"{name} {_mib(n)}" for name, n in r.memory.items())
    lines.append(f"memory    ~{_mib(r.memory_total)} on {r.device} (estimate: {parts})")
    if r.device.startswith("cuda") and torch.cuda.is_available():
        free, total = torch.cuda.mem_get_info(torch.device(r.device))
        verdict = "fits" if r.memory_total < free else "does NOT fit"
        lines.append(f"          {verdict} in the {_mib(free)} free of {_mib(total)} on {r.device}")
    return "\n".join(lines)
