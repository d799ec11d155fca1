"""Optional TensorBoard logging of a run: one scalar per loss term, timing and valid metric per epoch.

Enabled by ``train.tensorboard: true`` (or ``recsys train --tensorboard``); the event files go
to ``RUN_DIR/tensorboard`` (view with ``tensorboard --logdir runs``). Tags: ``train/<term>``
for the epoch means of the loss terms, ``valid/<metric>@<k>`` for the validation metrics and
``time/<name>`` for the timings, each at step = epoch. Needs the ``tensorboard`` package
(``pip install 'recsys[tensorboard]'``), which ``torch.utils.tensorboard`` writes through.
"""
from __future__ import annotations

from pathlib import Path

from recsys.errors import ConfigError

TIMINGS = ("train_seconds", "train_cpu_seconds", "eval_seconds")


def _summary_writer():
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        raise ConfigError("train.tensorboard is true (recsys train --tensorboard) but the 'tensorboard' package is "
                          "not installed: pip install tensorboard (or pip install 'recsys[tensorboard]'), or set "
                          "train.tensorboard=false") from exc
    return SummaryWriter


def tag(key: str) -> str:
    """TensorBoard tag of a metrics.jsonl key."""
    if key in TIMINGS:
        return f"time/{key}"
    if key.startswith("valid/"):
        return key
    return f"train/{key}"


class TensorBoardLogger:
    """Trainer ``on_epoch_end`` callback writing each numeric field of the epoch record."""

    def __init__(self, log_dir: str | Path) -> None:
        self.log_dir = Path(log_dir)
        self.writer = _summary_writer()(log_dir=str(self.log_dir))

    def __call__(self, record: dict) -> None:
        epoch = int(record["epoch"])
        for key, value in record.items():
            if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(tag(key), float(value), epoch)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
