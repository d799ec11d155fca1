"""VBPR, FREEDOM and SIGER learn on synthetic multimodal data and beat LightGCN where the
features carry the signal.

The synthetic generator (recsys/data/synthetic.py) plants clusters that collaborative
filtering recovers well; its informative ``text`` modality also reaches the tail items that
have (almost) no train interactions, which ID-only models cannot place. On this sparse
setting (about 4 interactions per user) every multimodal model must (1) beat the popularity
ranking on test Recall@20 and (2) get more than twice as many test hits as LightGCN, trained
the same way, on tail items (at most 2 train interactions). Overall Recall@20 is not asserted
against LightGCN: on this generator the planted collaborative signal dominates. Measured here
(Recall@20 / tail hits): popularity 0.279; LightGCN 0.518 / 18; VBPR 0.319 / 80;
FREEDOM 0.566 / 51; SIGER 0.498 / 47.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from recsys.compose import resolve
from recsys.data import load_dataset
from recsys.graphs import GraphStore
from recsys.models import get_model_class
from recsys.training.tasks import InteractionTask

TAIL_MAX_TRAIN = 2
EPOCHS = 15


@pytest.fixture(scope="module")
def sparse():
    dataset = load_dataset({"format": "synthetic", "synthetic": {"n_users": 1000, "n_items": 400,
                                                                 "interactions_per_user": 4, "seed": 0}})
    return dataset, GraphStore(dataset, "cpu")


def _fit(dataset, graphs, name: str, **params) -> dict:
    """Train ``EPOCHS`` epochs (Adam 5e-3, batch 1024); test Recall@20 and tail hits@20."""
    config = resolve({"model": {"name": name, **params}, "train": {"batch_size": 1024, "lr": 5e-3}})
    task = InteractionTask(dataset, config["train"], {"ks": [20], "metrics": ["recall"], "batch_size": 4096}, 0,
                           torch.device("cpu"))
    torch.manual_seed(0)
    model = get_model_class(name)(dataset, config["model"], graphs)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=5e-3)
    for epoch in range(1, EPOCHS + 1):
        model.pre_epoch(epoch)
        model.train()
        for batch in task.batches(epoch):
            loss = model.loss(*batch)["loss"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    recall = task.evaluate(model, "test")["recall@20"]
    return {"recall": recall, "tail_hits": _tail_hits(model.scores(torch.arange(dataset.n_users)).numpy(), dataset)}


def _tail_hits(scores: np.ndarray, dataset) -> int:
    train = dataset.csr("train")
    tail = np.asarray(train.sum(axis=0)).ravel() <= TAIL_MAX_TRAIN
    scores[train.nonzero()] = -np.inf
    top = np.argsort(-scores, axis=1, kind="stable")[:, :20]
    hits = np.take_along_axis(dataset.csr("test").toarray() > 0, top, axis=1)
    return int((hits & tail[top]).sum())


def _popularity_recall(dataset) -> float:
    train, test = dataset.csr("train"), dataset.csr("test")
    scores = np.tile(np.asarray(train.sum(axis=0)).ravel(), (dataset.n_users, 1))
    scores[train.nonzero()] = -np.inf
    top = np.argsort(-scores, axis=1, kind="stable")[:, :20]
    hits = np.take_along_axis(test.toarray() > 0, top, axis=1).sum(1)
    users = np.diff(test.indptr) > 0
    return float((hits[users] / np.diff(test.indptr)[users]).mean())


@pytest.fixture(scope="module")
def lightgcn(sparse):
    return _fit(*sparse, "lightgcn", n_layers=2)


@pytest.mark.parametrize("name,params", [
    ("vbpr", {"reg_weight": 0.01}),
    ("freedom", {}),
    ("siger", {}),
], ids=["vbpr", "freedom", "siger"])
def test_model_learns_and_beats_lightgcn_on_tail_items(sparse, lightgcn, name, params):
    dataset, graphs = sparse
    result = _fit(dataset, graphs, name, **params)
    assert result["recall"] > _popularity_recall(dataset) + 0.02, result
    assert result["tail_hits"] > 2 * lightgcn["tail_hits"], (result, lightgcn)
