import argparse
import hashlib
import json

import numpy as np
import pandas as pd
import pytest
import torch

from recsys.cli.export import add_parsers as add_export_parser
from recsys.compose import resolve
from recsys.data import Dataset
from recsys.export import export, manifest_path, parse_shard
from recsys.models.bpr import BPRMF
from recsys.runs import load_run, train
from recsys.serving import TrainedRun, UnknownUsersError

N_USERS, N_ITEMS = 37, 23


def _dataset() -> Dataset:
    """Raw ids that differ from indices; every user has train, valid and test items."""
    rng = np.random.default_rng(1)
    rows = {"train": [], "valid": [], "test": []}
    for user in range(N_USERS):
        items = rng.permutation(N_ITEMS)[: 3 + user % 6]
        rows["valid"].append((user, items[0]))
        rows["test"].append((user, items[1]))
        rows["train"].extend((user, i) for i in items[2:])
    arrays = {k: np.array(v, dtype=np.int64).T for k, v in rows.items()}
    return Dataset("tiny", N_USERS, N_ITEMS, arrays["train"], arrays["valid"], arrays["test"],
                   user_ids=np.array([f"user-{100 + 7 * u}" for u in range(N_USERS)]),
                   item_ids=np.array([f"sku{i:03d}x" for i in range(N_ITEMS)]))


@pytest.fixture
def recommender() -> TrainedRun:
    """Integer-valued embeddings in {-1, 0, 1}^3: scores tie everywhere."""
    dataset = _dataset()
    model = BPRMF(dataset, {"embedding_size": 3, "reg_weight": 0.0}, None)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        model.user_embedding.copy_(torch.randint(-1, 2, (N_USERS, 3), generator=gen).float())
        model.item_embedding.copy_(torch.randint(-1, 2, (N_ITEMS, 3), generator=gen).float())
    return TrainedRun(model, dataset)


def _brute_force(rec: TrainedRun, k: int, exclude: str) -> pd.DataFrame:
    """Per user: all items sorted by (-score, index), excluded items dropped, first k."""
    ds = rec.dataset
    scores = (rec.model.user_embedding @ rec.model.item_embedding.T).detach().numpy()
    excluded = {"none": set(), "train": {(int(u), int(i)) for u, i in ds.train.T}}
    excluded["train+valid"] = excluded["train"] | {(int(u), int(i)) for u, i in ds.valid.T}
    rows = []
    for user in range(ds.n_users):
        order = sorted(range(ds.n_items), key=lambda i: (-scores[user, i], i))
        kept = [i for i in order if (user, i) not in excluded[exclude]][:k]
        rows += [(ds.user_ids[user], r + 1, ds.item_ids[i], scores[user, i]) for r, i in enumerate(kept)]
    return pd.DataFrame(rows, columns=["user", "rank", "item", "score"])


def _read(path, fmt) -> pd.DataFrame:
    if fmt == "parquet":
        frame = pd.read_parquet(path)
    elif fmt == "csv":
        frame = pd.read_csv(path, dtype={"user": str, "item": str})
    else:
        frame = pd.read_json(path, lines=True, dtype={"user": str, "item": str})
    return frame.astype({"user": str, "item": str, "rank": np.int64, "score": np.float32})


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    a, b = a.reset_index(drop=True), b.reset_index(drop=True)
    assert a[["user", "rank", "item"]].astype({"user": str, "item": str, "rank": np.int64}).equals(
        b[["user", "rank", "item"]].astype({"user": str, "item": str, "rank": np.int64}))
    np.testing.assert_array_equal(a["score"].to_numpy(np.float32), b["score"].to_numpy(np.float32))


@pytest.mark.parametrize("exclude", ["train", "train+valid", "none"])
@pytest.mark.parametrize("k", [1, 5, N_ITEMS + 4])
def test_export_equals_brute_force_top_k(recommender, tmp_path, k, exclude):
    manifest = export(recommender, k=k, exclude=exclude, out=tmp_path / "top.parquet", batch_size=8, progress=False)
    got = _read(tmp_path / "top.parquet", "parquet")
    want = _brute_force(recommender, k, exclude)
    _same(got, want)
    assert manifest["rows"] == len(want) and manifest["users"]["exported"] == N_USERS


def test_excluded_items_never_appear(recommender, tmp_path):
    export(recommender, k=N_ITEMS, exclude="train+valid", out=tmp_path / "top.csv", fmt="csv", progress=False)
    got = _read(tmp_path / "top.csv", "csv")
    ds = recommender.dataset
    pairs = set(zip(got["user"], got["item"]))
    for split in ("train", "valid"):
        for u, i in getattr(ds, split).T:
            assert (ds.user_ids[u], ds.item_ids[i]) not in pairs
    # the rest of each user's items are all there: K covers every item
    assert len(got) == N_USERS * N_ITEMS - ds.train.shape[1] - ds.valid.shape[1]


def test_formats_hold_the_same_rows(recommender, tmp_path):
    frames = {}
    for fmt in ("parquet", "csv", "jsonl"):
        export(recommender, k=6, fmt=fmt, out=tmp_path / f"top.{fmt}", progress=False)
        frames[fmt] = _read(tmp_path / f"top.{fmt}", fmt)
    _same(frames["parquet"], frames["csv"])
    _same(frames["parquet"], frames["jsonl"])


def test_shards_concatenate_to_the_full_export(recommender, tmp_path):
    export(recommender, k=4, out=tmp_path / "full.parquet", progress=False, batch_size=5)
    full = _read(tmp_path / "full.parquet", "parquet")
    parts = []
    for i in range(4):
        manifest = export(recommender, k=4, out=tmp_path / f"part{i}.parquet", shard=f"{i}/4", progress=False)
        assert manifest["shard"] == {"index": i, "count": 4}
        parts.append(_read(tmp_path / f"part{i}.parquet", "parquet"))
    _same(pd.concat(parts), full)
    assert all(len(p) for p in parts)


def test_raw_ids_round_trip_through_a_user_file(recommender, tmp_path):
    wanted = ["user-170", "user-107", "user-100", "user-170"]  # duplicates keep the first
    (tmp_path / "users.txt").write_text("# users\n" + "\n".join(wanted) + "\n\n")
    export(recommender, k=3, users=tmp_path / "users.txt", out=tmp_path / "top.jsonl", fmt="jsonl", progress=False)
    got = _read(tmp_path / "top.jsonl", "jsonl")
    assert list(dict.fromkeys(got["user"])) == ["user-170", "user-107", "user-100"]
    assert set(got["item"]) <= set(recommender.dataset.item_ids)
    via_api = recommender.recommend(["user-170", "user-107", "user-100"], k=3)
    _same(got, via_api)
    first = got[got["user"] == "user-107"].iloc[0]
    assert recommender.score([first["user"]], [first["item"]])[0] == first["score"]


def test_unknown_users_are_an_error_unless_skipped(recommender, tmp_path):
    (tmp_path / "users.txt").write_text("user-100\nnobody\nuser-9999\nuser-107\n")
    with pytest.raises(UnknownUsersError, match=r"2 of 4 .*'nobody', 'user-9999'.*--skip-unknown"):
        export(recommender, k=2, users=tmp_path / "users.txt", out=tmp_path / "top.parquet", progress=False)
    assert not (tmp_path / "top.parquet").exists()
    manifest = export(recommender, k=2, users=tmp_path / "users.txt", out=tmp_path / "top.parquet",
                      skip_unknown=True, progress=False)
    assert manifest["users"] == {"source": str(tmp_path / "users.txt"), "requested": 4, "unknown_skipped": 2,
                                 "unknown_first": ["nobody", "user-9999"], "exported": 2}
    assert set(_read(tmp_path / "top.parquet", "parquet")["user"]) == {"user-100", "user-107"}


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_failure_mid_write_leaves_no_partial_file(recommender, tmp_path, monkeypatch, fmt):
    out = tmp_path / f"top.{fmt}"
    out.write_text("previous export")
    real = recommender._scores
    calls = []

    def failing(users):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("killed")
        return real(users)

    monkeypatch.setattr(recommender, "_scores", failing)
    with pytest.raises(RuntimeError, match="killed"):
        export(recommender, k=5, fmt=fmt, out=out, batch_size=4, progress=False)
    assert out.read_text() == "previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]


def test_score_matches_the_model(recommender):
    ds = recommender.dataset
    users, items = [3, 3, 0, 36], [5, 0, 22, 1]
    got = recommender.score(ds.user_ids[users], ds.item_ids[items])
    emb_u, emb_i = recommender.model.embeddings()
    want = (emb_u[users] * emb_i[items]).sum(1).detach().numpy()
    np.testing.assert_array_equal(got, want)


def test_parse_shard_rejects_bad_specs():
    assert parse_shard("2/3") == (2, 3)
    for bad in ("3/3", "-1/2", "1", "a/b", "0/0"):
        with pytest.raises(ValueError, match="numbered from 0"):
            parse_shard(bad)


def test_cli_export_of_a_trained_run(tmp_path, capsys):
    """End to end: a trained run folder → load_run → `export` subcommand → manifest."""
    config = resolve({
        "run_name": "run", "output_dir": str(tmp_path), "cache_dir": str(tmp_path / "cache"), "device": "cpu",
        "dataset": {"format": "synthetic", "synthetic": {"n_users": 50, "n_items": 30, "interactions_per_user": 8}},
        "model": {"name": "bpr", "embedding_size": 8},
        "train": {"epochs": 2, "batch_size": 128, "progress": False, "monitor": "recall@5"}, "eval": {"ks": [5], "metrics": ["recall"]},
    })
    train(config)
    run_dir = tmp_path / "run"
    parser = argparse.ArgumentParser()
    add_export_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["export", str(run_dir), "--k", "7", "--format", "csv", "--exclude", "train+valid",
                              "--shard", "1/2", "--batch-size", "10", "--device", "cpu", "--no-progress"])
    assert args.func(args) == 0
    out = run_dir / "exports" / "top7-exclude_train_valid.shard1of2.csv"
    assert str(out) in capsys.readouterr().out
    manifest = json.loads(manifest_path(out).read_text())
    assert manifest["rows"] == 25 * 7 and manifest["model"] == "bpr" and manifest["k"] == 7
    assert manifest["checkpoint"]["sha256"] == hashlib.sha256((run_dir / "best.pt").read_bytes()).hexdigest()
    assert manifest["files"][0]["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    rec = load_run(run_dir, device="cpu")
    users = [f"u{i}" for i in range(25, 50)]
    _same(_read(out, "csv"), rec.recommend(users, k=7, exclude="train+valid"))
    with pytest.raises(SystemExit):
        parser.parse_args(["export", str(run_dir), "--shard", "2/2"])
