import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recsys.evaluation import evaluate_ranking, evaluate_ranking_per_user, stable_topk, topk_excluding
from recsys.evaluation.ranking import csr_rows_to_coo

from . import reference

METRICS = ["recall", "ndcg", "precision", "map", "hit"]


def _csr(pairs: dict[int, set[int]], n_users: int, n_items: int) -> sp.csr_matrix:
    rows = [u for u, items in pairs.items() for _ in items]
    cols = [i for items in pairs.values() for i in sorted(items)]
    return sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(n_users, n_items))


def _random_case(seed: int, n_users: int = 30, n_items: int = 25, levels: int = 4):
    """Integer scores with few levels (many ties); target sizes 0, 1, and more than K."""
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, levels, size=(n_users, n_items)).astype(np.float32)
    excluded, targets = {}, {}
    for user in range(n_users):
        items = rng.permutation(n_items)
        n_excl = int(rng.integers(0, 8))
        n_target = [0, 1, 2, 12][user % 4]
        excluded[user] = set(items[:n_excl].tolist())
        targets[user] = set(items[n_excl:n_excl + n_target].tolist())
    return scores, excluded, targets


def _evaluate(scores, excluded, targets, ks, batch_size=7):
    n_users, n_items = scores.shape
    table = torch.from_numpy(scores)
    return evaluate_ranking(lambda users: table[users].clone(), _csr(excluded, n_users, n_items),
                            _csr(targets, n_users, n_items), ks=ks, metrics=METRICS, batch_size=batch_size)


@pytest.mark.parametrize("seed", range(6))
def test_matches_brute_force_reference_with_ties(seed):
    scores, excluded, targets = _random_case(seed)
    ks = [1, 3, 5, 10]
    got = _evaluate(scores, excluded, targets, ks)
    want = reference.evaluate(scores, excluded, targets, ks, METRICS)
    assert got.keys() == want.keys()
    for key in want:
        assert got[key] == pytest.approx(want[key], abs=1e-12), key


def test_continuous_scores_match_reference():
    rng = np.random.default_rng(7)
    scores = rng.standard_normal((40, 60)).astype(np.float32)
    _, excluded, targets = _random_case(7, 40, 60, levels=2)
    got = _evaluate(scores, excluded, targets, [5, 20])
    want = reference.evaluate(scores, excluded, targets, [5, 20], METRICS)
    assert got == pytest.approx(want, abs=1e-12)


def test_result_does_not_depend_on_batch_size():
    scores, excluded, targets = _random_case(3)
    results = [_evaluate(scores, excluded, targets, [2, 5], batch_size=b) for b in (1, 4, 1000)]
    assert results[0] == results[1] == results[2]


def test_score_block_is_bounded_by_the_catalogue_size(monkeypatch):
    """Large catalogues score fewer users at a time (memory O(block), not O(batch × items))."""
    from recsys.evaluation import ranking

    scores, excluded, targets = _random_case(5)
    n_users, n_items = scores.shape
    expected = _evaluate(scores, excluded, targets, [2, 5], batch_size=1000)
    monkeypatch.setattr(ranking, "SCORE_BLOCK_ELEMENTS", 3 * n_items + 1)
    sizes = []

    def score_fn(users):
        sizes.append(users.numel())
        return torch.from_numpy(scores)[users].clone()

    target_csr = _csr(targets, n_users, n_items)
    got = evaluate_ranking(score_fn, _csr(excluded, n_users, n_items), target_csr, ks=[2, 5], metrics=METRICS,
                           batch_size=1000)
    assert max(sizes) == 3 and sum(sizes) == int((target_csr.getnnz(axis=1) > 0).sum())
    assert got == expected


def test_users_without_targets_are_skipped_and_never_scored():
    scores, excluded, targets = _random_case(4)
    n_users, n_items = scores.shape
    seen = []

    def score_fn(users):
        seen.extend(users.tolist())
        return torch.from_numpy(scores)[users].clone()

    evaluate_ranking(score_fn, _csr(excluded, n_users, n_items), _csr(targets, n_users, n_items),
                     ks=[5], metrics=["recall"], batch_size=8)
    assert seen == [u for u in range(n_users) if targets[u]]


def test_masked_items_never_ranked_and_never_hit():
    # user 0's only target is excluded and scores highest: recall must be 0, not 1
    scores = np.array([[9.0, 1.0, 2.0, 3.0]], dtype=np.float32)
    got = _evaluate(scores, {0: {0}}, {0: {0}}, [2])
    assert got["recall@2"] == 0.0
    table = torch.from_numpy(scores).clone()
    values, items = topk_excluding(table, csr_rows_to_coo(_csr({0: {0, 3}}, 1, 4), np.array([0]), torch.device("cpu")), 2)
    assert items.tolist() == [[2, 1]] and values.tolist() == [[2.0, 1.0]]


def test_stable_topk_prefers_lower_index_on_ties():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 3, size=(50, 40)).astype(np.float32)
    scores[3] = 1.0  # a row of all-equal scores
    scores[4, ::2] = float("-inf")
    for k in (1, 7, 40, 45):
        values, items = stable_topk(torch.from_numpy(scores), k)
        for row in range(scores.shape[0]):
            want = sorted(range(scores.shape[1]), key=lambda i: (-scores[row, i], i))[:k]
            assert items[row].tolist() == want
            assert values[row].tolist() == scores[row, want].tolist()


def test_nan_scores_are_an_error():
    scores = torch.zeros(3, 10)
    scores[1, 4] = float("nan")
    with pytest.raises(ValueError, match="NaN in 1 row"):
        stable_topk(scores, 5)


def test_wrong_score_shape_is_an_error():
    targets = _csr({0: {1}}, 2, 5)
    with pytest.raises(ValueError, match="expected \\(1, 5\\)"):
        evaluate_ranking(lambda users: torch.zeros(len(users), 4), None, targets, ks=[2], metrics=["recall"])


def test_fewer_items_than_k():
    scores = np.array([[0.5, 0.1, 0.9]], dtype=np.float32)
    got = _evaluate(scores, {0: set()}, {0: {1}}, [2, 10])
    assert got["recall@2"] == 0.0 and got["recall@10"] == 1.0
    assert got["precision@10"] == pytest.approx(0.1)


@pytest.mark.integration
def test_clothing_popularity_ranking_matches_reference(shared_data):
    """Real split, popularity scores (ties everywhere), 150 users against the reference."""
    root = shared_data / "amazon" / "clothing"
    train, test = np.load(root / "train.npy"), np.load(root / "test.npy")
    n_users, n_items = int(max(train[0].max(), test[0].max())) + 1, int(max(train[1].max(), test[1].max())) + 1
    counts = np.bincount(train[1], minlength=n_items).astype(np.float32)
    chosen = np.random.default_rng(0).choice(n_users, size=150, replace=False)
    keep = np.isin(test[0], chosen)
    exclude = sp.csr_matrix((np.ones(train.shape[1], np.float32), (train[0], train[1])), shape=(n_users, n_items))
    target = sp.csr_matrix((np.ones(int(keep.sum()), np.float32), (test[0][keep], test[1][keep])),
                           shape=(n_users, n_items))
    table = torch.from_numpy(counts)
    got = evaluate_ranking(lambda users: table.expand(users.shape[0], -1).clone(), exclude, target,
                           ks=[10, 20], metrics=METRICS, batch_size=64)
    excluded = {int(u): set(exclude[int(u)].indices.tolist()) for u in chosen}
    targets = {int(u): set(target[int(u)].indices.tolist()) for u in chosen}
    scores = {int(u): counts for u in chosen}
    want = reference.evaluate(scores, excluded, targets, [10, 20], METRICS)
    assert got == pytest.approx(want, abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_per_user_values_match_brute_force_and_average_to_the_split_metrics(seed):
    scores, excluded, targets = _random_case(seed)
    n_users, n_items = scores.shape
    table = torch.from_numpy(scores)
    args = (lambda users: table[users].clone(), _csr(excluded, n_users, n_items), _csr(targets, n_users, n_items))
    per_user = evaluate_ranking_per_user(*args, ks=[3, 10], metrics=METRICS, batch_size=7)
    evaluated = [u for u in range(n_users) if targets[u]]
    assert per_user.users.tolist() == evaluated
    for row, user in enumerate(evaluated):
        ranked = reference.ranked_items(scores[user], excluded[user], 10)
        for k in (3, 10):
            want = reference.user_metrics(ranked, targets[user], k)
            for metric in METRICS:
                assert per_user.values[f"{metric}@{k}"][row] == pytest.approx(want[metric], abs=1e-12)
    assert per_user.means() == evaluate_ranking(*args, ks=[3, 10], metrics=METRICS, batch_size=5)
