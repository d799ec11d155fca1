"""Trainer on_epoch_end callbacks and the optional TensorBoard logger."""
from __future__ import annotations

import json
import sys

import pytest
import torch

from recsys.compose import resolve
from recsys.errors import ConfigError
from recsys.models.bpr import BPRMF
from recsys.training.tasks import make_task
from recsys.training.trainer import Trainer


def _trainer(planted, tmp_path, on_epoch_end=None, **train_overrides):
    config = resolve({"model": {"name": "bpr"},
                      "train": {"epochs": 3, "eval_every": 2, "batch_size": 512, "progress": False,
                                **train_overrides},
                      "eval": {"ks": [20], "metrics": ["recall", "ndcg"]}})
    torch.manual_seed(0)
    model = BPRMF(planted, config["model"], None)
    task = make_task("interaction", planted, config, torch.device("cpu"))
    return Trainer(model, task, config["train"], tmp_path, on_epoch_end=on_epoch_end)


def test_on_epoch_end_receives_each_metrics_record(planted, tmp_path):
    seen = []

    class Recorder:
        closed = False

        def __call__(self, record):
            seen.append(dict(record))

        def close(self):
            Recorder.closed = True

    _trainer(planted, tmp_path, on_epoch_end=[Recorder()]).fit()
    written = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert seen == written and [r["epoch"] for r in seen] == [1, 2, 3]
    assert "valid/recall@20" in seen[1] and "valid/recall@20" not in seen[0]
    assert Recorder.closed


def test_tensorboard_logs_every_scalar_of_metrics_jsonl(planted, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from recsys.training.tensorboard import tag

    _trainer(planted, tmp_path, tensorboard=True).fit()
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    expected = {}
    for record in records:
        for key, value in record.items():
            if key != "epoch":
                expected.setdefault(tag(key), []).append((record["epoch"], value))
    assert set(events.Tags()["scalars"]) == set(expected)
    assert {"train/loss", "train/bpr", "train/reg", "valid/recall@20", "valid/ndcg@20", "time/train_seconds"} \
        <= set(expected)
    for name, points in expected.items():
        logged = [(e.step, e.value) for e in events.Scalars(name)]
        assert [s for s, _ in logged] == [s for s, _ in points]
        assert [v for _, v in logged] == pytest.approx([v for _, v in points], rel=1e-6)


def test_tensorboard_requested_but_missing_is_a_config_error(planted, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ConfigError, match="'tensorboard' package is not installed: pip install tensorboard"):
        _trainer(planted, tmp_path, tensorboard=True)
    assert not (tmp_path / "tensorboard").exists()


def test_tensorboard_off_by_default_writes_nothing(planted, tmp_path):
    _trainer(planted, tmp_path, epochs=1).fit()
    assert not (tmp_path / "tensorboard").exists()


def test_cli_tensorboard_flag_logs_the_run_and_survives_in_its_config(tmp_path, capsys):
    pytest.importorskip("tensorboard")
    from recsys.cli import main
    from recsys.io import load_yaml

    code = main(["train", "--tensorboard", "--set", f"output_dir={tmp_path}", "run_name=run", "model.name=bpr",
                 "train.epochs=2", "train.progress=false", "dataset.synthetic.n_users=120",
                 "dataset.synthetic.n_items=60"])
    assert code == 0
    assert list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))
    assert load_yaml(tmp_path / "run" / "config.yaml")["train"]["tensorboard"] is True
    capsys.readouterr()
    assert main(["train", "--resume", str(tmp_path / "run"), "--tensorboard"]) == 2
    assert "apply to new runs" in capsys.readouterr().err
