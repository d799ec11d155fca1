"""Cosine kNN search with FAISS (Johnson, Douze & Jégou, "Billion-scale similarity search
with GPUs", IEEE TBD 2019), for kNN graphs over large catalogues and user sets.

The exact builders (:mod:`recsys.graphs.knn`) compare every row with every other: n² D
products, hours at a million rows. :class:`FaissSearch` only changes how each row's candidate
neighbours are found; the graph is then built exactly as before: the candidates are ranked by
their exact cosine (float64, rounded to float32; ties to the lower index), the row's own index
is always a candidate, a zero row keeps neighbours 0..k-1 with similarity 0, and the weights
and D^-1/2 S D^-1/2 normalisation are those of :func:`recsys.graphs.knn.neighbour_graph`.

Which index, by the number of rows n (``index: auto``):

- ``flat`` (n ≤ ``flat_max_rows``, default 200,000): exhaustive inner product of the
  L2-normalised rows (``IndexFlatIP``). Its top-(k + MARGIN) candidates are decided exactly by
  :func:`recsys.graphs.knn.exact_topk`, so the neighbours are those of the exact builder
  (nothing is approximated; FAISS only does the n² products, in BLAS blocks with a heap per
  row, several times faster than the exact builder). Still n² D: beyond a few 10^5 rows
  HNSW is cheaper.
- ``hnsw`` (n > ``flat_max_rows``): a hierarchical navigable small-world graph over the
  normalised rows (Malkov & Yashunin, IEEE TPAMI 2020; ``IndexHNSWFlat``, inner product) with
  ``hnsw_m`` links per node (M, default 32), ``ef_construction`` candidates while inserting
  (default 128) and max(``ef_search``, 4 (k + MARGIN)) candidates while searching (default
  ef_search 128: 128 for k = 10, 192 for k = 40; recall falls as k nears the search width).
  Each row asks for k + MARGIN candidates, which are then ranked exactly
  (:func:`recsys.graphs.knn.refine_topk`); a true neighbour that the search misses is
  replaced by the next best candidate, the only approximation. Build time is about
  n · ef_construction · M distance computations, search n · ef_search · M, times a factor
  that grows like log n: nearly linear in n.
  Recall@k against exact: bench/README.md (``bench/knn_faiss.py``).

Determinism: the HNSW level of each node is drawn from FAISS's generator seeded with
``seed``, and nodes are inserted on one thread (a multi-threaded insertion order depends on
the scheduling), so equal inputs and seed give the same graph; searching is per row and uses
torch's thread count (``threads:`` of the run config). FAISS is an optional dependency:
``pip install "recsys[faiss]"`` (or ``pip install faiss-cpu``); it is imported only when a
FAISS search runs.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Iterator, Mapping

import numpy as np
import torch

from recsys.errors import ConfigError
from recsys.graphs.knn import (MARGIN, as_float32, default_chunk, exact_topk, float32_error, highest_precision,
                              refine_topk)

BACKENDS = ("exact", "faiss")
INDEXES = ("auto", "flat", "hnsw")
SEARCH_ROWS = 1 << 16     # query rows per FAISS search call
EF_PER_CANDIDATE = 4      # HNSW search width per requested candidate, at least


def import_faiss(needed_by: str = "graphs.knn_backend: faiss", otherwise: str = "set graphs.knn_backend: exact"):
    """The ``faiss`` module, or a ConfigError naming the setting that needs it and how to
    install it."""
    try:
        import faiss
    except ImportError as exc:
        raise ConfigError(f"{needed_by} needs the faiss package, which is not installed: pip install "
                          f"\"recsys[faiss]\" (or pip install faiss-cpu); or {otherwise}") from exc
    return faiss


@contextmanager
def faiss_threads(faiss, threads: int) -> Iterator[None]:
    """FAISS's OpenMP thread count set to ``threads`` inside the block."""
    saved = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(max(1, int(threads)))
    try:
        yield
    finally:
        faiss.omp_set_num_threads(saved)


@dataclass(frozen=True)
class FaissSearch:
    """Top-k cosine neighbour search with a FAISS index (module docstring); the fields are the
    keys of the ``graphs.faiss`` config section."""

    index: str = "auto"
    flat_max_rows: int = 200_000
    hnsw_m: int = 32
    ef_construction: int = 128
    ef_search: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        if self.index not in INDEXES:
            raise ValueError(f"graphs.faiss.index must be one of {', '.join(INDEXES)}, got '{self.index}'")
        for name in ("flat_max_rows", "hnsw_m", "ef_construction", "ef_search"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"graphs.faiss.{name} must be a positive integer, got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"graphs.faiss.seed must be an integer, got {self.seed!r}")

    def index_for(self, n: int) -> str:
        """``"flat"`` or ``"hnsw"``: the index used for ``n`` rows."""
        if self.index != "auto":
            return self.index
        return "flat" if n <= self.flat_max_rows else "hnsw"

    def key(self) -> str:
        """The search and its parameters as text (part of a cached graph's key)."""
        return "faiss(" + ", ".join(f"{name}={value}" for name, value in asdict(self).items()) + ")"

    def topk(self, features, k: int, chunk_size: int | None = None,
             device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """Top-k cosine neighbours of every row (itself included): (similarities, indices), both
        n × min(k, n), each row by ascending index, as :func:`recsys.graphs.knn.cosine_topk`."""
        faiss = import_faiss()
        x = as_float32(features, device)
        n, dim = x.shape
        k = min(int(k), n)
        wanted = min(n, k + MARGIN)
        chunk = int(chunk_size) if chunk_size else default_chunk(n)
        with highest_precision():
            unit = (x / x.norm(dim=1, keepdim=True).clamp_min(1e-30)).cpu().numpy()
        kind = self.index_for(n)
        index = self._build(faiss, kind, unit, wanted)
        values = np.empty((n, wanted), dtype=np.float32)
        indices = np.empty((n, wanted), dtype=np.int64)
        with faiss_threads(faiss, torch.get_num_threads()):
            for start in range(0, n, SEARCH_ROWS):
                values[start:start + SEARCH_ROWS], indices[start:start + SEARCH_ROWS] = \
                    index.search(unit[start:start + SEARCH_ROWS], wanted)
        del index, unit
        indices = torch.from_numpy(indices).to(x.device)
        if kind == "flat":
            return exact_topk(x, torch.from_numpy(values).to(x.device), indices, k, float32_error(dim), chunk)
        return refine_topk(x, indices, k, chunk)

    def _build(self, faiss, kind: str, unit: np.ndarray, wanted: int):
        """The index of ``kind`` over the rows of ``unit``, ready to return ``wanted`` neighbours."""
        dim = unit.shape[1]
        if kind == "flat":
            index = faiss.IndexFlatIP(dim)
            index.add(unit)
            return index
        index = faiss.IndexHNSWFlat(dim, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = self.ef_construction
        index.hnsw.rng = faiss.RandomGenerator(self.seed)
        with faiss_threads(faiss, 1):
            index.add(unit)
        index.hnsw.efSearch = max(self.ef_search, EF_PER_CANDIDATE * wanted)
        return index


def search_settings(graphs: Mapping | None) -> FaissSearch | None:
    """The neighbour search a ``graphs`` config section asks for: None (exact) or a
    :class:`FaissSearch`, its values checked (ValueError naming the key); FAISS itself is not
    needed for this.

    ``graphs`` is ``{"knn_backend": "exact" | "faiss", "faiss": {...FaissSearch fields}}``;
    None means exact.
    """
    graphs = dict(graphs or {})
    backend = graphs.get("knn_backend", "exact")
    if backend not in BACKENDS:
        raise ValueError(f"graphs.knn_backend must be one of {', '.join(BACKENDS)}, got '{backend}'")
    options = graphs.get("faiss") or {}
    if not isinstance(options, Mapping):
        raise ValueError(f"graphs.faiss names a section, not a value (got {options!r}); set its keys instead: "
                         f"{', '.join(f'graphs.faiss.{name}' for name in FaissSearch.__dataclass_fields__)}")
    unknown = sorted(set(options) - set(FaissSearch.__dataclass_fields__))
    if unknown:
        raise ValueError(f"unknown key(s) graphs.faiss.{', graphs.faiss.'.join(unknown)}; valid keys: "
                         f"{', '.join(FaissSearch.__dataclass_fields__)}")
    search = FaissSearch(**options)
    return search if backend == "faiss" else None


def knn_search(graphs: Mapping | None) -> FaissSearch | None:
    """:func:`search_settings`, and for the FAISS backend a ConfigError with the install command
    when ``faiss`` is missing."""
    search = search_settings(graphs)
    if search is not None:
        import_faiss()
    return search
