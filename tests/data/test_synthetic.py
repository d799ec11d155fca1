"""Synthetic generator: determinism, shape, split guarantees and planted signal."""
from __future__ import annotations

import numpy as np
import pytest

from recsys.data import DataError
from recsys.data.defaults import DATASET_DEFAULTS
from recsys.data.synthetic import generate

K = 20


def _defaults():
    return generate(**DATASET_DEFAULTS["synthetic"])


def _recall_and_hits(scores, ds, items_of_interest):
    """Recall@K on test (train items masked) and hits on ``items_of_interest``."""
    train = ds.csr("train").toarray() > 0
    test = ds.csr("test").toarray()
    scores = np.where(train, -np.inf, scores)
    top = np.argpartition(-scores, K, axis=1)[:, :K]
    hits = np.take_along_axis(test, top, axis=1)
    n_test = test.sum(1)
    users = n_test > 0
    return float((hits.sum(1)[users] / n_test[users]).mean()), int((hits * items_of_interest[top]).sum())


def _row_normalise(m):
    return m / np.maximum(m.sum(1, keepdims=True), 1e-12)


def _feature_knn(feat, k=10):
    unit = feat / np.linalg.norm(feat, axis=1, keepdims=True)
    sim = unit @ unit.T
    np.fill_diagonal(sim, -np.inf)
    keep = np.argpartition(-sim, k, axis=1)[:, :k]
    graph = np.zeros_like(sim)
    np.put_along_axis(graph, keep, np.take_along_axis(sim, keep, axis=1), axis=1)
    return _row_normalise(np.maximum(graph, 0))


def test_same_arguments_same_dataset_and_seed_changes_it():
    a, b = _defaults(), _defaults()
    assert a.fingerprint() == b.fingerprint()
    np.testing.assert_array_equal(a.item_ids, b.item_ids)
    c = generate(**{**DATASET_DEFAULTS["synthetic"], "seed": 1})
    assert c.fingerprint() != a.fingerprint()
    d = generate(**DATASET_DEFAULTS["synthetic"], split_seed=5)
    assert d.fingerprint() != a.fingerprint()
    assert np.array_equal(np.sort(np.concatenate([d.train, d.valid, d.test], 1)[0]),
                          np.sort(np.concatenate([a.train, a.valid, a.test], 1)[0]))


def test_sizes_splits_and_features():
    ds = generate(n_users=120, n_items=90, n_clusters=3, interactions_per_user=12, informative_dim=6,
                  noise_dim=5, popularity_skew=0.5, seed=3, split_ratios=[0.6, 0.2, 0.2])
    assert (ds.n_users, ds.n_items) == (120, 90)
    assert ds.features["text"].shape == (90, 6) and ds.features["image"].shape == (90, 5)
    assert all(f.dtype == np.float32 and np.isfinite(f).all() for f in ds.features.values())
    every = np.concatenate([ds.train, ds.valid, ds.test], axis=1)
    keys = every[0] * ds.n_items + every[1]
    assert np.unique(keys).size == keys.size  # no duplicates, within or across splits
    assert every.min() >= 0 and every[0].max() < 120 and every[1].max() < 90
    per_user = np.bincount(every[0], minlength=120)
    assert per_user.min() >= 3
    train = np.bincount(ds.train[0], minlength=120)
    assert train.min() >= 1
    assert np.all(np.bincount(ds.test[0], minlength=120) == np.floor(0.2 * per_user + 1e-9).clip(min=1))


def test_collaborative_filtering_clearly_beats_popularity():
    ds = _defaults()
    train = ds.csr("train")
    pop = np.asarray(train.sum(0)).ravel()
    none = np.zeros(ds.n_items, dtype=bool)
    pop_recall, _ = _recall_and_hits(np.tile(pop, (ds.n_users, 1)), ds, none)
    scaled = train.multiply(1 / np.sqrt(np.maximum(pop, 1))).tocsr()
    cooc = (scaled.T @ scaled).toarray()
    np.fill_diagonal(cooc, 0)
    cf_recall, _ = _recall_and_hits(train @ _row_normalise(cooc), ds, none)
    assert cf_recall > 3 * pop_recall and cf_recall > 0.4, (cf_recall, pop_recall)


def test_text_is_informative_image_is_noise_and_text_reaches_tail_items():
    ds = _defaults()
    train = ds.csr("train")
    pop = np.asarray(train.sum(0)).ravel()
    tail = pop <= 2
    assert ds.csr("test")[:, tail].sum() >= 40  # fresh items are held out more than trained on
    scaled = train.multiply(1 / np.sqrt(np.maximum(pop, 1))).tocsr()
    cooc = (scaled.T @ scaled).toarray()
    np.fill_diagonal(cooc, 0)
    cf_recall, cf_tail = _recall_and_hits(train @ _row_normalise(cooc), ds, tail)
    text_recall, text_tail = _recall_and_hits(train @ _feature_knn(ds.features["text"]), ds, tail)
    image_recall, _ = _recall_and_hits(train @ _feature_knn(ds.features["image"]), ds, tail)
    assert text_recall > 3 * image_recall, (text_recall, image_recall)
    assert text_tail >= 25 and text_tail > 1.8 * cf_tail, (text_tail, cf_tail)


@pytest.mark.parametrize("key,value", [("n_users", 0), ("interactions_per_user", 2), ("popularity_skew", -1)])
def test_invalid_parameters(key, value):
    with pytest.raises(DataError, match=rf"dataset\.synthetic\.{key} = {value} is invalid"):
        generate(**{**DATASET_DEFAULTS["synthetic"], key: value})


def test_catalogue_is_deterministic_linear_and_clustered():
    from recsys.data.synthetic import catalogue

    a, b = catalogue(4000, seed=3), catalogue(4000, seed=3)
    assert a.fingerprint() == b.fingerprint()
    assert a.n_users == 8000 and a.features["text"].shape == (4000, 64) and a.features["image"].shape == (4000, 32)
    pairs = np.concatenate([a.train, a.valid, a.test], axis=1)
    assert np.unique(pairs[0] * a.n_items + pairs[1]).size == pairs.shape[1], "no duplicate interaction"
    per_user = pairs.shape[1] / a.n_users
    assert 6.0 < per_user < 7.2, per_user
    shares = np.array([s.shape[1] for s in (a.train, a.valid, a.test)]) / pairs.shape[1]
    assert np.allclose(shares, [0.8, 0.1, 0.1], atol=0.02)
    degree = np.bincount(pairs[1], minlength=a.n_items)
    assert degree.max() > 8 * degree.mean(), "log-normal popularity gives hubs"
