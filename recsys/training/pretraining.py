"""Training steps that run before a model is built and hand it tensors, cached on disk.

A model declares the inputs it needs from such a step with
:meth:`recsys.models.base.Recommender.pretrained_inputs` (name → settings); the composition
layer (:func:`recsys.compose.build`) runs :func:`run_step` for each and passes the results to
the model's constructor as ``pretrained``. A dry run passes :func:`placeholder` instead, of
the same shapes, and never trains.

``cf_item_embeddings``: CLHE (Ma et al., WSDM 2024, §3.2) feeds each item's embedding from a
model pre-trained on the user-item interactions into the item encoder. Here that model is our LightGCN
(:class:`recsys.models.lightgcn.LightGCN`, He et al., SIGIR 2020) trained with BPR on the
dataset's ``train`` user-item pairs (the batches of
:class:`recsys.training.tasks.InteractionTask`) for a fixed number of epochs with Adam; there
is no user-item validation split, so no early stopping. The final LightGCN item
representations are returned with a mask of the items that have interactions (the others
have no collaborative signal; CLHE uses their content token instead).

Training runs under its own seed inside ``torch.random.fork_rng`` so a cache hit and a cache
miss leave the caller's random state identical. The embedding depends only on the user-item
pairs and the settings, so the cache file is ``<cache_dir>/clhe_cf/<hash of both>.npy``
(written atomically).
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import torch

from recsys.errors import ConfigError
from recsys.io import atomic_path
from recsys.models.lightgcn import LightGCN
from recsys.training.tasks import InteractionTask

log = logging.getLogger("recsys.train")

DEFAULT_SETTINGS = {"embedding_size": 64, "n_layers": 2, "reg_weight": 1e-4, "epochs": 100, "lr": 5e-3,
                    "batch_size": 1024, "seed": 2024}


def _cache_path(dataset, settings: dict, cache_dir) -> Path | None:
    if cache_dir is None:
        return None
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    digest.update(f"{dataset.n_users},{dataset.n_items}".encode())
    digest.update(np.ascontiguousarray(dataset.train, dtype=np.int64).tobytes())
    return Path(cache_dir) / "clhe_cf" / f"{digest.hexdigest()[:20]}.npy"


def train_lightgcn_items(dataset, graphs, settings: dict) -> np.ndarray:
    """LightGCN item representations (n_items × embedding_size) after BPR training."""
    device = graphs.device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(int(settings["seed"]))
        model = LightGCN(dataset, {k: settings[k] for k in ("embedding_size", "n_layers", "reg_weight")},
                         graphs).to(device)
        task = InteractionTask(dataset, {"batch_size": settings["batch_size"], "negatives_exclude": "train"},
                               {}, int(settings["seed"]), device)
        optimizer = torch.optim.Adam(model.parameters(), lr=float(settings["lr"]))
        model.train()
        for epoch in range(1, int(settings["epochs"]) + 1):
            for users, pos, neg in task.batches(epoch):
                loss = model.loss(users, pos, neg)["loss"]
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        log.info("CF pre-training: LightGCN %d epochs, last batch loss %.4f", settings["epochs"], loss.item())
        _, items = model.embeddings()
    return items.cpu().numpy().astype(np.float32)


def _warm_items(dataset) -> np.ndarray:
    return np.diff(dataset.csr("train").tocsc().indptr) > 0


def pretrained_item_embeddings(dataset, graphs, settings: dict | None = None,
                               cache_dir=None) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings n_items × d, has_interactions bool n_items); loaded from the cache when present."""
    settings = {**DEFAULT_SETTINGS, **dict(settings or {})}
    warm = _warm_items(dataset)
    if not warm.any():
        return np.zeros((dataset.n_items, int(settings["embedding_size"])), dtype=np.float32), warm
    path = _cache_path(dataset, settings, cache_dir)
    if path is not None and path.is_file():
        return np.load(path), warm
    items = train_lightgcn_items(dataset, graphs, settings)
    if path is not None:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as handle:
                np.save(handle, items)
    return items, warm


def _cf_item_embeddings(dataset, graphs, settings: dict) -> tuple[torch.Tensor, torch.Tensor]:
    items, warm = pretrained_item_embeddings(dataset, graphs, settings, graphs.cache_dir)
    return torch.from_numpy(items), torch.from_numpy(warm)


def _cf_item_placeholder(dataset, settings: dict) -> tuple[torch.Tensor, torch.Tensor]:
    dim = int({**DEFAULT_SETTINGS, **dict(settings or {})}["embedding_size"])
    return torch.zeros(dataset.n_items, dim), torch.from_numpy(_warm_items(dataset))


STEPS = {"cf_item_embeddings": (_cf_item_embeddings, _cf_item_placeholder)}


def _step(name: str):
    if name not in STEPS:
        raise ConfigError(f"no pre-training step '{name}'; available: {', '.join(sorted(STEPS))}")
    return STEPS[name]


def run_step(name: str, settings: dict, dataset, graphs):
    """Run (or load from ``graphs.cache_dir``) the pre-training step ``name``."""
    return _step(name)[0](dataset, graphs, settings)


def placeholder(name: str, settings: dict, dataset, graphs=None):
    """Zeros of the shapes :func:`run_step` returns, for a dry run (no training)."""
    return _step(name)[1](dataset, settings)
