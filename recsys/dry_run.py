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
* an estimate of the peak memory of training, the largest of three phases:

  - build: the graphs (as the store holds them, :mod:`recsys.graphs.planning`), the largest
    working memory of a graph builder (stated next to each builder), the parameters, dense
    buffers and the task's arrays (the negative sampler's keys and an epoch of triples);
  - step: the same without the builder's work, plus the gradients (not those of the feature
    tables stepped in the backward pass, :mod:`recsys.training.table_step`) and the larger of the
    optimiser's two moments and what the model's forward and backward passes hold at their
    peak (:meth:`recsys.models.base.Recommender.step_memory`, model by model, for the batch's
    expected numbers of distinct users and items, computed from the train degrees);
  - evaluation: the step's tensors with the optimiser state, the ranking representations
    (:meth:`~recsys.models.base.Recommender.ranking_memory`) and the larger of their
    temporaries and the score blocks (min(eval.batch_size, 2^26 / I) rows of I floats, two
    blocks when there is more than one).

What is estimated is the quantity :func:`measure_memory` measures: the peak resident memory
of a fresh process that builds the run with a cold graph cache and without its pre-training
steps, runs one training step as the Trainer does and one evaluation of the valid split,
minus its resident memory after importing torch, loading the data (with its split matrices)
and running the same on a miniature of the data (which loads libraries and starts thread
pools). The process uses one torch thread, and glibc's mmap threshold is fixed at 128 KiB
(``MALLOC_MMAP_THRESHOLD_``): larger blocks go back to the system when freed, so the peak
follows the live tensors rather than what the allocator keeps cached (the analogue of
``torch.cuda.max_memory_allocated``). The estimate is checked against it for every model
(tests/reliability/test_dry_run.py, within ±30 %) and for REARM on Baby-sized data
(bench/dry_run_memory.py).
"""
from __future__ import annotations

import dataclasses
import gc
import json
import os
import pickle
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from recsys.compose import build, resolve_device
from recsys.data.loading import load_dataset
from recsys.errors import ConfigError
from recsys.evaluation.ranking import SCORE_BLOCK_ELEMENTS
from recsys.graphs import GraphStore, PlannedGraph
from recsys.models import get_model_class
from recsys.training import table_step

FLOAT = 4
MMAP_THRESHOLD = 128 * 1024  # bytes: glibc's default, fixed in the measuring process (module docstring)


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
    memory_phases: dict[str, int] = field(default_factory=dict)

    @property
    def memory_total(self) -> int:
        """The estimated peak: the largest phase."""
        return max(self.memory_phases.values(), default=0)

    def render(self) -> str:
        return _render(self)


def _device(config: dict) -> torch.device:
    try:
        return resolve_device(config["device"])
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(str(exc)) from exc


def _distinct(degrees: np.ndarray, draws: int, population: float, extra: float = 1.0) -> float:
    """Expected number of distinct values among ``draws`` draws of records from a
    ``population``, value v being in ``degrees[v]`` of them; ``extra`` multiplies each value's
    probability of staying out (other draws of the batch)."""
    degrees = np.asarray(degrees, dtype=np.float64)
    if population <= 0:
        return 0.0
    missed = np.exp(draws * np.log1p(-np.minimum(degrees / population, 1.0))) * extra
    return float((1.0 - missed).sum())


def batch_stats(dataset, task_kind: str, batch_size: int) -> dict[str, float]:
    """The batch of a training step: ``size`` and the expected numbers of distinct users, items
    (positives) and items with the uniform negatives (interaction task), or of distinct items
    and the padded ``width`` (bundle task), for draws ∝ the train degrees."""
    if task_kind == "bundle":
        train = dataset.bundle_csr("train")
        bundles = int((np.diff(train.indptr) > 0).sum())
        size = min(batch_size, bundles)
        return {"size": size, "items": _distinct(np.diff(train.tocsc().indptr), size, bundles),
                "width": int(np.diff(train.indptr).max(initial=1))}
    train = dataset.csr("train")
    size = min(batch_size, train.nnz)
    item_degrees = np.diff(train.tocsc().indptr)
    uniform = (1.0 - 1.0 / max(1, dataset.n_items)) ** size
    return {"size": size, "users": _distinct(np.diff(train.indptr), size, train.nnz),
            "items": _distinct(item_degrees, size, train.nnz),
            "items_and_negatives": _distinct(item_degrees, size, train.nnz, uniform)}


def _evaluation_scores(config: dict, dataset, task_kind: str) -> int:
    """Score blocks of one evaluation (:func:`recsys.evaluation.evaluate_ranking`): B × I floats
    with B = min(eval.batch_size, 2^26 / I, rows evaluated); two blocks are alive while the next
    is scored when there is more than one."""
    if task_kind == "bundle":
        rows = dataset.heldout_bundles("valid").size
    else:
        rows = int((np.diff(dataset.csr("valid").indptr) > 0).sum())
    per_block = min(int(config["eval"]["batch_size"]), max(1, SCORE_BLOCK_ELEMENTS // max(1, dataset.n_items)),
                    max(1, rows))
    blocks = 2 if rows > per_block else 1
    return blocks * per_block * dataset.n_items * FLOAT


def _task_bytes(dataset, task_kind: str) -> int:
    """The task's arrays: the negative sampler's keys and one epoch of shuffled triples
    (interaction), or the padded train bundles and held-out inputs (bundle): int64 each."""
    if task_kind == "bundle":
        width = int(np.diff(dataset.bundle_csr("train").indptr).max(initial=1))
        return 8 * width * (dataset.train_bundles().size + dataset.n_bundles)
    return 8 * 6 * int(dataset.train.shape[1])


def estimate_memory(config: dict, dataset, model, store, model_cls) -> tuple[dict[str, int], dict[str, int]]:
    """(parts, phases) of the memory estimate, in bytes (module docstring)."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    in_backward = table_step.elements_in_backward(model, config["train"])
    stats = dataset.stats()
    batch = batch_stats(dataset, model_cls.task, int(config["train"]["batch_size"]))
    step = model_cls.step_memory(config["model"], stats, batch)
    ranking = model_cls.ranking_memory(config["model"], stats)
    parts = {
        "graphs": sum(g.bytes for g in store.plan),
        "graph building": max([g.size.work for g in store.plan], default=0),
        "parameters": total * FLOAT,
        "gradients": (trainable - in_backward) * FLOAT,
        "optimiser state": 2 * trainable * FLOAT,
        "buffers": sum(b.numel() * b.element_size() for b in model.buffers() if b.layout == torch.strided),
        "task": _task_bytes(dataset, model_cls.task),
        **{f"step: {name}": n for name, n in step.items()},
        **{f"ranking: {name}": n for name, n in ranking.items()},
        "evaluation scores": _evaluation_scores(config, dataset, model_cls.task),
    }
    held = parts["graphs"] + parts["parameters"] + parts["buffers"] + parts["task"]
    phases = {
        "build": held + parts["graph building"],
        "step": held + parts["gradients"] + max(sum(step.values()), parts["optimiser state"]),
        "evaluation": held + parts["gradients"] + parts["optimiser state"] + ranking.get("representations", 0)
        + max(ranking.get("temporaries", 0), parts["evaluation scores"]),
    }
    return parts, phases


def inspect_run(config: dict, dataset=None) -> DryRunReport:
    """Validate ``config`` (resolved, so its values are checked) and its data; build the model on
    a planning graph store and estimate the memory of training (module docstring)."""
    device = _device(config)
    dataset = dataset if dataset is not None else load_dataset(config["dataset"])
    cpu = torch.device("cpu")
    store = GraphStore(dataset, cpu, planning=True)
    run = build(config, cpu, dataset, graphs=store, pretrain=False)
    model, task = run.model, run.task
    model.pre_epoch(1)
    model_cls = get_model_class(config["model"]["name"])
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    buffer_bytes = sum(b.numel() * b.element_size() for b in model.buffers() if b.layout == torch.strided)
    n_batches = getattr(task, "n_batches", None)
    report = DryRunReport(config=config, dataset_stats=dataset.stats(), device=str(device), trainable=trainable,
                          frozen=frozen, buffer_bytes=buffer_bytes, graphs=store.plan,
                          batches_per_epoch=int(n_batches()) if callable(n_batches) else 0)
    report.memory, report.memory_phases = estimate_memory(config, dataset, model, store, model_cls)
    return report


def _status() -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS since the last reset) of this process, in bytes."""
    out = {}
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":")
                out[key] = int(value.split()[0]) * 1024
    return out


def _reset_peak() -> None:
    """Reset VmHWM to the current RSS (Linux ``clear_refs``)."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def _miniature(dataset):
    """A small dataset of the same kind for the warm-up run of :func:`measure_memory`: the first
    64 users and the items they interacted with (bundle data: the items of the first 32
    bundles), renumbered."""
    bundles = getattr(dataset, "bundle_pairs", None)
    n_bundles = min(32, getattr(dataset, "n_bundles", 0))
    n_users = min(64, dataset.n_users)
    if bundles is not None:
        items = np.unique(np.concatenate([pairs[1][pairs[0] < n_bundles] for pairs in bundles.values()]))
    else:
        items = np.unique(np.concatenate([dataset.split(s)[1][dataset.split(s)[0] < n_users]
                                          for s in ("train", "valid", "test")]))
    index = np.full(dataset.n_items, -1)
    index[items] = np.arange(items.size)

    def keep(pairs: np.ndarray, n_rows: int) -> np.ndarray:
        mask = (pairs[0] < n_rows) & (index[pairs[1]] >= 0)
        return np.stack([pairs[0][mask], index[pairs[1][mask]]])

    changes = {"n_users": n_users, "n_items": items.size, "user_ids": None, "item_ids": None,
               "features": {m: f[items] for m, f in dataset.features.items()},
               **{split: keep(dataset.split(split), n_users) for split in ("train", "valid", "test")}}
    if bundles is not None:
        changes.update(n_bundles=n_bundles, bundle_ids=None,
                       bundle_pairs={part: keep(pairs, n_bundles) for part, pairs in bundles.items()},
                       item_titles=None if dataset.item_titles is None else dataset.item_titles[items],
                       cf_features=None if dataset.cf_features is None else dataset.cf_features[items])
    return dataclasses.replace(dataset, **changes)


def _train_step_and_evaluate(config: dict, dataset) -> dict[str, int]:
    """Build the run (cold graph cache, pre-training replaced by placeholders), one training step
    as the Trainer runs it and one evaluation of the valid split; the peak RSS of each phase."""
    from recsys.training.trainer import make_optimizer

    peaks = {}
    _reset_peak()
    run = build(config, torch.device("cpu"), dataset, pretrain=False)
    peaks["build"] = _status()["VmHWM"]
    _reset_peak()
    model = run.model
    optimizer = make_optimizer([p for p in model.parameters() if p.requires_grad], config["train"])
    table_step.attach(model, optimizer, config["train"])
    model.pre_epoch(1)
    model.train()
    batches = run.task.batches(1)            # alive through the step, as in the Trainer's epoch loop
    loss = model(*next(batches))["loss"]
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    del loss
    optimizer.step()
    peaks["step"] = _status()["VmHWM"]
    del batches
    _reset_peak()
    run.task.evaluate(model, "valid")
    peaks["evaluation"] = _status()["VmHWM"]
    return peaks


def _measure_child(folder: str) -> None:
    folder = Path(folder)
    config = json.loads((folder / "config.json").read_text())
    torch.set_num_threads(1)
    dataset_file = folder / "dataset.pkl"
    dataset = pickle.loads(dataset_file.read_bytes()) if dataset_file.exists() else load_dataset(config["dataset"])
    dataset.csr("train")
    _train_step_and_evaluate(config, _miniature(dataset))
    gc.collect()
    baseline = _status()["VmRSS"]
    peaks = {phase: peak - baseline for phase, peak in _train_step_and_evaluate(config, dataset).items()}
    (folder / "result.json").write_text(json.dumps({"peak": max(peaks.values()), **peaks}))


def measure_memory(config: dict, dataset=None, timeout: float = 900.0) -> dict[str, int]:
    """The measured peak memory of ``config`` (resolved) in bytes, as defined in the module docstring.

    Runs in a fresh Python process (one torch thread); ``dataset`` (default: the one the
    config names) is passed to it by pickle. Returns ``{"peak": ..., "build": ..., "step": ...,
    "evaluation": ...}``: the peak over all phases and the peak of each, above the baseline.
    """
    config = {**config, "cache_dir": None}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "config.json").write_text(json.dumps(config))
        if dataset is not None:
            (folder / "dataset.pkl").write_bytes(pickle.dumps(dataset))
        env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD),
               "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]),
                                                           os.environ.get("PYTHONPATH")]))}
        subprocess.run([sys.executable, "-c", "import sys; from recsys.dry_run import _measure_child; "
                        "_measure_child(sys.argv[1])", str(folder)], check=True, timeout=timeout, env=env)
        return json.loads((folder / "result.json").read_text())


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
    phases = ", ".join(f"{name} {_mib(n)}" for name, n in r.memory_phases.items())
    parts = ", ".join(f"{name} {_mib(n)}" for name, n in r.memory.items() if n)
    lines.append(f"memory    ~{_mib(r.memory_total)} peak on {r.device} (estimate by phase: {phases})")
    lines.append(f"          parts: {parts}")
    if r.device.startswith("cuda") and torch.cuda.is_available():
        free, total = torch.cuda.mem_get_info(torch.device(r.device))
        verdict = "fits" if r.memory_total < free else "does NOT fit"
        lines.append(f"          {verdict} in the {_mib(free)} free of {_mib(total)} on {r.device}")
    return "\n".join(lines)
