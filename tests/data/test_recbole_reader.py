"""RecBole atomic files: typed headers, token ids, .item features, seeded split, errors."""
from __future__ import annotations

import numpy as np
import pytest

from datafiles import assert_same, write_text
from recsys.data import DataError, DataWarning
from recsys.data.recbole import read_recbole, write_recbole
from recsys.data.split import split_labels

HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float"


def inter_rows(n_users=6, per_user=10, seed=0):
    """Every user rates ``per_user`` distinct items, with distinct timestamps."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        for item in rng.choice(20, size=per_user, replace=False):
            rows.append((f"u{u}", f"i{item}", float(rng.integers(1, 6)), float(rng.integers(0, 10**6))))
    return rows


def write_inter(folder, rows, header=HEADER, name="ml"):
    lines = ["\t".join(str(v) for v in row) for row in rows]
    return write_text(folder / f"{name}.inter", [header] + lines)


def test_tokens_become_dense_indices_in_order_of_first_appearance(tmp_path):
    rows = [("bob", "x9", 1, 1), ("ann", "x1", 1, 2), ("bob", "x1", 1, 3), ("ann", "x5", 1, 4),
            ("bob", "x5", 1, 5), ("ann", "x9", 1, 6)]
    write_inter(tmp_path, rows)
    ds = read_recbole(tmp_path, split_ratios=[1, 0, 0])
    assert list(ds.user_ids) == ["bob", "ann"]
    assert list(ds.item_ids) == ["x9", "x1", "x5"]
    pairs = {(ds.user_ids[u], ds.item_ids[i]) for u, i in ds.train.T}
    assert pairs == {(r[0], r[1]) for r in rows}
    assert ds.valid.shape == (2, 0)


def test_random_split_is_seeded_and_follows_ratios(tmp_path):
    write_inter(tmp_path, inter_rows())
    a = read_recbole(tmp_path, split_ratios=[0.8, 0.1, 0.1], split_seed=7)
    b = read_recbole(tmp_path, split_ratios=[0.8, 0.1, 0.1], split_seed=7)
    c = read_recbole(tmp_path, split_ratios=[0.8, 0.1, 0.1], split_seed=8)
    assert_same(a, b)
    assert any(not np.array_equal(a.split(s), c.split(s)) for s in ("train", "valid", "test"))
    for split, expected in (("train", 8), ("valid", 1), ("test", 1)):
        assert np.all(np.bincount(a.split(split)[0], minlength=6) == expected), split


def test_time_split_puts_latest_interactions_in_test(tmp_path):
    rows = inter_rows()
    write_inter(tmp_path, rows)
    ds = read_recbole(tmp_path, split_ratios=[0.6, 0.2, 0.2], split_order="time")
    stamp = {(r[0], r[1]): r[3] for r in rows}
    for u in range(ds.n_users):
        times = {s: sorted(stamp[(ds.user_ids[u], ds.item_ids[i])] for i in ds.split(s)[1][ds.split(s)[0] == u])
                 for s in ("train", "valid", "test")}
        every = sorted(t for r, t in stamp.items() if r[0] == ds.user_ids[u])
        assert times["train"] == every[:6] and times["valid"] == every[6:8] and times["test"] == every[8:]


def test_item_file_fixes_item_order_and_holds_features(tmp_path):
    write_inter(tmp_path, [("a", "p", 1, 1), ("a", "q", 1, 2), ("b", "q", 1, 3)])
    write_text(tmp_path / "ml.item", ["item_id:token\ttext_feat:float_seq\tprice:float",
                                      "q\t1 2.5\t3", "p\t-1 0\t4", "r\t0.125 7\t5"])
    ds = read_recbole(tmp_path, split_ratios=[1, 0, 0])
    assert list(ds.item_ids) == ["q", "p", "r"]
    np.testing.assert_array_equal(ds.features["text"], np.array([[1, 2.5], [-1, 0], [0.125, 7]], dtype=np.float32))
    assert read_recbole(tmp_path, modalities=[], split_ratios=[1, 0, 0]).features == {}


def test_round_trip_through_benchmark_files(tmp_path, tiny):
    write_recbole(tiny, tmp_path, "tiny")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "tiny.item", "tiny.test.inter", "tiny.train.inter", "tiny.user", "tiny.valid.inter"]
    assert_same(tiny, read_recbole(tmp_path))


def test_untyped_header(tmp_path):
    write_inter(tmp_path, [("a", "p", 1, 1)], header="user_id\titem_id:token\trating:float\ttimestamp:float")
    with pytest.raises(DataError, match=r"ml\.inter line 1, column 1 'user_id': expected 'field:type'"):
        read_recbole(tmp_path)


def test_missing_item_field(tmp_path):
    write_inter(tmp_path, [("a", "p", 1, 1)], header="user_id:token\tbook_id:token\trating:float\ttimestamp:float")
    with pytest.raises(DataError, match=r"ml\.inter line 1 \(header\): missing field\(s\) \['item_id'\]"):
        read_recbole(tmp_path)


def test_bad_timestamp_names_line(tmp_path):
    rows = inter_rows(n_users=2, per_user=3)
    rows[4] = (rows[4][0], rows[4][1], 1.0, "yesterday")
    write_inter(tmp_path, rows)
    with pytest.raises(DataError, match=r"ml\.inter line 6, column 'timestamp': value 'yesterday' is not a number"):
        read_recbole(tmp_path, split_order="time")


def test_time_order_needs_timestamps(tmp_path):
    write_inter(tmp_path, [("a", "p"), ("a", "q")], header="user_id:token\titem_id:token")
    with pytest.raises(DataError, match=r"split_order = 'time' needs a timestamp column"):
        read_recbole(tmp_path, split_order="time")


def test_item_missing_from_item_file(tmp_path):
    write_inter(tmp_path, [("a", "p", 1, 1), ("a", "zz", 1, 2)])
    write_text(tmp_path / "ml.item", ["item_id:token\ttext_feat:float_seq", "p\t1 2"])
    with pytest.raises(DataError, match=r"ml\.inter line 3: item 'zz' has no row in .*ml\.item"):
        read_recbole(tmp_path, split_ratios=[1, 0, 0])


def test_ragged_float_seq(tmp_path):
    write_inter(tmp_path, [("a", "p", 1, 1)])
    write_text(tmp_path / "ml.item", ["item_id:token\ttext_feat:float_seq", "p\t1 2", "q\t1 2 3"])
    with pytest.raises(DataError, match=r"ml\.item line 3, column 'text_feat': 3 values, but line 2 has 2"):
        read_recbole(tmp_path)


def test_non_numeric_float_seq(tmp_path):
    write_inter(tmp_path, [("a", "p", 1, 1)])
    write_text(tmp_path / "ml.item", ["item_id:token\ttext_feat:float_seq", "p\t1 2", "q\t1 abc"])
    with pytest.raises(DataError, match=r"ml\.item line 3, column 'text_feat'.*space-separated numbers"):
        read_recbole(tmp_path)


def test_nan_feature(tmp_path):
    write_inter(tmp_path, [("a", "p", 1, 1)])
    write_text(tmp_path / "ml.item", ["item_id:token\ttext_feat:float_seq", "p\t1 2", "q\t1 nan"])
    with pytest.raises(DataError, match=r"ml\.item row 1, column 1: value nan is not finite"):
        read_recbole(tmp_path)


def test_item_listed_twice(tmp_path):
    write_inter(tmp_path, [("a", "p", 1, 1)])
    write_text(tmp_path / "ml.item", ["item_id:token", "p", "q", "p"])
    with pytest.raises(DataError, match=r"ml\.item line 4: id 'p' is listed twice"):
        read_recbole(tmp_path)


def test_requested_modality_missing(tmp_path):
    write_inter(tmp_path, [("a", "p", 1, 1)])
    write_text(tmp_path / "ml.item", ["item_id:token\ttext_feat:float_seq", "p\t1 2"])
    with pytest.raises(DataError, match=r"modality 'image' .*no 'image_feat:float_seq' column; available: \['text'\]"):
        read_recbole(tmp_path, modalities=["image"])


def test_invalid_ratios(tmp_path):
    write_inter(tmp_path, [("a", "p", 1, 1)])
    with pytest.raises(DataError, match=r"split_ratios = \[0, 0.5, 0.5\] is invalid"):
        read_recbole(tmp_path, split_ratios=[0, 0.5, 0.5])


def test_duplicates_removed_before_splitting(tmp_path):
    rows = inter_rows(n_users=3, per_user=10)
    write_inter(tmp_path, rows + [rows[4], rows[12]])
    with pytest.warns(DataWarning, match=r"ml\.inter line 32: 2 duplicate interaction\(s\) removed before splitting"):
        ds = read_recbole(tmp_path)
    assert sum(ds.split(s).shape[1] for s in ("train", "valid", "test")) == 30


def test_split_labels_match_per_user_brute_force():
    rng = np.random.default_rng(3)
    users = rng.integers(0, 40, size=600)
    labels = split_labels(users, [0.7, 0.2, 0.1], "random", seed=1)
    for u in np.unique(users):
        n = int((users == u).sum())
        n_valid, n_test = int(np.floor(0.2 * n + 1e-9)), int(np.floor(0.1 * n + 1e-9))
        if n_valid == 0 and n - n_test >= 2:
            n_valid = 1
        if n_test == 0 and n - n_valid >= 2:
            n_test = 1
        got = np.bincount(labels[users == u], minlength=3)
        assert got.tolist() == [n - n_valid - n_test, n_valid, n_test], (u, n)
        assert got[0] >= 1
