"""MMRec ``<name>.inter`` folders: reading, id maps, and every DataError."""
from __future__ import annotations

import numpy as np
import pytest

from datafiles import assert_same, write_text
from recsys.data import DataError, DataWarning
from recsys.data.mmrec import read_mmrec, write_mmrec

HEADER = "userID\titemID\trating\ttimestamp\tx_label"
ROWS = ["0\t0\t5\t100\t0", "0\t1\t4\t101\t0", "1\t1\t3\t102\t0", "2\t2\t5\t103\t0",
        "0\t2\t1\t104\t1", "1\t0\t2\t105\t1", "2\t3\t5\t106\t2", "1\t4\t4\t107\t2"]


def write_inter(folder, rows, header=HEADER, name="baby"):
    return write_text(folder / f"{name}.inter", [header] + rows)


def test_reads_split_by_x_label_in_file_order(tmp_path):
    write_inter(tmp_path, ROWS)
    np.save(tmp_path / "image_feat.npy", np.ones((5, 3), dtype=np.float32))
    ds = read_mmrec(tmp_path)
    assert ds.name == "baby"
    assert (ds.n_users, ds.n_items) == (3, 5)
    np.testing.assert_array_equal(ds.train, [[0, 0, 1, 2], [0, 1, 1, 2]])
    np.testing.assert_array_equal(ds.valid, [[0, 1], [2, 0]])
    np.testing.assert_array_equal(ds.test, [[2, 1], [3, 4]])
    assert list(ds.features) == ["image"]


def test_id_mapping_files_give_raw_ids_and_sizes(tmp_path):
    write_inter(tmp_path, ROWS)
    write_text(tmp_path / "i_id_mapping.csv", ["asin\titemID"] + [f"X{i}\t{i}" for i in range(6)])
    write_text(tmp_path / "u_id_mapping.csv", ["user_id\tuserID", "r2\t2", "r0\t0", "r1\t1"])
    ds = read_mmrec(tmp_path)
    assert ds.n_items == 6  # the map lists an item without interactions
    assert list(ds.user_ids) == ["r0", "r1", "r2"]
    assert ds.item_ids[5] == "X5"


def test_round_trip(tmp_path, tiny):
    write_mmrec(tiny, tmp_path, "tiny")
    assert_same(tiny, read_mmrec(tmp_path, "tiny"))


def test_missing_inter_file(tmp_path):
    with pytest.raises(DataError, match=r"missing file .*clothing\.inter"):
        read_mmrec(tmp_path, "clothing")


def test_several_inter_files_need_a_name(tmp_path):
    write_inter(tmp_path, ROWS, name="a")
    write_inter(tmp_path, ROWS, name="b")
    with pytest.raises(DataError, match=r"holds 2 \.inter files .*set dataset\.name"):
        read_mmrec(tmp_path)


def test_missing_column(tmp_path):
    write_inter(tmp_path, ["0\t0\t0"], header="userID\titem\tx_label")
    with pytest.raises(DataError, match=r"baby\.inter line 1 \(header\): missing column\(s\) \['itemID'\]"):
        read_mmrec(tmp_path)


def test_non_integer_id_names_line_and_column(tmp_path):
    rows = list(ROWS)
    rows[3] = "2\tB00X\t5\t103\t0"
    write_inter(tmp_path, rows)
    with pytest.raises(DataError, match=r"baby\.inter line 5, column 'itemID': value 'B00X' is not an integer"):
        read_mmrec(tmp_path)


def test_negative_id(tmp_path):
    rows = list(ROWS)
    rows[1] = "-1\t1\t4\t101\t0"
    write_inter(tmp_path, rows)
    with pytest.raises(DataError, match=r"baby\.inter line 3, column 'userID': id -1 is negative"):
        read_mmrec(tmp_path)


def test_bad_split_label(tmp_path):
    rows = list(ROWS)
    rows[6] = "2\t3\t5\t106\t3"
    write_inter(tmp_path, rows)
    with pytest.raises(DataError, match=r"baby\.inter line 8, column 'x_label': value 3 is not 0 \(train\)"):
        read_mmrec(tmp_path)


def test_id_beyond_mapping(tmp_path):
    write_inter(tmp_path, ROWS)
    write_text(tmp_path / "i_id_mapping.csv", ["asin\titemID"] + [f"X{i}\t{i}" for i in range(4)])
    with pytest.raises(DataError, match=r"baby\.inter line 9: item id 4 is out of range \[0, 4\) "
                                        r"\(i_id_mapping\.csv lists 4 items\)"):
        read_mmrec(tmp_path)


def test_ragged_line(tmp_path):
    rows = list(ROWS)
    rows[2] = "1\t1\t3\t102\t0\t9"
    write_inter(tmp_path, rows)
    with pytest.raises(DataError, match=r"baby\.inter is not a valid tab-separated file.*line 4"):
        read_mmrec(tmp_path)


def test_empty_file(tmp_path):
    (tmp_path / "baby.inter").write_text("")
    with pytest.raises(DataError, match=r"baby\.inter is empty"):
        read_mmrec(tmp_path)


def test_feature_rows_must_match_items(tmp_path):
    write_inter(tmp_path, ROWS)
    np.save(tmp_path / "text_feat.npy", np.ones((7, 3), dtype=np.float32))
    with pytest.raises(DataError, match=r"text_feat\.npy has 7 rows but the dataset has 5 items"):
        read_mmrec(tmp_path)


def test_duplicate_and_cold_user_rows_are_repaired_by_line(tmp_path):
    write_inter(tmp_path, ROWS + ["0\t1\t4\t101\t0", "3\t1\t1\t1\t2"])
    with pytest.warns(DataWarning) as record:
        ds = read_mmrec(tmp_path)
    messages = " | ".join(str(w.message) for w in record)
    assert "baby.inter line 10: 1 duplicate train interaction(s) removed" in messages
    assert "baby.inter line 11: 1 test interaction(s) of 1 user(s) without train interactions removed" in messages
    assert ds.train.shape[1] == 4 and ds.test.shape[1] == 2


def test_no_train_rows(tmp_path):
    write_inter(tmp_path, ["0\t1\t1\t1\t1", "0\t2\t1\t1\t2"])
    with pytest.raises(DataError, match=r"baby\.inter \(x_label 0\): the train split is empty"):
        read_mmrec(tmp_path)
