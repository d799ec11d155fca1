"""Top-K items by inner-product score s(u, i) = ⟨z_u, z_i⟩, exact or from a FAISS index.

Both retrievers have one contract: ``search(user_vectors, k, excluded)`` returns (scores,
items), B × min(k, n_items), each row by score descending then lower item index (the rule of
:func:`recsys.evaluation.ranking.stable_topk`, so exact retrieval equals evaluation's and
the export's ranking); ``excluded`` (a B × n_items sparse matrix, e.g. the users' train rows)
marks items never returned. A user with fewer than k allowed items gets score −inf and item −1
in the positions left over.

- :func:`exact_top_k` scores every item (B × n_items products, in blocks of at most 2^26
  scores) and masks the excluded ones.
- :class:`FaissRetriever` searches an HNSW graph (Malkov & Yashunin, IEEE TPAMI 2020) over the
  item vectors, built once. HNSW finds nearest neighbours by angle; maximum inner product is
  reduced to it by the transform of Bachrach et al. (RecSys 2014): every item gets one more
  coordinate √(Φ² − ‖z_i‖²) with Φ = max‖z_i‖, every query a 0 there, so all items have norm
  Φ and ⟨q̃, z̃_i⟩ = ⟨z_u, z_i⟩. A user with e excluded items asks for
  k + min(e, ``max_overfetch``) candidates (over-fetch), whose scores are recomputed in float32,
  and drops the excluded ones; when fewer than k allowed candidates remain (more exclusions
  than the over-fetch covers, or an exhausted search), that user falls back to
  :func:`exact_top_k`, so every list is complete. The only approximation is an allowed item
  the graph search misses. Parameters: ``hnsw_m`` links per node (default 32),
  ``ef_construction`` (200) and ``ef_search`` (256, at least the candidates asked for); items
  are inserted on one thread with a generator seeded by ``seed``, so the index, and the
  results, are deterministic. Needs ``pip install "recsys[faiss]"``.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from recsys.evaluation.ranking import SCORE_BLOCK_ELEMENTS, _hit_matrix, csr_rows_to_coo, topk_excluding
from recsys.graphs.ann import faiss_threads, import_faiss
from recsys.graphs.topk import sort_rows

CANDIDATE_BLOCK_ELEMENTS = 1 << 24   # gathered candidate floats scored at a time


def _check(user_vectors: Tensor, item_vectors: Tensor, k: int, excluded: sp.spmatrix | None) -> sp.csr_matrix | None:
    if k < 1:
        raise ValueError(f"k must be positive, got {k}")
    if user_vectors.shape[1] != item_vectors.shape[1]:
        raise ValueError(f"user vectors have {user_vectors.shape[1]} dimensions, item vectors {item_vectors.shape[1]}")
    if excluded is None:
        return None
    if excluded.shape != (user_vectors.shape[0], item_vectors.shape[0]):
        raise ValueError(f"excluded matrix has shape {excluded.shape}, expected "
                         f"({user_vectors.shape[0]}, {item_vectors.shape[0]}) (users of the batch × items)")
    return sp.csr_matrix(excluded)


def _no_item_where_masked(values: Tensor, items: Tensor) -> tuple[Tensor, Tensor]:
    return values, items.masked_fill(values == -torch.inf, -1)


@torch.no_grad()
def exact_top_k(user_vectors: Tensor, item_vectors: Tensor, k: int,
                excluded: sp.spmatrix | None = None) -> tuple[Tensor, Tensor]:
    """Top-k items of every user among all items (module docstring), scores in float32."""
    excluded = _check(user_vectors, item_vectors, k, excluded)
    n_users, n_items = user_vectors.shape[0], item_vectors.shape[0]
    k = min(int(k), n_items)
    values = torch.empty(n_users, k, device=user_vectors.device)
    items = torch.empty(n_users, k, dtype=torch.long, device=user_vectors.device)
    step = max(1, SCORE_BLOCK_ELEMENTS // max(1, n_items))
    for start in range(0, n_users, step):
        rows = np.arange(start, min(start + step, n_users))
        scores = (user_vectors[start:start + step] @ item_vectors.T).float()
        mask = csr_rows_to_coo(excluded, rows, user_vectors.device) if excluded is not None else None
        values[start:start + step], items[start:start + step] = topk_excluding(scores, mask, k)
    return _no_item_where_masked(values, items)


class FaissRetriever:
    """Approximate top-k by inner product over fixed item vectors (module docstring)."""

    def __init__(self, item_vectors: Tensor, hnsw_m: int = 32, ef_construction: int = 200, ef_search: int = 256,
                 seed: int = 0, max_overfetch: int = 256) -> None:
        for name, value in (("hnsw_m", hnsw_m), ("ef_construction", ef_construction), ("ef_search", ef_search),
                            ("max_overfetch", max_overfetch)):
            if int(value) < (0 if name == "max_overfetch" else 1):
                raise ValueError(f"{name} must be positive, got {value}")
        faiss = import_faiss("the FAISS top-K index (export --index faiss)", "use the exact index")
        self.item_vectors = item_vectors.detach().float()
        self.ef_search = int(ef_search)
        self.max_overfetch = int(max_overfetch)
        items = self.item_vectors.cpu().double()
        norms = items.norm(dim=1)
        lift = (norms.max() ** 2 - norms ** 2).clamp_min(0).sqrt()
        augmented = torch.cat([items, lift[:, None]], dim=1).float().numpy()
        self.index = faiss.IndexHNSWFlat(augmented.shape[1], int(hnsw_m), faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efConstruction = int(ef_construction)
        self.index.hnsw.rng = faiss.RandomGenerator(int(seed))
        with faiss_threads(faiss, 1):
            self.index.add(augmented)
        self._faiss = faiss

    @property
    def n_items(self) -> int:
        return self.item_vectors.shape[0]

    @torch.no_grad()
    def search(self, user_vectors: Tensor, k: int, excluded: sp.spmatrix | None = None) -> tuple[Tensor, Tensor]:
        """Top-k items of every user (module docstring), scores in float32."""
        excluded = _check(user_vectors, self.item_vectors, k, excluded)
        n_users = user_vectors.shape[0]
        k = min(int(k), self.n_items)
        counts = np.diff(excluded.indptr) if excluded is not None else np.zeros(n_users, dtype=np.int64)
        fetch = min(self.n_items, k + int(min(counts.max(initial=0), self.max_overfetch)))
        queries = torch.cat([user_vectors.detach().float().cpu(), torch.zeros(n_users, 1)], dim=1).numpy()
        self.index.hnsw.efSearch = max(self.ef_search, fetch)
        with faiss_threads(self._faiss, torch.get_num_threads()):
            _, found = self.index.search(queries, fetch)
        vectors = self.item_vectors.to(user_vectors.device)
        values = torch.empty(n_users, k, device=user_vectors.device)
        items = torch.empty(n_users, k, dtype=torch.long, device=user_vectors.device)
        step = max(1, CANDIDATE_BLOCK_ELEMENTS // (fetch * vectors.shape[1]))
        for start in range(0, n_users, step):
            candidates = torch.from_numpy(found[start:start + step]).to(user_vectors.device)
            missing = candidates < 0
            candidates = candidates.clamp_min(0)
            scores = torch.einsum("bd,bcd->bc", user_vectors[start:start + step].float(), vectors[candidates])
            scores[missing] = -torch.inf
            if excluded is not None:
                pairs = csr_rows_to_coo(excluded, np.arange(start, start + len(candidates)), user_vectors.device)
                if pairs[0].numel():
                    scores[_hit_matrix(candidates, pairs, self.n_items)] = -torch.inf
            ranked_values, ranked_items = sort_rows(scores, candidates)
            values[start:start + step], items[start:start + step] = ranked_values[:, :k], ranked_items[:, :k]
        short = (values[:, -1] == -torch.inf).nonzero().flatten()
        if short.numel():
            rows = short.cpu().numpy()
            values[short], items[short] = exact_top_k(user_vectors[short], vectors, k,
                                                      excluded[rows] if excluded is not None else None)
        return _no_item_where_masked(values, items)
