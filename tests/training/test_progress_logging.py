"""Log lines written while an epoch's progress bar is on screen get a line of their own
(through ``tqdm.write``) instead of being appended to the bar's line."""
from __future__ import annotations

import logging
import sys

import torch

from recsys.compose import build, resolve
from recsys.training import Trainer

MESSAGE = "message from inside an epoch"


def _screen_lines(text: str) -> list[str]:
    """What a terminal shows of each line: the text after its last carriage return."""
    return [line.rsplit("\r", 1)[-1] for line in text.split("\n")]


def test_log_records_during_an_epoch_do_not_share_the_bar_line(planted, tmp_path, capsys):
    config = resolve({"model": {"name": "bpr"}, "train": {"batch_size": 256, "epochs": 1, "progress": True},
                      "eval": {"ks": [20], "metrics": ["recall"]}})
    run = build(config, torch.device("cpu"), planted)
    loss = run.model.loss

    def logging_loss(*batch):
        logging.getLogger("recsys.test").warning(MESSAGE)
        return loss(*batch)

    run.model.loss = logging_loss
    console = logging.StreamHandler(sys.stderr)           # the stream the bar writes to (captured)
    console.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(console)
    try:
        Trainer(run.model, run.task, config["train"], tmp_path).fit()
        assert console in root.handlers, "the console handler is back after the epoch"
    finally:
        root.removeHandler(console)
    err = capsys.readouterr().err
    assert "epoch 1:" in err, "the progress bar was shown"
    logged = [line for line in err.split("\n") if MESSAGE in line]
    assert len(logged) == run.task.n_batches() >= 3
    assert all(line == f"WARNING {MESSAGE}" for line in _screen_lines(err) if MESSAGE in line), logged[:2]
