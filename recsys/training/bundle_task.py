"""The bundle completion task (docs/models/clhe.md): batches of train bundles, completion evaluation.

A bundle model provides ``loss(items)`` for a (B × L) LongTensor of train bundles, each row
the bundle's item indices padded with ``n_items``; ``completion_cache()`` (state reused for a
whole evaluation, e.g. the decoder's item representations); and ``complete(inputs, cache)``
giving (B × n_items) scores for partial bundles padded the same way. Evaluation ranks all
items except each held-out bundle's input (:func:`recsys.evaluation.bundle_metrics.evaluate_completion`).
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from recsys.data.bundles import BundleDataset, padded_rows
from recsys.evaluation import PerUserMetrics
from recsys.evaluation.bundle_metrics import evaluate_completion_per_bundle
from recsys.training.tasks import register_task


class BundleTask:
    def __init__(self, dataset: BundleDataset, train_config: dict, eval_config: dict, seed: int,
                 device: torch.device) -> None:
        if not isinstance(dataset, BundleDataset):
            raise TypeError(f"the bundle task needs a bundle dataset (dataset.format bundle_csv or clhe), "
                            f"got {type(dataset).__name__} '{dataset.name}'")
        self.dataset = dataset
        self.device = device
        self.seed = seed
        self.batch_size = int(train_config["batch_size"])
        self.eval_config = eval_config
        self.pad = dataset.n_items
        train = dataset.bundle_csr("train")
        self.train_rows = dataset.train_bundles()
        self.train_items = padded_rows(train, self.train_rows, self.pad)
        self.train_lengths = np.diff(train.indptr)[self.train_rows]

    def batches(self, epoch: int) -> Iterator[tuple[torch.Tensor]]:
        """Shuffled train bundles, trimmed to the longest bundle of each batch; RNG keyed by (seed, epoch)."""
        order = np.random.default_rng([self.seed, epoch]).permutation(self.train_rows.size)
        for start in range(0, order.size, self.batch_size):
            chosen = order[start:start + self.batch_size]
            width = int(self.train_lengths[chosen].max())
            yield (torch.from_numpy(self.train_items[chosen, :width]).to(self.device),)

    def n_batches(self) -> int:
        return -(-self.train_rows.size // self.batch_size)

    def inputs(self, split: str) -> torch.Tensor:
        """Padded input items of every bundle index for a held-out split (n_bundles × L)."""
        csr = self.dataset.bundle_csr(f"{split}_input")
        return torch.from_numpy(padded_rows(csr, np.arange(self.dataset.n_bundles), self.pad)).to(self.device)

    def evaluate(self, model, split: str) -> dict[str, float]:
        return self.evaluate_per_user(model, split).means()

    @torch.no_grad()
    def evaluate_per_user(self, model, split: str) -> PerUserMetrics:
        """Completion metrics of every held-out bundle of ``split`` (``users`` are bundle rows)."""
        if split not in ("valid", "test"):
            raise ValueError(f"bundle completion is evaluated on 'valid' or 'test', not '{split}'")
        model.eval()
        inputs = self.inputs(split)
        cache = model.completion_cache()
        return evaluate_completion_per_bundle(
            lambda rows: model.complete(inputs[rows], cache),
            self.dataset.bundle_csr(f"{split}_input"), self.dataset.bundle_csr(f"{split}_gt"),
            ks=self.eval_config["ks"], metrics=self.eval_config["metrics"],
            batch_size=int(self.eval_config["batch_size"]), device=self.device,
        )


@register_task("bundle")
def _bundle_task(dataset, config: dict, device: torch.device) -> BundleTask:
    return BundleTask(dataset, config["train"], config["eval"], int(config["seed"]), device)
