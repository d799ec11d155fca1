"""Training: negative sampling, tasks (what a batch is, how a split is evaluated), the
model-agnostic trainer loop, pre-training steps and data-parallel helpers.

Tasks register themselves here: importing this package registers the ``interaction`` task
(:mod:`recsys.training.tasks`) and the ``bundle`` task (:mod:`recsys.training.bundle_task`).
Whole runs (config → run folder) are composed above this package, in :mod:`recsys.runs`.
"""
from recsys.training import bundle_task, pretraining
from recsys.training.tasks import make_task, register_task
from recsys.training.trainer import Trainer

__all__ = ["Trainer", "bundle_task", "make_task", "pretraining", "register_task"]
