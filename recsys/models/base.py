"""Base interface of every user-item recommender.

A model is built from ``(dataset, config, graphs)`` where ``graphs`` is a
:class:`recsys.graphs.GraphStore` that builds and caches the sparse graphs the model asks
for; a model that needs tensors from a training step run before it (CLHE's pre-trained CF
item embeddings) names them in :meth:`Recommender.pretrained_inputs` and receives them as
the constructor's ``pretrained`` mapping. Models never train, read files or parse arguments. Its training objective is :meth:`Recommender.loss` on a batch of (user, positive item,
negative item) triples, returning named loss terms with the total under ``"loss"``. For
ranking, :meth:`Recommender.embeddings` returns final user and item representations and
``score(u, i) = <z_u, z_i>``; models with another scoring rule override :meth:`scores`.

Hyper-parameters shared by several models have one name everywhere (docs/vocabulary.md); a
model lists the names it used before in ``renamed_keys`` (old → new), and a config that
still writes an old name is an error naming the new one.
"""
from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn


class Recommender(nn.Module):
    """A user-item model trained on (user, positive, negative) triples."""

    name: ClassVar[str] = ""
    task: ClassVar[str] = "interaction"
    renamed_keys: ClassVar[dict[str, str]] = {}

    def __init__(self, dataset, config: dict[str, Any], graphs) -> None:
        super().__init__()
        self.n_users = dataset.n_users
        self.n_items = dataset.n_items
        self.config = dict(config)

    @classmethod
    def default_config(cls) -> dict[str, Any]:
        """The model's hyper-parameters and their defaults (the valid keys of ``model:``)."""
        return {}

    @classmethod
    def pretrained_inputs(cls, config: dict[str, Any], dataset) -> dict[str, dict[str, Any]]:
        """Pre-training steps (:mod:`recsys.training.pretraining`) whose results this model's
        constructor takes as ``pretrained[name]``: name → the step's settings. None by default."""
        return {}

    @classmethod
    def step_memory(cls, config: dict[str, Any], stats: dict[str, Any], batch: dict[str, float]) -> dict[str, int]:
        """Bytes a training step needs beyond the model's parameters, their gradients, the
        optimiser state, the buffers and the graphs, by name: the tensors the forward pass
        keeps for the backward pass and the largest temporaries of both passes, at their
        peak. ``config`` is the model section, ``stats`` the dataset's
        :meth:`~recsys.data.Dataset.stats`, ``batch`` the batch of a step: ``size`` and the
        expected numbers of distinct ``users``, ``items`` (positives) and
        ``items_and_negatives`` in it (bundle tasks: distinct ``items`` and the padded
        ``width``). Used by the dry run's memory estimate; empty by default."""
        return {}

    @classmethod
    def ranking_memory(cls, config: dict[str, Any], stats: dict[str, Any]) -> dict[str, int]:
        """Memory of the ranking representations (:meth:`embeddings`, or the model's own
        scoring cache) beyond the model's tensors: ``representations``, the bytes kept while
        the items are scored, and ``temporaries``, the most held besides them while they are
        computed (the score blocks themselves are counted by the dry run). Empty by default."""
        return {}

    def feature_tables(self) -> list[tuple[nn.Parameter, Any]]:
        """Trainable feature tables projected through :func:`recsys.nn.feature_table.project_table`,
        each with the :class:`~recsys.nn.feature_table.GradientMemory` it uses: the trainer may
        step them inside the backward pass (:mod:`recsys.training.table_step`). None by default."""
        return []

    def pre_epoch(self, epoch: int) -> None:
        """Called by the Trainer before the training steps of ``epoch`` (1-based; MMRec's
        ``pre_epoch_processing``), e.g. to redraw a sampled graph. Whatever it draws must be a
        function of the run's seed and ``epoch`` only, so that a resumed run and every rank of a
        data-parallel run agree. Nothing by default."""

    def loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def forward(self, *batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """The training objective (so DistributedDataParallel can wrap the model)."""
        return self.loss(*batch)

    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Final (n_users × d, n_items × d) representations used for ranking."""
        raise NotImplementedError

    @torch.no_grad()
    def scores(self, users: torch.Tensor, cache: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """Scores of ``users`` against every item (len(users) × n_items)."""
        user_emb, item_emb = cache if cache is not None else self.embeddings()
        return user_emb[users] @ item_emb.T

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device


def feature_widths(config: dict[str, Any], stats: dict[str, Any]) -> dict[str, int]:
    """Width D_m of each modality a model uses (``config["modalities"]``, default all of the
    dataset's, sorted), from the dataset ``stats``: for the memory estimates."""
    chosen = config.get("modalities") or sorted(stats["features"])
    return {m: int(stats["features"][m][1]) for m in chosen if m in stats["features"]}
