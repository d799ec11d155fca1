"""recsys plot: training curves from metrics.jsonl."""
from __future__ import annotations

import json

import matplotlib.image
import numpy as np
import pytest

from recsys.cli import main
from recsys.errors import DataError, RunFolderError
from recsys.plotting import curves, loss_figure, metrics_figure, plot_run, read_metrics


def _records(n_epochs=6, eval_every=2):
    records = []
    for epoch in range(1, n_epochs + 1):
        record = {"epoch": epoch, "train_seconds": 0.5, "loss": 1.0 / epoch + 1e-3 * epoch,
                  "bpr": 1.0 / epoch, "reg": 1e-3 * epoch}
        if epoch % eval_every == 0:
            record.update({"eval_seconds": 0.1, "valid/recall@10": 0.01 * epoch, "valid/recall@20": 0.02 * epoch,
                           "valid/ndcg@20": 0.015 * epoch, "valid/precision@20": 0.3})
        records.append(record)
    return records


def _write_run(folder, records, best_epoch=4):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (folder / "results.json").write_text(json.dumps({"model": "bpr", "dataset": "toy", "best_epoch": best_epoch}))
    return folder


def test_curves_split_losses_from_valid_metrics():
    records = _records()
    losses, metrics = curves(records)
    assert list(losses) == ["loss", "bpr", "reg"]
    assert losses["bpr"] == ([1, 2, 3, 4, 5, 6], [1.0 / e for e in range(1, 7)])
    assert list(metrics) == ["ndcg@20", "recall@10", "recall@20"]
    assert metrics["recall@20"] == ([2, 4, 6], [0.04, 0.08, 0.12])
    _, with_precision = curves(records, families=["precision"])
    assert list(with_precision) == ["precision@20"]


def test_figures_draw_exactly_the_series():
    losses, metrics = curves(_records())
    fig = loss_figure(losses, best_epoch=4)
    assert [ax.get_ylabel() for ax in fig.axes] == ["loss", "bpr", "reg"]
    reg_line = fig.axes[2].lines[0]
    np.testing.assert_allclose(reg_line.get_xydata(), np.c_[np.arange(1, 7), 1e-3 * np.arange(1, 7)])
    assert fig.axes[0].lines[1].get_xdata()[0] == 4  # best-epoch marker
    fig = metrics_figure(metrics)
    assert [ax.get_ylabel() for ax in fig.axes] == ["valid ndcg", "valid recall"]
    assert [line.get_label() for line in fig.axes[1].lines] == ["recall@10", "recall@20"]
    np.testing.assert_allclose(fig.axes[1].lines[1].get_xydata(), [[2, 0.04], [4, 0.08], [6, 0.12]])


def test_plot_run_writes_png_files(tmp_path):
    run = _write_run(tmp_path / "run", _records())
    written = plot_run(run)
    assert [p.name for p in written] == ["loss.png", "valid_metrics.png"]
    for path in written:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        image = matplotlib.image.imread(path)
        assert image.ndim == 3 and image.shape[0] > 200 and image.std() > 0.01
    assert not list(run.glob("*.tmp"))


def test_run_without_evaluation_gets_only_the_loss_plot(tmp_path):
    records = [{"epoch": 1, "train_seconds": 0.1, "loss": 0.7}]
    assert [p.name for p in plot_run(_write_run(tmp_path / "run", records))] == ["loss.png"]


def test_errors_name_the_file_and_line(tmp_path):
    with pytest.raises(RunFolderError, match="metrics.jsonl does not exist"):
        read_metrics(tmp_path / "metrics.jsonl")
    (tmp_path / "metrics.jsonl").write_text('{"epoch": 1, "loss": 0.5}\n{"epoch": 2, "lo\n')
    with pytest.raises(DataError, match="metrics.jsonl line 2 is not valid JSON"):
        read_metrics(tmp_path / "metrics.jsonl")
    (tmp_path / "metrics.jsonl").write_text("")
    with pytest.raises(DataError, match="holds no epoch yet"):
        read_metrics(tmp_path / "metrics.jsonl")


def test_cli_plot_after_a_real_training_run(planted, tmp_path, capsys):
    from recsys.compose import resolve
    from recsys.runs import train

    config = resolve({"run_name": "run", "output_dir": str(tmp_path), "cache_dir": str(tmp_path / "cache"),
                      "model": {"name": "bpr"}, "train": {"epochs": 3, "batch_size": 512, "progress": False},
                      "eval": {"ks": [20], "metrics": ["recall", "ndcg"]}})
    train(config, dataset=planted)
    assert main(["plot", str(tmp_path / "run")]) == 0
    assert "valid_metrics.png" in capsys.readouterr().out
    losses, metrics = curves(read_metrics(tmp_path / "run" / "metrics.jsonl"))
    assert set(losses) == {"loss", "bpr", "reg"} and set(metrics) == {"recall@20", "ndcg@20"}
    assert (tmp_path / "run" / "loss.png").stat().st_size > 1000
    assert main(["plot", str(tmp_path / "missing")]) == 2
