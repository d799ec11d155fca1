"""Training curves of a run folder as PNG files (``recsys plot RUN_DIR``).

Reads ``metrics.jsonl`` (one JSON record per epoch, written by the trainer) and writes into
the run folder:

* ``loss.png`` — one panel per loss term (``loss`` = the total, then its named parts such as
  ``bpr`` and ``reg``), the epoch mean of each term against the epoch; terms have different
  scales, so each gets its own y axis;
* ``valid_metrics.png`` — one panel per metric family (Recall@K, NDCG@K by default), one line
  per cut-off K, at the epochs where the valid split was evaluated.

The best epoch (``results.json``) is marked with a dashed vertical line. Figures are drawn with
:class:`matplotlib.figure.Figure` (no pyplot global state, no display needed) and written
atomically.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterable

from matplotlib.figure import Figure

from recsys import io
from recsys.errors import DataError, RunFolderError

NON_LOSS_KEYS = {"epoch", "train_seconds", "train_cpu_seconds", "eval_seconds", "lr"}
VALID_PREFIX = "valid/"
FAMILIES = ("recall", "ndcg")
_METRIC = re.compile(r"^(?P<family>[a-z_]+)@(?P<k>\d+)$")

Series = tuple[list[int], list[float]]


def read_metrics(path: str | Path) -> list[dict]:
    """The records of a ``metrics.jsonl``; a missing or corrupt file is a clear error."""
    path = Path(path)
    if not path.is_file():
        raise RunFolderError(f"{path} does not exist: give a run folder written by 'recsys train' "
                                f"(it holds metrics.jsonl after the first epoch)")
    records = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path} line {number} is not valid JSON ({exc.msg}); the run folder is damaged "
                            f"(delete that line to plot the rest)") from exc
        if not isinstance(record, dict) or not isinstance(record.get("epoch"), int):
            raise DataError(f"{path} line {number} has no integer 'epoch'; it is not a metrics record")
        records.append(record)
    if not records:
        raise DataError(f"{path} holds no epoch yet; plot after the first epoch has finished")
    return records


def curves(records: Iterable[dict], families: Iterable[str] = FAMILIES) -> tuple[dict[str, Series], dict[str, Series]]:
    """Loss terms and valid metrics as ``name -> (epochs, values)``, in file order.

    A loss term is any numeric key other than the epoch, the timings and ``valid/*``; a valid
    metric is ``valid/<family>@<k>`` with ``family`` in ``families``. Epochs where a key is
    absent (no evaluation that epoch) are skipped for that key.
    """
    wanted = set(families)
    losses: dict[str, Series] = {}
    metrics: dict[str, Series] = {}
    for record in records:
        epoch = record["epoch"]
        for key, value in record.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or key in NON_LOSS_KEYS:
                continue
            if key.startswith(VALID_PREFIX):
                match = _METRIC.match(key[len(VALID_PREFIX):])
                if not match or match["family"] not in wanted:
                    continue
                target = metrics
                key = key[len(VALID_PREFIX):]
            else:
                target = losses
            epochs, values = target.setdefault(key, ([], []))
            epochs.append(epoch)
            values.append(float(value))
    ordered = dict(sorted(losses.items(), key=lambda item: (item[0] != "loss", item[0])))
    return ordered, dict(sorted(metrics.items(), key=lambda item: _metric_order(item[0])))


def _metric_order(name: str) -> tuple[str, int]:
    match = _METRIC.match(name)
    return (match["family"], int(match["k"])) if match else (name, 0)


def _mark_best(ax, best_epoch: int | None) -> None:
    if best_epoch:
        ax.axvline(best_epoch, color="grey", linestyle="--", linewidth=1, label=f"best epoch {best_epoch}")


def loss_figure(losses: dict[str, Series], best_epoch: int | None = None, title: str = "") -> Figure:
    """One panel per loss term, shared epoch axis."""
    n = max(1, len(losses))
    fig = Figure(figsize=(7, 2.1 * n + 0.6), layout="constrained")
    axes = fig.subplots(n, 1, sharex=True, squeeze=False)[:, 0]
    for ax, (term, (epochs, values)) in zip(axes, losses.items()):
        ax.plot(epochs, values, marker="o" if len(epochs) < 30 else None, markersize=3, label=term)
        _mark_best(ax, best_epoch)
        ax.set_ylabel(term)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("epoch")
    fig.suptitle(f"training loss (epoch mean){' — ' + title if title else ''}")
    return fig


def metrics_figure(metrics: dict[str, Series], best_epoch: int | None = None, title: str = "") -> Figure:
    """One panel per metric family, one line per cut-off K."""
    families = sorted({_metric_order(name)[0] for name in metrics}) or ["recall"]
    fig = Figure(figsize=(7, 2.6 * len(families) + 0.6), layout="constrained")
    axes = fig.subplots(len(families), 1, sharex=True, squeeze=False)[:, 0]
    for ax, family in zip(axes, families):
        for name, (epochs, values) in metrics.items():
            if _metric_order(name)[0] == family:
                ax.plot(epochs, values, marker="o" if len(epochs) < 30 else None, markersize=3, label=name)
        _mark_best(ax, best_epoch)
        ax.set_ylabel(f"valid {family}")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize="small")
    axes[-1].set_xlabel("epoch")
    fig.suptitle(f"validation metrics{' — ' + title if title else ''}")
    return fig


def _save(fig: Figure, path: Path) -> Path:
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return path


def plot_run(run_dir: str | Path, families: Iterable[str] = FAMILIES) -> list[Path]:
    """Write ``loss.png`` and (when the valid split was evaluated) ``valid_metrics.png``."""
    run_dir = Path(run_dir)
    losses, metrics = curves(read_metrics(run_dir / "metrics.jsonl"), families)
    best_epoch = None
    results_path = run_dir / "results.json"
    title = run_dir.name
    if results_path.is_file():
        results = json.loads(results_path.read_text())
        best_epoch = results.get("best_epoch")
        title = f"{results.get('model', '')} on {results.get('dataset', '')}".strip()
    written = [_save(loss_figure(losses, best_epoch, title), run_dir / "loss.png")]
    if metrics:
        written.append(_save(metrics_figure(metrics, best_epoch, title), run_dir / "valid_metrics.png"))
    return written
