"""Serving a trained run: top-K lists and pair scores by raw id.

:class:`TrainedRun` (what :func:`recsys.load_run` returns) holds a trained model with its
dataset. For each requested user u the K items with the highest score s(u, i) =
``model.scores`` — the model's final representations, computed once by
``model.embeddings()`` and then scored one batch of users at a time — are listed in order of
score descending, ties broken by the lower item index (the rule of
:func:`recsys.evaluation.ranking.stable_topk`, so recommendations agree with evaluation).
Items the user interacted with in ``train`` (default), ``train+valid`` or ``none`` are
excluded; a user with fewer than K remaining items gets fewer rows. Rows: ``user`` (raw id),
``rank`` (1..K), ``item`` (raw id), ``score`` (float32).

``index="faiss"`` (``recsys export --index faiss``) finds the top K in a FAISS HNSW index over
the item representations instead of scoring every item, for large catalogues: approximate,
for models that score by inner product (:mod:`recsys.evaluation.retrieval`; needs
``pip install "recsys[faiss]"``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import scipy.sparse as sp
import torch
from tqdm import tqdm

from recsys.data.dataset import Dataset
from recsys.errors import DataError
from recsys.evaluation.ranking import SCORE_BLOCK_ELEMENTS, csr_rows_to_coo, topk_excluding
from recsys.evaluation.retrieval import FaissRetriever
from recsys.models.base import Recommender

EXCLUDE_MODES = ("train", "train+valid", "none")
INDEXES = ("exact", "faiss")
SCHEMA = pa.schema([("user", pa.string()), ("rank", pa.int32()), ("item", pa.string()), ("score", pa.float32())])
SHOWN_UNKNOWN = 5


class UnknownUsersError(DataError):
    """Requested raw user ids that the run's dataset does not contain."""


class TrainedRun:
    """A trained model with its dataset's raw ids: top-K lists and pair scores by raw id.

    The final representations (``model.embeddings()``) are computed on first use and kept;
    every score is ``model.scores(users, cache)`` on a batch of users. ``index="faiss"`` takes
    the top-K lists from a FAISS index over the item representations (module docstring).
    """

    def __init__(self, model: torch.nn.Module, dataset: Dataset, device: torch.device | str = "cpu",
                 run_dir: str | Path | None = None, config: dict | None = None, task=None,
                 index: str = "exact") -> None:
        """``task`` (the run's training task) evaluates splits; ``run_dir`` and ``config``
        identify the run in export manifests; ``index`` is ``exact`` or ``faiss``."""
        if index not in INDEXES:
            raise ValueError(f"index must be one of {', '.join(INDEXES)}, got '{index}'")
        if index == "faiss" and type(model).scores is not Recommender.scores:
            raise ValueError(f"model {type(model).__name__} scores items with its own rule, not the inner product "
                             f"of its embeddings(); the FAISS index needs inner-product scores: use index exact")
        self.model = model.eval()
        self.index = index
        self._retriever: FaissRetriever | None = None
        self.dataset = dataset
        self.device = torch.device(device)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.config = config
        self.task = task
        self._cache = None
        self._user_index = {str(raw): index for index, raw in enumerate(dataset.user_ids)}
        self._item_index = {str(raw): index for index, raw in enumerate(dataset.item_ids)}
        self._user_raw = pa.array(np.asarray(dataset.user_ids).astype(str))
        self._item_raw = pa.array(np.asarray(dataset.item_ids).astype(str))
        self._exclusions: dict[str, sp.csr_matrix | None] = {}

    @torch.no_grad()
    def _representations(self):
        if self._cache is None:
            self._cache = self.model.embeddings()
        return self._cache

    def _scores(self, users: torch.Tensor) -> torch.Tensor:
        return self.model.scores(users, self._representations()).float()

    def _top_k(self, users: np.ndarray, k: int, excluded: sp.csr_matrix | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(scores, items) of the top k of a batch of users, best first; masked positions score -inf."""
        user_tensor = torch.from_numpy(users).to(self.device)
        if self.index == "faiss":
            user_vectors, item_vectors = self._representations()
            if self._retriever is None:
                self._retriever = FaissRetriever(item_vectors)
            return self._retriever.search(user_vectors[user_tensor], k,
                                          excluded[users] if excluded is not None else None)
        step = max(1, SCORE_BLOCK_ELEMENTS // self.dataset.n_items)   # a bounded score block, as in evaluation
        parts = []
        for start in range(0, len(users), step):
            rows = users[start:start + step]
            mask = csr_rows_to_coo(excluded, rows, self.device) if excluded is not None else None
            parts.append(topk_excluding(self._scores(user_tensor[start:start + step]), mask, k))
        return torch.cat([v for v, _ in parts]), torch.cat([i for _, i in parts])

    def user_indices(self, raw_ids: Sequence, skip_unknown: bool = False) -> tuple[np.ndarray, list[str]]:
        """Indices of ``raw_ids`` (in order) and the unknown ids; unknown ids raise unless skipped."""
        indices, unknown = [], []
        for raw in raw_ids:
            index = self._user_index.get(str(raw))
            if index is None:
                unknown.append(str(raw))
            else:
                indices.append(index)
        if unknown and not skip_unknown:
            raise UnknownUsersError(
                f"{len(unknown)} of {len(raw_ids)} requested user id(s) are not users of dataset "
                f"'{self.dataset.name}' (first: {', '.join(repr(u) for u in unknown[:SHOWN_UNKNOWN])}); "
                f"use the raw ids of its user files, or pass --skip-unknown (skip_unknown=True) to leave them out")
        return np.asarray(indices, dtype=np.int64), unknown

    def _item_indices(self, raw_ids: Sequence) -> np.ndarray:
        unknown = [str(raw) for raw in raw_ids if str(raw) not in self._item_index]
        if unknown:
            raise DataError(f"{len(unknown)} item id(s) are not items of dataset '{self.dataset.name}' "
                            f"(first: {', '.join(repr(i) for i in unknown[:SHOWN_UNKNOWN])})")
        return np.asarray([self._item_index[str(raw)] for raw in raw_ids], dtype=np.int64)

    def exclusion(self, mode: str) -> sp.csr_matrix | None:
        """The users × items matrix of items never recommended under ``mode`` (None for ``none``)."""
        if mode not in EXCLUDE_MODES:
            raise ValueError(f"exclude must be one of {', '.join(EXCLUDE_MODES)}, got '{mode}'")
        if mode not in self._exclusions:
            if mode == "none":
                self._exclusions[mode] = None
            else:
                matrix = self.dataset.csr("train")
                if mode == "train+valid":
                    matrix = (matrix + self.dataset.csr("valid")).tocsr()
                    matrix.data[:] = 1.0
                self._exclusions[mode] = matrix
        return self._exclusions[mode]

    def top_k(self, users: np.ndarray, k: int, exclude: str = "train", batch_size: int = 4096,
              progress: bool = False) -> Iterator[pa.Table]:
        """Top-``k`` rows (user, rank, item, score) for user indices ``users``, one table per batch."""
        if k < 1 or batch_size < 1:
            raise ValueError(f"k and batch_size must be positive, got k={k}, batch_size={batch_size}")
        excluded = self.exclusion(exclude)
        with tqdm(total=len(users), unit="user", desc="export", disable=not progress) as bar:
            for start in range(0, len(users), batch_size):
                batch = users[start:start + batch_size]
                values, items = self._top_k(batch, k, excluded)
                values, items = values.cpu().numpy(), items.cpu().numpy()
                keep = values > -np.inf
                rows, cols = np.nonzero(keep)
                yield pa.table({
                    "user": self._user_raw.take(batch[rows]),
                    "rank": (cols + 1).astype(np.int32),
                    "item": self._item_raw.take(items[rows, cols]),
                    "score": values[rows, cols].astype(np.float32),
                }, schema=SCHEMA)
                bar.update(len(batch))

    def recommend(self, user_raw_ids: Sequence, k: int = 10, exclude: str = "train", batch_size: int = 4096,
                  skip_unknown: bool = False) -> pd.DataFrame:
        """Top-``k`` items of each raw user id, columns user, rank, item, score (module docstring)."""
        if isinstance(user_raw_ids, (str, bytes)):
            user_raw_ids = [user_raw_ids]
        users, _ = self.user_indices(list(user_raw_ids), skip_unknown)
        return pa.concat_tables([SCHEMA.empty_table(), *self.top_k(users, k, exclude, batch_size)]).to_pandas()

    def score(self, users: Sequence, items: Sequence, batch_size: int = 4096) -> np.ndarray:
        """Scores of the aligned (raw user id, raw item id) pairs, float32, no exclusion."""
        if len(users) != len(items):
            raise ValueError(f"score needs aligned pairs: got {len(users)} users and {len(items)} items")
        user_index, _ = self.user_indices(list(users))
        item_index = self._item_indices(list(items))
        distinct, inverse = np.unique(user_index, return_inverse=True)
        out = np.empty(len(user_index), dtype=np.float32)
        for start in range(0, len(distinct), batch_size):
            chunk = distinct[start:start + batch_size]
            rows = self._scores(torch.from_numpy(chunk).to(self.device)).cpu().numpy()
            pairs = np.flatnonzero((inverse >= start) & (inverse < start + len(chunk)))
            out[pairs] = rows[inverse[pairs] - start, item_index[pairs]]
        return out
