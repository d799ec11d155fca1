import numpy as np
import pytest
import scipy.sparse as sp

from recsys.training.sampler import NegativeSampler


def _random_csr(n_users, n_items, density, seed):
    rng = np.random.default_rng(seed)
    dense = rng.random((n_users, n_items)) < density
    return sp.csr_matrix(dense.astype(np.float32))


def test_negatives_never_hit_excluded_items():
    exclude = _random_csr(50, 30, 0.6, 0)
    sampler = NegativeSampler(exclude)
    users = np.repeat(np.arange(50), 40)
    neg = sampler.sample(users, np.random.default_rng(1))
    dense = exclude.toarray()
    assert not dense[users, neg].any()
    assert neg.min() >= 0 and neg.max() < 30


def test_negatives_are_uniform_over_allowed_items():
    exclude = sp.csr_matrix(np.array([[1, 1, 0, 0, 0, 0]], dtype=np.float32))
    sampler = NegativeSampler(exclude)
    neg = sampler.sample(np.zeros(40000, dtype=np.int64), np.random.default_rng(0))
    counts = np.bincount(neg, minlength=6)
    assert counts[:2].sum() == 0
    assert np.allclose(counts[2:] / 40000, 0.25, atol=0.01)


def test_same_rng_seed_gives_same_negatives():
    exclude = _random_csr(20, 15, 0.3, 2)
    sampler = NegativeSampler(exclude)
    users = np.arange(20).repeat(5)
    a = sampler.sample(users, np.random.default_rng(7))
    b = sampler.sample(users, np.random.default_rng(7))
    assert np.array_equal(a, b)


def test_user_with_every_item_is_an_error():
    exclude = sp.csr_matrix(np.array([[1, 1], [1, 0]], dtype=np.float32))
    with pytest.raises(ValueError, match="user index 0 has interacted with every item"):
        NegativeSampler(exclude)
