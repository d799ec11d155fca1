"""Top-K retrieval by inner product (recsys.evaluation.retrieval) against brute force."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recsys.evaluation.retrieval import exact_top_k


def _vectors(n_users=40, n_items=300, d=8, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((5, d))
    items = centres[rng.integers(5, size=n_items)] + 0.5 * rng.standard_normal((n_items, d))
    items *= rng.lognormal(0, 0.3, size=(n_items, 1))                   # norms differ: a true MIPS problem
    users = centres[rng.integers(5, size=n_users)] + 0.5 * rng.standard_normal((n_users, d))
    items[7] = items[3]                                                  # tied scores
    return torch.tensor(users, dtype=torch.float32), torch.tensor(items, dtype=torch.float32)


def _excluded(n_users, n_items, seed=1, heavy=()):
    """Random exclusions (0..15 per user); users in ``heavy`` exclude all but 5 items."""
    rng = np.random.default_rng(seed)
    rows, cols = [], []
    for user in range(n_users):
        chosen = rng.choice(n_items, n_items - 5 if user in heavy else rng.integers(0, 16), replace=False)
        rows += [user] * len(chosen)
        cols += chosen.tolist()
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_users, n_items))


def brute_force(users: torch.Tensor, items: torch.Tensor, k: int, excluded: sp.csr_matrix | None):
    """Per user: allowed items by score descending (float64), then lower index; -1 / -inf padding."""
    scores = (users.double() @ items.double().T).numpy()
    out_items = np.full((len(users), k), -1)
    for u in range(len(users)):
        allowed = np.setdiff1d(np.arange(items.shape[0]), excluded[u].indices if excluded is not None else [])
        order = allowed[np.lexsort((allowed, -scores[u, allowed]))][:k]
        out_items[u, :len(order)] = order
    return out_items, scores


@pytest.mark.parametrize("with_exclusions", [True, False])
def test_exact_top_k_is_brute_force(with_exclusions):
    users, items = _vectors()
    excluded = _excluded(40, 300, heavy={2}) if with_exclusions else None
    values, found = exact_top_k(users, items, 10, excluded)
    expected, scores = brute_force(users, items, 10, excluded)
    np.testing.assert_array_equal(found.numpy(), expected)
    kept = expected >= 0
    np.testing.assert_allclose(values.numpy()[kept], np.take_along_axis(scores, np.where(kept, expected, 0), 1)[kept],
                               rtol=1e-5, atol=1e-5)
    assert (values.numpy()[~kept] == -np.inf).all()
    if with_exclusions:
        assert (found[2] >= 0).sum() == 5                                 # only 5 allowed items: 5 rows


def test_exact_top_k_checks_shapes():
    users, items = _vectors()
    with pytest.raises(ValueError, match="excluded matrix has shape"):
        exact_top_k(users, items, 5, sp.csr_matrix((3, 300)))
    with pytest.raises(ValueError, match="dimensions"):
        exact_top_k(users[:, :4], items, 5)


faiss = pytest.importorskip("faiss")
from recsys.evaluation.retrieval import FaissRetriever  # noqa: E402


def test_faiss_retrieval_finds_the_exact_top_k_with_exclusions_and_overfetch():
    users, items = _vectors(n_users=60, n_items=2000, d=8, seed=3)
    excluded = _excluded(60, 2000, seed=4, heavy={5, 9})
    retriever = FaissRetriever(items, max_overfetch=8)
    values, found = retriever.search(users, 20, excluded)
    expected, scores = brute_force(users, items, 20, excluded)
    hits = sum(len(set(f) & set(e) - {-1}) for f, e in zip(found.tolist(), expected.tolist()))
    assert hits >= 0.98 * (expected >= 0).sum()
    for u in range(60):                                                  # never an excluded item
        assert not set(found[u].tolist()) & set(excluded[u].indices.tolist())
    for u in (5, 9):                                                     # more exclusions than the over-fetch: exact
        np.testing.assert_array_equal(found[u].numpy(), expected[u])
    np.testing.assert_allclose(values.numpy()[found >= 0], np.take_along_axis(scores, found.clamp_min(0).numpy(), 1)
                               [found.numpy() >= 0], rtol=1e-5, atol=1e-5)
    assert (np.diff(values.numpy()[:, :5], axis=1) <= 0).all()          # best first


def test_short_candidate_lists_fall_back_to_exact(monkeypatch):
    users, items = _vectors(n_users=12, n_items=200, seed=5)
    excluded = _excluded(12, 200, seed=6)
    retriever = FaissRetriever(items, max_overfetch=0)                  # no over-fetch at all
    _, found = retriever.search(users, 10, excluded)
    expected, _ = brute_force(users, items, 10, excluded)
    np.testing.assert_array_equal(found.numpy(), expected)              # every user with exclusions fell back
    for u in range(12):
        assert not set(found[u].tolist()) & set(excluded[u].indices.tolist())


def test_faiss_retrieval_without_exclusions_and_k_above_the_catalogue():
    users, items = _vectors(n_users=5, n_items=30, seed=7)
    _, found = FaissRetriever(items).search(users, 50)
    expected, _ = brute_force(users, items, 30, None)
    assert found.shape == (5, 30)
    np.testing.assert_array_equal(found.numpy(), expected)


def test_faiss_retrieval_is_deterministic():
    users, items = _vectors(n_users=50, n_items=3000, seed=8)
    first = FaissRetriever(items, hnsw_m=8, ef_construction=16, ef_search=16, seed=2).search(users, 10)
    second = FaissRetriever(items, hnsw_m=8, ef_construction=16, ef_search=16, seed=2).search(users, 10)
    assert torch.equal(first[1], second[1]) and torch.equal(first[0], second[0])
