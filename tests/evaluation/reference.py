"""Brute-force per-user reference of the protocol's ranking metrics, in plain Python.

Deliberately written the slow, obvious way (sort each user's items by (-score, index),
drop excluded items, walk the list) so the batched implementation has something
independent to be compared with.
"""
from __future__ import annotations

import math


def ranked_items(scores_row, excluded: set[int], k: int) -> list[int]:
    order = sorted(range(len(scores_row)), key=lambda item: (-float(scores_row[item]), item))
    return [item for item in order if item not in excluded][:k]


def user_metrics(ranked: list[int], targets: set[int], k: int) -> dict[str, float]:
    top = ranked[:k]
    hit_flags = [item in targets for item in top]
    n_hits = sum(hit_flags)
    dcg = sum(1.0 / math.log2(r + 2) for r, hit in enumerate(hit_flags) if hit)
    idcg = sum(1.0 / math.log2(r + 2) for r in range(min(len(targets), k)))
    precisions, seen = [], 0
    for r, hit in enumerate(hit_flags):
        if hit:
            seen += 1
            precisions.append(seen / (r + 1))
    return {
        "recall": n_hits / len(targets),
        "precision": n_hits / k,
        "hit": float(n_hits > 0),
        "ndcg": dcg / idcg,
        "map": sum(precisions) / min(len(targets), k),
    }


def evaluate(scores, excluded: dict[int, set[int]], targets: dict[int, set[int]], ks, metrics) -> dict[str, float]:
    """Mean metrics over users with at least one target; scores is a full users × items table."""
    users = [u for u in sorted(targets) if targets[u]]
    totals = {f"{m}@{k}": 0.0 for m in metrics for k in ks}
    for user in users:
        ranked = ranked_items(scores[user], excluded.get(user, set()), max(ks))
        for k in ks:
            values = user_metrics(ranked, targets[user], k)
            for m in metrics:
                totals[f"{m}@{k}"] += values[m]
    return {key: value / len(users) for key, value in totals.items()}
