"""REARM .npy split folders: reading, sizes, repairs with warnings and every DataError."""
from __future__ import annotations

import numpy as np
import pytest

from datafiles import assert_same, write_splits, write_text
from recsys.data import DataError, DataWarning
from recsys.data.rearm import read_rearm, write_rearm

TRAIN = [[0, 0, 1, 2], [0, 1, 1, 2]]
VALID = [[0, 1, 2], [2, 0, 1]]
TEST = [[0, 1, 2], [3, 2, 4]]


def test_reads_splits_sizes_features_and_ids(tmp_path):
    folder = write_splits(tmp_path / "ds", TRAIN, VALID, TEST)
    text = np.arange(10, dtype=np.float32).reshape(5, 2)
    np.save(folder / "text_feat.npy", text)
    np.save(folder / "image_feat.npy", np.ones((5, 3), dtype=np.float64))
    write_text(folder / "item_ids.tsv", ["asin\titemID"] + [f"A{i}\t{i}" for i in (4, 0, 3, 1, 2)])
    ds = read_rearm(folder)
    assert ds.name == "ds"
    assert (ds.n_users, ds.n_items) == (3, 5)  # item 4 only occurs in test: max id + 1 over all splits
    np.testing.assert_array_equal(ds.train, np.array(TRAIN))
    np.testing.assert_array_equal(ds.test, np.array(TEST))
    assert sorted(ds.features) == ["image", "text"]
    assert ds.features["image"].dtype == np.float32
    np.testing.assert_array_equal(ds.features["text"], text)
    assert list(ds.item_ids) == ["A0", "A1", "A2", "A3", "A4"]
    assert list(read_rearm(folder, modalities=["text"]).features) == ["text"]
    assert read_rearm(folder, modalities=[]).features == {}


def test_round_trip_keeps_empty_trailing_item_and_raw_ids(tmp_path, tiny):
    write_rearm(tiny, tmp_path / "out")
    assert_same(tiny, read_rearm(tmp_path / "out"))


def test_missing_split_file(tmp_path):
    folder = write_splits(tmp_path, TRAIN, VALID, TEST)
    (folder / "test.npy").unlink()
    with pytest.raises(DataError, match=r"missing file .*test\.npy.*train\.npy, valid\.npy and test\.npy"):
        read_rearm(folder)


def test_wrong_shape(tmp_path):
    folder = write_splits(tmp_path, np.array(TRAIN).T, VALID, TEST)
    with pytest.raises(DataError, match=r"train\.npy has shape \(4, 2\); expected \(2, N\).*arr\.T"):
        read_rearm(folder)


def test_wrong_dtype(tmp_path):
    folder = write_splits(tmp_path, TRAIN, np.array(VALID, dtype=np.float64), TEST)
    with pytest.raises(DataError, match=r"valid\.npy has dtype float64; expected int64.*astype"):
        read_rearm(folder)


def test_negative_id_names_row_and_column(tmp_path):
    folder = write_splits(tmp_path, [[0, 0, 1, 2], [0, 1, -3, 2]], VALID, TEST)
    with pytest.raises(DataError, match=r"train\.npy row 1 \(item ids\), column 2: item id -3 is negative"):
        read_rearm(folder)


def test_id_beyond_item_list(tmp_path):
    folder = write_splits(tmp_path, TRAIN, VALID, TEST)
    write_text(folder / "item_ids.tsv", ["asin\titemID", "a\t0", "b\t1", "c\t2", "d\t3"])
    with pytest.raises(DataError, match=r"test\.npy column 2: item id 4 is out of range \[0, 4\) "
                                        r"\(item_ids\.tsv lists 4 items\)"):
        read_rearm(folder)


def test_item_list_with_repeated_index(tmp_path):
    folder = write_splits(tmp_path, TRAIN, VALID, TEST)
    write_text(folder / "item_ids.tsv", ["asin\titemID", "a\t0", "b\t1", "c\t1", "d\t3", "e\t4"])
    with pytest.raises(DataError, match=r"item_ids\.tsv line 4, column 'itemID': index 1 appears twice"):
        read_rearm(folder)


def test_ragged_item_list(tmp_path):
    folder = write_splits(tmp_path, TRAIN, VALID, TEST)
    write_text(folder / "item_ids.tsv", ["asin\titemID", "a\t0", "b\t1\textra", "c\t2", "d\t3", "e\t4"])
    with pytest.raises(DataError, match=r"item_ids\.tsv is not a valid tab-separated file.*line 3"):
        read_rearm(folder)


def test_non_finite_feature_names_first_bad_row(tmp_path):
    folder = write_splits(tmp_path, TRAIN, VALID, TEST)
    feat = np.zeros((5, 2), dtype=np.float32)
    feat[3, 1] = np.nan
    feat[4, 0] = np.inf
    np.save(folder / "text_feat.npy", feat)
    with pytest.raises(DataError, match=r"text_feat\.npy row 3, column 1: value nan is not finite"):
        read_rearm(folder)


def test_feature_rows_must_match_items(tmp_path):
    folder = write_splits(tmp_path, TRAIN, VALID, TEST)
    np.save(folder / "text_feat.npy", np.zeros((4, 2), dtype=np.float32))
    with pytest.raises(DataError, match=r"text_feat\.npy has 4 rows but the dataset has 5 items"):
        read_rearm(folder)


def test_feature_must_be_2d(tmp_path):
    folder = write_splits(tmp_path, TRAIN, VALID, TEST)
    np.save(folder / "text_feat.npy", np.zeros(5, dtype=np.float32))
    with pytest.raises(DataError, match=r"text_feat\.npy has shape \(5,\); expected \(n_items, dim\)"):
        read_rearm(folder)


def test_missing_requested_modality(tmp_path):
    folder = write_splits(tmp_path, TRAIN, VALID, TEST)
    np.save(folder / "text_feat.npy", np.zeros((5, 2), dtype=np.float32))
    with pytest.raises(DataError, match=r"missing file .*image_feat\.npy: modality 'image'.*available: \['text'\]"):
        read_rearm(folder, modalities=["image"])


@pytest.mark.parametrize("cut", [0, 20, 100])
def test_truncated_npy(tmp_path, cut):
    folder = write_splits(tmp_path, TRAIN, VALID, TEST)
    data = (folder / "valid.npy").read_bytes()
    (folder / "valid.npy").write_bytes(data[:cut])
    with pytest.raises(DataError, match=r"valid\.npy is truncated or not a \.npy array"):
        read_rearm(folder)


def test_pickled_object_array_is_rejected(tmp_path):
    folder = write_splits(tmp_path, TRAIN, VALID, TEST)
    np.save(folder / "train.npy", np.array([[0, "a"], [1, 2]], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match=r"train\.npy is truncated or not a \.npy array"):
        read_rearm(folder)


def test_duplicates_are_removed_with_warning(tmp_path):
    folder = write_splits(tmp_path, [[0, 0, 1, 0, 2], [0, 1, 1, 0, 2]], VALID, TEST)
    with pytest.warns(DataWarning, match=r"train\.npy column 3: 1 duplicate train interaction\(s\) removed "
                                         r"\(first: user 0, item 0\)"):
        ds = read_rearm(folder)
    np.testing.assert_array_equal(ds.train, TRAIN)


def test_held_out_rows_of_users_without_train_are_dropped(tmp_path):
    folder = write_splits(tmp_path, TRAIN, [[0, 3, 1, 3], [2, 0, 0, 1]], [[0, 1, 3], [3, 2, 4]])
    with pytest.warns(DataWarning) as record:
        ds = read_rearm(folder)
    messages = [str(w.message) for w in record]
    assert any(m.startswith(f"{folder / 'valid.npy'} column 1: 2 valid interaction(s) of 1 user(s) without train")
               for m in messages), messages
    assert any("test.npy column 2: 1 test interaction(s) of 1 user(s)" in m for m in messages), messages
    assert ds.n_users == 4  # the user still counts (max id + 1), only their held-out rows go
    np.testing.assert_array_equal(ds.valid, [[0, 1], [2, 0]])
    np.testing.assert_array_equal(ds.test, [[0, 1], [3, 2]])


def test_held_out_copy_of_train_pair_is_dropped(tmp_path):
    folder = write_splits(tmp_path, TRAIN, [[0, 1, 2], [2, 1, 1]], TEST)
    with pytest.warns(DataWarning, match=r"valid\.npy column 1: 1 valid interaction\(s\) also in train removed"):
        ds = read_rearm(folder)
    np.testing.assert_array_equal(ds.valid, [[0, 2], [2, 1]])


def test_empty_train_split(tmp_path):
    folder = write_splits(tmp_path, np.zeros((2, 0), dtype=np.int64), VALID, TEST)
    with pytest.raises(DataError, match=r"train\.npy.*the train split is empty"):
        read_rearm(folder)


def test_feature_with_text_dtype(tmp_path):
    folder = write_splits(tmp_path, TRAIN, VALID, TEST)
    np.save(folder / "text_feat.npy", np.full((5, 2), "x"))
    with pytest.raises(DataError, match=r"text_feat\.npy has dtype <U1; expected float32 features"):
        read_rearm(folder)
