"""Training: negative sampling, tasks, the trainer loop and whole runs."""
from recsys.training.run import load_run, resume, train
from recsys.training.tasks import register_task
from recsys.training.trainer import NonFiniteLossError, Trainer

__all__ = ["NonFiniteLossError", "Trainer", "load_run", "register_task", "resume", "train"]
