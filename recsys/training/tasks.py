"""Training tasks: what a batch is and how a split is evaluated.

The :class:`~recsys.training.trainer.Trainer` is model-agnostic; a task supplies
``batches(epoch)`` (tuples passed as ``model.loss(*batch)``), ``evaluate(model, split)``
(metric name → value) and ``evaluate_per_user(model, split)`` (the same metrics per evaluated
user, :class:`recsys.evaluation.PerUserMetrics`, whose means ``evaluate`` returns).
:class:`InteractionTask` is the user-item protocol of ``docs/protocol.md``: BPR triples with
uniform negatives and full-ranking evaluation with train items masked.
"""
from __future__ import annotations

from typing import Iterator, Protocol

import numpy as np
import torch

from recsys.errors import ConfigError
from recsys.evaluation import PerUserMetrics, evaluate_ranking_per_user
from recsys.training.sampler import NegativeSampler


class Task(Protocol):
    def batches(self, epoch: int) -> Iterator[tuple[torch.Tensor, ...]]: ...

    def evaluate(self, model, split: str) -> dict[str, float]: ...

    def evaluate_per_user(self, model, split: str) -> PerUserMetrics: ...


_TASKS: dict[str, object] = {}


def register_task(kind: str):
    """Register ``factory(dataset, config, device) -> Task`` under ``kind`` (a model's ``task``)."""
    def decorator(factory):
        _TASKS[kind] = factory
        return factory
    return decorator


def make_task(kind: str, dataset, config: dict, device: torch.device) -> Task:
    if kind not in _TASKS:
        raise ConfigError(f"unknown task kind '{kind}'; registered: {', '.join(sorted(_TASKS))}")
    return _TASKS[kind](dataset, config, device)


# train.negatives_exclude: the items a negative is never drawn from (train only, or every split).
NEGATIVE_EXCLUSIONS = {"train": lambda dataset: dataset.csr("train"), "all": lambda dataset: dataset.known_csr()}


class InteractionTask:
    """User-item BPR training and full-ranking evaluation (docs/protocol.md)."""

    def __init__(self, dataset, train_config: dict, eval_config: dict, seed: int, device: torch.device) -> None:
        self.dataset = dataset
        self.device = device
        self.seed = seed
        self.batch_size = int(train_config["batch_size"])
        self.sampler = NegativeSampler(NEGATIVE_EXCLUSIONS[train_config["negatives_exclude"]](dataset))
        self.users, self.items = dataset.train
        self.eval_config = eval_config

    def batches(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Shuffled train pairs with fresh negatives; the RNG is keyed by (seed, epoch)."""
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(self.users.shape[0])
        users, pos = self.users[order], self.items[order]
        neg = self.sampler.sample(users, rng)
        for start in range(0, users.shape[0], self.batch_size):
            stop = start + self.batch_size
            yield tuple(
                torch.from_numpy(a[start:stop]).to(self.device, non_blocking=True)
                for a in (users, pos, neg)
            )

    def n_batches(self) -> int:
        return -(-self.users.shape[0] // self.batch_size)

    def evaluate(self, model, split: str) -> dict[str, float]:
        return self.evaluate_per_user(model, split).means()

    @torch.no_grad()
    def evaluate_per_user(self, model, split: str) -> PerUserMetrics:
        model.eval()
        cache = model.embeddings()
        return evaluate_ranking_per_user(
            lambda users: model.scores(users, cache),
            exclude_csr=self.dataset.csr("train"),
            target_csr=self.dataset.csr(split),
            ks=self.eval_config["ks"],
            metrics=self.eval_config["metrics"],
            batch_size=int(self.eval_config["batch_size"]),
            device=self.device,
        )


@register_task("interaction")
def _interaction_task(dataset, config: dict, device: torch.device) -> InteractionTask:
    return InteractionTask(dataset, config["train"], config["eval"], int(config["seed"]), device)
