"""Bundle readers and split: determinism, no leakage, cold items, CLHE-layout round trip."""
from __future__ import annotations

import json

import numpy as np
import pytest

from recsys.data import load_dataset
from recsys.data.bundle_csv import category_multi_hot, parse_category_paths, read_bundle_csv
from recsys.data.bundles import BUNDLE_PARTS, padded_rows, split_bundles
from recsys.data.clhe_format import read_clhe, write_clhe
from recsys.errors import DataError

from .synthetic import planted_bundles, write_bundlerec_folder


def _sets(pairs):
    out = {}
    for b, i in pairs.T.tolist():
        out.setdefault(b, set()).add(i)
    return out


def _random_pairs(seed=0, n_bundles=200, n_items=80):
    rng = np.random.default_rng(seed)
    rows = [(b, int(i)) for b in range(n_bundles)
            for i in rng.choice(n_items, size=int(rng.integers(1, 9)), replace=False)]
    return np.array(rows, dtype=np.int64).T


def test_split_is_deterministic_and_independent_of_row_order():
    pairs = _random_pairs()
    a = split_bundles(pairs, 200, (0.8, 0.1, 0.1), seed=3)
    shuffled = pairs[:, np.random.default_rng(1).permutation(pairs.shape[1])]
    b = split_bundles(shuffled, 200, (0.8, 0.1, 0.1), seed=3)
    c = split_bundles(pairs, 200, (0.8, 0.1, 0.1), seed=4)
    assert all(np.array_equal(a[p], b[p]) for p in BUNDLE_PARTS)
    assert not np.array_equal(a["valid_gt"], c["valid_gt"])


def test_split_partitions_bundles_and_halves_held_out_ones():
    pairs = _random_pairs(n_bundles=300)
    parts = split_bundles(pairs, 300, (0.8, 0.1, 0.1), seed=0)
    full = _sets(pairs)
    train, sets = _sets(parts["train"]), {p: _sets(parts[p]) for p in BUNDLE_PARTS}
    for split in ("valid", "test"):
        inputs, gts = sets[f"{split}_input"], sets[f"{split}_gt"]
        assert set(inputs) == set(gts) and len(gts) == 30
        for bundle, gt in gts.items():
            given = inputs[bundle]
            assert not given & gt, "a ground-truth item leaked into the input"
            assert given | gt == full[bundle]
            assert len(given) == min(max(len(full[bundle]) // 2, 1), len(full[bundle]) - 1)
            assert bundle not in train
    held = set(sets["valid_gt"]) | set(sets["test_gt"])
    assert set(train) | held == set(full) and not set(train) & held
    assert all(len(full[b]) >= 2 for b in held), "a single-item bundle cannot be held out"
    assert sum(p.shape[1] for p in parts.values()) == pairs.shape[1]


def test_padded_rows():
    ds = planted_bundles(n_bundles=40)
    csr = ds.bundle_csr("train")
    rows = ds.train_bundles()[:7]
    padded = padded_rows(csr, rows, ds.n_items)
    for row, line in zip(rows, padded):
        assert line[line != ds.n_items].tolist() == csr[row].indices.tolist()


def test_parse_category_paths_keeps_commas_inside_names():
    paths = parse_category_paths("[[Clothing, Shoes & Jewelry,Novelty, Costumes & More,Hats],[Sports & Outdoors]]")
    assert paths == [["Clothing, Shoes & Jewelry", "Novelty, Costumes & More", "Hats"], ["Sports & Outdoors"]]
    with pytest.raises(ValueError):
        parse_category_paths("Clothing")


def test_category_multi_hot_uses_shared_non_constant_prefixes():
    items = [[["A", "B", "C"]], [["A", "B", "D"]], [["A", "E"]], [["A", "B", "C"], ["F"]]]
    hot = category_multi_hot(items, min_items=2)
    # prefixes with 2..3 items: "A > B" (items 0, 1, 3) and "A > B > C" (items 0, 3); "A" is in all
    assert hot.tolist() == [[1, 1], [1, 0], [0, 0], [1, 1]]


def test_bundlerec_reader_indexes_aligns_features_and_removes_owner_leaks(tmp_path):
    raw = write_bundlerec_folder(tmp_path / "bundles")
    ds = read_bundle_csv(tmp_path / "bundles", modalities=["text"], ratios=(0.5, 0.25, 0.25), seed=1)
    assert ds.n_items == 9 and ds.n_bundles == 4 and ds.item_ids.tolist() == [str(i) for i in raw["items"]]
    assert ds.bundle_ids.tolist() == ["10", "11", "12", "13"]
    assert np.allclose(ds.features["text"][:, 0], np.array(raw["items"], dtype=np.float32)), "rows misaligned"
    assert ds.item_titles[2] == f"title of {raw['items'][2]}"
    user_index = {raw_id: i for i, raw_id in enumerate(ds.user_ids.tolist())}
    kept = {(ds.user_ids[u], ds.item_ids[i]) for u, i in ds.train.T.tolist()}
    gt_pairs = set()
    for split in ("valid", "test"):
        for bundle, items in _sets(ds.bundle_pairs[f"{split}_gt"]).items():
            owner = str(raw["owners"][int(ds.bundle_ids[bundle])])
            gt_pairs |= {(owner, ds.item_ids[i]) for i in items}
    observed = set()
    for part in ("train", "valid_input", "test_input"):
        for bundle, items in _sets(ds.bundle_pairs[part]).items():
            owner = str(raw["owners"][int(ds.bundle_ids[bundle])])
            observed |= {(owner, ds.item_ids[i]) for i in items}
    all_pairs = {(str(u), str(i)) for u, i in raw["user_item"]}
    assert kept == all_pairs - (gt_pairs - observed)
    assert gt_pairs - observed, "the fixture should exercise the leak filter"
    assert ("5", "503") in kept and "5" in user_index


def test_bundlerec_reader_errors_name_file_and_fix(tmp_path):
    folder = tmp_path / "bundles"
    write_bundlerec_folder(folder)
    np.save(folder / "text_feat_item_ids.npy", np.arange(9, dtype=np.int64))
    with pytest.raises(DataError, match="text_feat_item_ids.npy lacks item ID 501"):
        read_bundle_csv(folder, modalities=["text"], ratios=(0.5, 0.25, 0.25))
    with pytest.raises(DataError, match="no category path is shared"):
        read_bundle_csv(folder, modalities=["category"], ratios=(0.5, 0.25, 0.25))


def test_clhe_layout_round_trips(tmp_path, bundles):
    bundles.cf_features = np.arange(bundles.n_items * 4, dtype=np.float32).reshape(-1, 4)
    try:
        write_clhe(bundles, tmp_path / "clhe")
        back = load_dataset({"format": "clhe", "path": str(tmp_path / "clhe")})
    finally:
        bundles.cf_features = None
    assert json.loads((tmp_path / "clhe" / "count.json").read_text()) == {
        "#U": bundles.n_users, "#B": bundles.n_bundles, "#I": bundles.n_items}
    first = (tmp_path / "clhe" / "bi_train.txt").read_text().splitlines()[0].split(", ")
    assert [int(v) for v in first[1:]] == sorted(_sets(bundles.bundle_pairs["train"])[int(first[0])])
    for part in BUNDLE_PARTS:
        assert np.array_equal(back.bundle_pairs[part], bundles.bundle_pairs[part])
    assert np.array_equal(back.train, np.unique(bundles.train, axis=1))
    assert back.features.keys() == bundles.features.keys()
    assert all(np.array_equal(back.features[m], bundles.features[m]) for m in bundles.features)
    assert back.item_titles.tolist() == bundles.item_titles.tolist()
    assert back.cf_features.shape == (bundles.n_items, 4)
    assert back.fingerprint() != bundles.fingerprint()


def test_clhe_reader_rejects_out_of_range_ids_and_leaky_halves(tmp_path, bundles):
    folder = tmp_path / "clhe"
    write_clhe(bundles, folder)
    good = (folder / "bi_valid_gt.txt").read_text()
    (folder / "bi_valid_gt.txt").write_text(good + f"0, {bundles.n_items}\n")
    with pytest.raises(DataError, match=r"bi_valid_gt.txt line \d+: item 120 is outside"):
        read_clhe(folder)
    bundle, items = good.splitlines()[0].split(", ", 1)
    (folder / "bi_valid_gt.txt").write_text(good)
    (folder / "bi_valid_input.txt").write_text((folder / "bi_valid_input.txt").read_text() + f"{bundle}, {items}\n")
    with pytest.raises(DataError, match="both in its input and in its ground truth"):
        read_clhe(folder)


@pytest.mark.integration
def test_clothing_bundles_read_split_and_hide_ground_truth(shared_data):
    ds = load_dataset({"format": "bundle_csv", "path": str(shared_data / "bundles" / "clothing")})
    assert (ds.n_users, ds.n_bundles, ds.n_items) == (965, 1910, 4487)
    assert ds.features["text"].shape == (4487, 384) and ds.features["category"].shape[0] == 4487
    assert sum(p.shape[1] for p in ds.bundle_pairs.values()) == 6326
    assert ds.heldout_bundles("valid").size == ds.heldout_bundles("test").size == 191
    train_items = np.asarray(ds.bundle_csr("train").sum(0)).ravel() > 0
    assert (~train_items[ds.bundle_pairs["test_gt"][1]]).any(), "cold ground-truth items are expected"
    again = load_dataset({"format": "bundle_csv", "path": str(shared_data / "bundles" / "clothing")})
    assert again.fingerprint() == ds.fingerprint()
