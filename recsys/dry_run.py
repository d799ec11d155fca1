"""Check a run without training it: ``recsys train --dry-run``.

:func:`inspect_run` takes a config from :func:`recsys.compose.resolve` (which has checked its
values: monitored metric, cut-offs, optimiser, positive integers), checks that its device is
present, loads and validates the dataset, builds the model and the task exactly as training
would, and reports:

* the dataset's users, items, interactions per split and feature shapes;
* the model's parameter count (trainable and frozen);
* every graph the model asks for, with its shape and number of stored entries (nnz). The
  cheap graphs (user-item Â, nnz = 2·|R|; the user→mean-of-items matrix, nnz = |R|) are built
  for real; the expensive ones are *not* built but bounded from their definition
  (``docs/graphs.md``): a top-k kNN graph over n nodes mixed over M modalities has at most
  n·min(n, k·M) entries, a top-k co-occurrence graph at most n·min(k, n−1), a homography graph
  (co-occurrence + kNN mix) at most their sum; a dense user-interest matrix is n_users × D.
  The model receives an empty sparse matrix of the right shape in their place, which is all
  its constructor needs to allocate its parameters;
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
from recsys.graphs import GraphStore

FLOAT = 4
ADAM_BYTES_PER_PARAM = 4 * FLOAT  # value, gradient, first and second moment


@dataclass
class GraphInfo:
    call: str
    shape: tuple[int, ...]
    nnz: int
    exact: bool
    dense: bool = False

    @property
    def bytes(self) -> int:
        if self.dense:
            return self.nnz * FLOAT
        return self.nnz * (FLOAT + 8) + (self.shape[0] + 1) * 8


@dataclass
class DryRunReport:
    config: dict
    dataset_stats: dict
    device: str
    trainable: int
    frozen: int
    buffer_bytes: int
    graphs: list[GraphInfo] = field(default_factory=list)
    batches_per_epoch: int = 0
    memory: dict[str, int] = field(default_factory=dict)

    @property
    def memory_total(self) -> int:
        return sum(self.memory.values())

    def render(self) -> str:
        return _render(self)


def _empty_csr(rows: int, cols: int) -> torch.Tensor:
    return torch.sparse_csr_tensor(torch.zeros(rows + 1, dtype=torch.int64), torch.zeros(0, dtype=torch.int64),
                                   torch.zeros(0), (rows, cols), check_invariants=True)


def _weights_text(weights: dict[str, float]) -> str:
    return ",".join(f"{m}={float(w):g}" for m, w in sorted(weights.items()))


def _active(weights: dict[str, float]) -> int:
    return max(1, sum(1 for w in weights.values() if float(w) > 0))


class GraphProbe:
    """Stands in for :class:`recsys.graphs.GraphStore` while the dry run builds the model.

    Cheap graphs are delegated to the real store; expensive ones are recorded with an nnz
    bound and returned empty (see the module docstring). A method not listed here is
    delegated to the real store and its true nnz recorded.
    """

    def __init__(self, dataset, store) -> None:
        self.dataset = dataset
        self.store = store
        self.graphs: list[GraphInfo] = []

    def _exact(self, call: str, graph: torch.Tensor) -> torch.Tensor:
        if graph.layout == torch.strided:
            self.graphs.append(GraphInfo(call, tuple(graph.shape), graph.numel(), True, dense=True))
        else:
            nnz = graph._nnz() if graph.layout != torch.sparse_coo else graph.coalesce()._nnz()
            self.graphs.append(GraphInfo(call, tuple(graph.shape), int(nnz), True))
        return graph

    def _bound(self, call: str, n: int, nnz: int) -> torch.Tensor:
        self.graphs.append(GraphInfo(call, (n, n), int(nnz), False))
        return _empty_csr(n, n)

    def user_item(self) -> torch.Tensor:
        return self._exact("user_item()", self.store.user_item())

    def user_mean_items(self) -> torch.Tensor:
        return self._exact("user_mean_items()", self.store.user_mean_items())

    def item_knn(self, modality_weights: dict[str, float], k: int, weighted: bool = True) -> torch.Tensor:
        n = self.dataset.n_items
        return self._bound(f"item_knn({_weights_text(modality_weights)}, k={k})", n,
                           n * min(n, int(k) * _active(modality_weights)))

    def user_interest_knn(self, modality_weights: dict[str, float], k: int, weighted: bool = True) -> torch.Tensor:
        n = self.dataset.n_users
        return self._bound(f"user_interest_knn({_weights_text(modality_weights)}, k={k})", n,
                           n * min(n, int(k) * _active(modality_weights)))

    def item_cooccurrence(self, k: int, **options) -> torch.Tensor:
        n = self.dataset.n_items
        return self._bound(f"item_cooccurrence(k={k})", n, n * min(int(k), n - 1))

    def user_cooccurrence(self, k: int, **options) -> torch.Tensor:
        n = self.dataset.n_users
        return self._bound(f"user_cooccurrence(k={k})", n, n * min(int(k), n - 1))

    def _homography(self, side: str, n: int, modality_weights: dict[str, float], k: int,
                    co_weight: float, co_k: int | None) -> torch.Tensor:
        co = n * min(int(k if co_k is None else co_k), n - 1) if float(co_weight) > 0 else 0
        knn = n * min(n, int(k) * _active(modality_weights)) if float(co_weight) < 1 else 0
        call = f"{side}_homography({_weights_text(modality_weights)}, k={k}, co_weight={float(co_weight):g})"
        return self._bound(call, n, min(n * n, co + knn))

    def item_homography(self, modality_weights: dict[str, float], k: int, co_weight: float,
                        co_k: int | None = None, **co_options) -> torch.Tensor:
        return self._homography("item", self.dataset.n_items, modality_weights, k, co_weight, co_k)

    def user_homography(self, modality_weights: dict[str, float], k: int, co_weight: float,
                        co_k: int | None = None, **co_options) -> torch.Tensor:
        return self._homography("user", self.dataset.n_users, modality_weights, k, co_weight, co_k)

    def user_interest(self, modality: str) -> torch.Tensor:
        if modality not in self.dataset.features:
            raise ConfigError(f"the model asks for the user interest of modality '{modality}', but the dataset has "
                              f"{sorted(self.dataset.features) or 'no features'}")
        dim = self.dataset.features[modality].shape[1]
        self.graphs.append(GraphInfo(f"user_interest({modality})", (self.dataset.n_users, dim),
                                     self.dataset.n_users * dim, True, dense=True))
        return torch.zeros(self.dataset.n_users, dim)

    def __getattr__(self, name: str):
        method = getattr(self.store, name)
        if not callable(method):
            return method

        def record(*args, **kwargs):
            parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
            return self._exact(f"{name}({', '.join(parts)})", method(*args, **kwargs))
        return record


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
    probe = GraphProbe(dataset, GraphStore(dataset, cpu, cache_dir=None))
    run = build(config, cpu, dataset, graphs=probe, pretrain=False)
    model, task = run.model, run.task
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    buffer_bytes = sum(b.numel() * b.element_size() for b in model.buffers() if b.layout == torch.strided)
    n_batches = getattr(task, "n_batches", None)
    report = DryRunReport(config=config, dataset_stats=dataset.stats(), device=str(device), trainable=trainable,
                          frozen=frozen, buffer_bytes=buffer_bytes, graphs=probe.graphs,
                          batches_per_epoch=int(n_batches()) if callable(n_batches) else 0)
    report.memory = {
        "parameters, gradients, Adam": trainable * ADAM_BYTES_PER_PARAM + frozen * FLOAT,
        "buffers": buffer_bytes,
        "graphs": sum(g.bytes for g in probe.graphs),
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
        "graphs    (nnz = stored entries; '<=' = bound from the definition, the graph was not built)",
    ]
    width = max([len(g.call) for g in r.graphs] + [10])
    for g in r.graphs:
        shape = " x ".join(f"{d:,}" for d in g.shape)
        kind = "dense" if g.dense else ("" if g.exact else "<=")
        lines.append(f"  {g.call:<{width}}  {shape:>19}  {kind:>5} {g.nnz:>14,}  {_mib(g.bytes):>12}")
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
