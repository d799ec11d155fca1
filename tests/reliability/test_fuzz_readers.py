"""Fuzzing the dataset readers: every corruption gives a clear DataError or the same dataset.

A small valid dataset is written in each file layout (rearm, mmrec, recbole, and the clhe
bundle layout) by the project's writers (the BundleRec CSV layout, which has no writer, gets
targeted cases); hypothesis then picks one file and one corruption (truncation, empty file, wrong
header, wrong dtype, wrong shape, out-of-range or negative ids, NaN features, ragged rows,
...) and reads the folder back with :func:`recsys.data.loading.load_dataset`. Each corruption
has a known right answer:

* ``error``: the input is invalid, so the reader must raise ``DataError``/``ConfigError`` whose
  message names the damaged file (and the line, for a damaged cell) — never an exception from
  deep inside numpy/pandas and never a dataset;
* ``same``: the input means the same data (CRLF line endings, a repeated interaction, int32
  ids, float64 features), so the reader must return the original dataset, compared in raw-id
  space (users, items and feature rows by their raw ids).
"""
from __future__ import annotations

import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from recsys.data import SPLITS, DataError
from recsys.data.loading import load_dataset, write_dataset
from recsys.data.synthetic import generate
from recsys.errors import ConfigError

NAME = "toy"
ERROR, SAME = "error", "same"


def _base():
    ds = generate(n_users=16, n_items=12, n_clusters=2, interactions_per_user=5, informative_dim=3, noise_dim=2,
                  seed=3)
    ds.name = NAME
    return ds


def canonical(ds) -> dict:
    """The dataset in raw-id space: interactions per split and feature rows by raw item id."""
    out = {"sizes": (ds.n_users, ds.n_items)}
    for split in SPLITS:
        users, items = ds.split(split)
        out[split] = sorted(zip(ds.user_ids[users].tolist(), ds.item_ids[items].tolist()))
    for modality, feat in ds.features.items():
        assert feat.dtype == np.float32 and np.isfinite(feat).all()
        out[f"feat/{modality}"] = {str(ds.item_ids[r]): feat[r].tobytes() for r in range(ds.n_items)}
    return out


# ----------------------------------------------------------------------------- corruptions
# Each takes (path, draw) and returns (expectation, line number of the damaged cell or None).

def _npy_load(path: Path) -> np.ndarray:
    return np.load(path, allow_pickle=False)


def _npy_save(path: Path, array: np.ndarray, allow_pickle: bool = False) -> None:
    with open(path, "wb") as handle:
        np.save(handle, array, allow_pickle=allow_pickle)


def truncate_bytes(path, draw):
    data = path.read_bytes()
    path.write_bytes(data[: draw(st.integers(0, len(data) - 1))])
    return ERROR, None


def empty_file(path, draw):
    path.write_bytes(b"")
    return ERROR, None


def garbage_header(path, draw):
    data = bytearray(path.read_bytes())
    start = draw(st.integers(0, 5))
    data[start:start + 4] = b"\x00XYZ"
    path.write_bytes(bytes(data))
    return ERROR, None


def text_instead_of_npy(path, draw):
    path.write_text("user,item\n0,1\n")
    return ERROR, None


def split_as(dtype):
    def corrupt(path, draw):
        _npy_save(path, _npy_load(path).astype(dtype))
        return ERROR, None
    corrupt.__name__ = f"split_as_{np.dtype(dtype).name}"
    return corrupt


def split_as_object(path, draw):
    _npy_save(path, _npy_load(path).astype(object), allow_pickle=True)
    return ERROR, None


def split_transposed(path, draw):
    _npy_save(path, np.ascontiguousarray(_npy_load(path).T))
    return ERROR, None


def split_flattened(path, draw):
    _npy_save(path, _npy_load(path).ravel())
    return ERROR, None


def split_3d(path, draw):
    _npy_save(path, _npy_load(path)[None])
    return ERROR, None


def split_negative_id(path, draw):
    array = _npy_load(path)
    array[draw(st.integers(0, 1)), draw(st.integers(0, array.shape[1] - 1))] = -draw(st.integers(1, 10**12))
    _npy_save(path, array)
    return ERROR, None


def split_id_out_of_range(path, draw):
    array = _npy_load(path)
    row = draw(st.integers(0, 1))
    limit = 16 if row == 0 else 12
    array[row, draw(st.integers(0, array.shape[1] - 1))] = draw(st.integers(limit, limit + 10**12))
    _npy_save(path, array)
    return ERROR, None


def split_as_int32(path, draw):
    _npy_save(path, _npy_load(path).astype(np.int32))
    return SAME, None


def feat_non_finite(path, draw):
    array = _npy_load(path)
    array[draw(st.integers(0, array.shape[0] - 1)), draw(st.integers(0, array.shape[1] - 1))] = \
        draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    _npy_save(path, array)
    return ERROR, None


def feat_wrong_rows(path, draw):
    array = _npy_load(path)
    _npy_save(path, array[:-1] if draw(st.booleans()) else np.concatenate([array, array[:1]]))
    return ERROR, None


def feat_flattened(path, draw):
    _npy_save(path, _npy_load(path).ravel())
    return ERROR, None


def feat_as(dtype):
    def corrupt(path, draw):
        array = _npy_load(path)
        _npy_save(path, array.astype(dtype) if np.dtype(dtype).kind != "U" else array.astype(str))
        return ERROR, None
    corrupt.__name__ = f"feat_as_{np.dtype(dtype).name}"
    return corrupt


def feat_as_float64(path, draw):
    _npy_save(path, _npy_load(path).astype(np.float64))
    return SAME, None


# TSV helpers: lines without their terminator; line k (1-based) is the header for k = 1.

def _lines(path: Path) -> list[str]:
    return path.read_text().split("\n")[:-1]


def _write_lines(path: Path, lines: list[str], ending: str = "\n") -> None:
    path.write_bytes("".join(line + ending for line in lines).encode())


def _data_line(lines, draw) -> int:
    return draw(st.integers(1, len(lines) - 1))


def header_only(path, draw):
    _write_lines(path, _lines(path)[:1])
    return ERROR, None


def drop_header(path, draw):
    _write_lines(path, _lines(path)[1:])
    return ERROR, None


def rename_column(column):
    def corrupt(path, draw):
        lines = _lines(path)
        fields = lines[0].split("\t")
        fields[fields.index(column)] = column + draw(st.sampled_from(["_", "x", " "]))
        lines[0] = "\t".join(fields)
        _write_lines(path, lines)
        return ERROR, None
    corrupt.__name__ = f"rename_{column}"
    return corrupt


def set_cell(column, values):
    """Replace one cell of ``column`` by a value drawn from ``values`` (all invalid there)."""
    def corrupt(path, draw):
        lines = _lines(path)
        index = lines[0].split("\t").index(column)
        row = _data_line(lines, draw)
        fields = lines[row].split("\t")
        fields[index] = draw(values)
        lines[row] = "\t".join(fields)
        _write_lines(path, lines)
        return ERROR, row + 1
    corrupt.__name__ = f"bad_{column.split(':')[0]}"
    return corrupt


NOT_AN_INTEGER = st.sampled_from(["abc", "1.5", "", "nan", "1e3", "2.0", "0x1", "--1", "2.0.1", "inf", "1,5", "½",
                                  "99999999999999999999"])


def extra_field(path, draw):
    lines = _lines(path)
    row = _data_line(lines, draw)
    lines[row] += "\t" + draw(st.sampled_from(["0", "x", ""]))
    _write_lines(path, lines)
    return ERROR, row + 1


def missing_field(path, draw):
    lines = _lines(path)
    row = _data_line(lines, draw)
    lines[row] = lines[row].rsplit("\t", 1)[0]
    _write_lines(path, lines)
    return ERROR, row + 1


def cut_last_line(path, draw):
    lines = _lines(path)
    lines[-1] = lines[-1][: draw(st.integers(1, len(lines[-1].rsplit("\t", 1)[0])))]
    path.write_bytes(("\n".join(lines)).encode())
    return ERROR, len(lines)


def crlf(path, draw):
    _write_lines(path, _lines(path), "\r\n")
    return SAME, None


def repeat_line(path, draw):
    lines = _lines(path)
    row = _data_line(lines, draw)
    lines.insert(draw(st.integers(row, len(lines))), lines[row])
    _write_lines(path, lines)
    return SAME, None


def duplicate_row(path, draw):
    lines = _lines(path)
    lines.append(lines[_data_line(lines, draw)])
    _write_lines(path, lines)
    return ERROR, None


def set_int_cell_to(column, values):
    corrupt = set_cell(column, values)
    corrupt.__name__ = f"{column}_out_of_range"
    return corrupt


def drop_used_item_row(path, draw):
    """Remove the feature row of an item that has interactions."""
    used = {line.split("\t")[1] for line in _lines(path.with_name(f"{NAME}.train.inter"))[1:]}
    lines = _lines(path)
    rows = [k for k in range(1, len(lines)) if lines[k].split("\t")[0] in used]
    del lines[draw(st.sampled_from(rows))]
    _write_lines(path, lines)
    return ERROR, None


def bad_type_suffix(path, draw):
    lines = _lines(path)
    fields = lines[0].split("\t")
    column = draw(st.integers(0, len(fields) - 1))
    fields[column] = fields[column].split(":")[0] + draw(st.sampled_from([":tok", "", ":int", ":"]))
    lines[0] = "\t".join(fields)
    _write_lines(path, lines)
    return ERROR, None


def bad_float_seq(path, draw):
    lines = _lines(path)
    row = _data_line(lines, draw)
    fields = lines[row].split("\t")
    column = draw(st.integers(1, len(fields) - 1))
    values = fields[column].split(" ")
    kind = draw(st.sampled_from(["word", "nan", "shorter", "longer", "empty"]))
    if kind == "word":
        values[draw(st.integers(0, len(values) - 1))] = "abc"
    elif kind == "nan":
        values[draw(st.integers(0, len(values) - 1))] = draw(st.sampled_from(["nan", "inf", "-inf"]))
    elif kind == "shorter":
        values = values[:-1] or ["1"] * 9
    elif kind == "longer":
        values = values + ["0.5"]
    else:
        values = [""]
    fields[column] = " ".join(values)
    lines[row] = "\t".join(fields)
    _write_lines(path, lines)
    return ERROR, row + 1


SPLIT_NPY = [truncate_bytes, empty_file, garbage_header, text_instead_of_npy, split_as(np.float64),
             split_as(np.bool_), split_as_object, split_transposed, split_flattened, split_3d, split_negative_id,
             split_id_out_of_range, split_as_int32]
FEAT_NPY = [truncate_bytes, empty_file, garbage_header, feat_non_finite, feat_wrong_rows, feat_flattened,
            feat_as(np.complex64), feat_as(np.str_), feat_as_float64]
ID_MAP = [empty_file, header_only, drop_header, rename_column("itemID"),
          set_cell("itemID", NOT_AN_INTEGER | st.sampled_from(["-1", "12", "99999999999"])),
          extra_field, missing_field, cut_last_line, crlf, duplicate_row]
USER_MAP = [empty_file, drop_header, rename_column("userID"),
            set_cell("userID", NOT_AN_INTEGER | st.sampled_from(["-1", "16", "99999999999"])),
            extra_field, missing_field, cut_last_line, crlf, duplicate_row]
MMREC_INTER = [empty_file, header_only, drop_header, rename_column("userID"), rename_column("itemID"),
               rename_column("x_label"), set_cell("userID", NOT_AN_INTEGER), set_cell("itemID", NOT_AN_INTEGER),
               set_cell("x_label", NOT_AN_INTEGER | st.sampled_from(["3", "-1", "7"])),
               set_int_cell_to("userID", st.sampled_from(["-1", "-5", "16", "17", "99999999999"])),
               set_int_cell_to("itemID", st.sampled_from(["-1", "12", "13", "99999999999"])),
               extra_field, missing_field, cut_last_line, crlf, repeat_line]
RECBOLE_INTER = [empty_file, header_only, drop_header, bad_type_suffix, rename_column("user_id:token"),
                 rename_column("item_id:token"), extra_field, missing_field, crlf, repeat_line]
RECBOLE_ITEM = [empty_file, drop_header, bad_type_suffix, bad_float_seq, duplicate_row, drop_used_item_row, crlf]

TARGETS = {
    "rearm": [(f"{s}.npy", c) for s in SPLITS for c in SPLIT_NPY]
    + [(f"{m}_feat.npy", c) for m in ("text", "image") for c in FEAT_NPY]
    + [("item_ids.tsv", c) for c in ID_MAP]
    + [("user_ids.tsv", c) for c in USER_MAP],
    "mmrec": [(f"{NAME}.inter", c) for c in MMREC_INTER]
    + [(f"{m}_feat.npy", c) for m in ("text", "image") for c in FEAT_NPY]
    + [("i_id_mapping.csv", c) for c in ID_MAP]
    + [("u_id_mapping.csv", c) for c in USER_MAP],
    "recbole": [(f"{NAME}.train.inter", c) for c in RECBOLE_INTER]
    + [(f"{NAME}.item", c) for c in RECBOLE_ITEM],
}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    base = _base()
    root = tmp_path_factory.mktemp("pristine")
    out = {}
    for fmt in TARGETS:
        write_dataset(base, root / fmt, fmt, NAME)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out[fmt] = (root / fmt, canonical(load_dataset({"format": fmt, "path": str(root / fmt), "name": NAME})))
    return out


def _read(folder: Path, fmt: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_dataset({"format": fmt, "path": str(folder), "name": NAME})


def test_pristine_folders_read_back_the_generated_dataset(pristine):
    """Sanity of the oracle: the pristine folders read back as the generated dataset."""
    base = canonical(_base())
    for fmt, (_, original) in pristine.items():
        assert original == base, fmt


@pytest.mark.parametrize("fmt", list(TARGETS))
@settings(max_examples=80, deadline=None, derandomize=True, phases=[Phase.generate, Phase.shrink],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_corrupted_input_gives_data_error_or_the_same_dataset(pristine, fmt, data):
    source, original = pristine[fmt]
    file_name, corruption = data.draw(st.sampled_from(TARGETS[fmt]), label="file, corruption")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / fmt
        shutil.copytree(source, folder)
        expectation, line = corruption(folder / file_name, data.draw)
        try:
            ds = _read(folder, fmt)
        except (DataError, ConfigError) as exc:
            message = str(exc)
            assert expectation == ERROR, f"{corruption.__name__} on {file_name} must read fine: {message}"
            assert file_name in message, f"the error does not name {file_name}: {message}"
            if line is not None:
                assert f"line {line}" in message or f"row {line - 2}," in message, \
                    f"the error does not name line {line} (data row {line - 2}): {message}"
            return
        assert expectation == SAME, f"{corruption.__name__} on {file_name} was accepted: a silently wrong dataset"
        assert canonical(ds) == original, f"{corruption.__name__} on {file_name} changed the dataset"


# ----------------------------------------------------------------------------- ids far from dense
def _mmrec_folder(tmp_path: Path, text: str) -> Path:
    folder = tmp_path / "mmrec"
    folder.mkdir()
    (folder / f"{NAME}.inter").write_text(text)
    return folder


def test_float_formatted_id_is_reported_at_its_own_line(tmp_path):
    """Found by the fuzzing: int_column reported line 2 for "1e3" (pandas reads it as 1000.0)."""
    folder = _mmrec_folder(tmp_path, "userID\titemID\tx_label\n0\t0\t0\n0\t1\t1\n1e3\t1\t0\n")
    with pytest.raises(DataError, match="line 4, column 'userID': value '1e3'"):
        _read(folder, "mmrec")


def test_extra_field_on_the_first_data_line_is_not_taken_as_an_index(tmp_path):
    """Found by the fuzzing: with one field too many on line 2 pandas used the first column as
    the index and shifted the others, so a one-row file read as user 1 / item 0."""
    folder = _mmrec_folder(tmp_path, "userID\titemID\tx_label\n0\t1\t0\t0\n")
    with pytest.raises(DataError, match="line 2"):
        _read(folder, "mmrec")


def test_mmrec_file_without_train_rows_is_a_data_error(tmp_path):
    """Found by this fuzzing (an IndexError in clean_splits), fixed in 768044c."""
    folder = _mmrec_folder(tmp_path, "userID\titemID\tx_label\n")
    with pytest.raises(DataError, match="train split is empty"):
        _read(folder, "mmrec")


def test_absurd_id_without_an_id_list_is_a_data_error(tmp_path):
    """Found by this fuzzing: without an id list the sizes are max id + 1, so one corrupt id
    of 10**12 made Dataset allocate 10**12 raw ids (MemoryError). Ids far beyond the number
    of distinct ids are now a DataError naming the line and the fix."""
    folder = _mmrec_folder(tmp_path, "userID\titemID\tx_label\n0\t0\t0\n0\t1\t1\n1\t999999999999\t0\n")
    with pytest.raises(DataError, match=r"line 4.*item id 999999999999 .*renumber"):
        _read(folder, "mmrec")


def test_absurd_id_in_a_rearm_split_names_the_file_and_column(tmp_path):
    folder = tmp_path / "rearm"
    folder.mkdir()
    np.save(folder / "train.npy", np.array([[0, 1, 1], [0, 1, 2]], dtype=np.int64))
    np.save(folder / "valid.npy", np.array([[0], [1]], dtype=np.int64))
    np.save(folder / "test.npy", np.array([[1, 1], [0, 10**12]], dtype=np.int64))
    with pytest.raises(DataError, match=r"test\.npy column 1: item id 1000000000000 .*item_ids\.tsv"):
        _read(folder, "rearm")


def test_ids_with_some_gaps_are_still_sizes(tmp_path):
    """Moderately sparse ids (here 3 distinct items up to id 500) are accepted as indices."""
    folder = _mmrec_folder(tmp_path, "userID\titemID\tx_label\n0\t0\t0\n0\t7\t1\n1\t500\t0\n")
    ds = _read(folder, "mmrec")
    assert ds.n_items == 501 and ds.n_users == 2


# ----------------------------------------------------------------------------- bundle layouts
def _base_bundles():
    from recsys.data.bundles import BundleDataset, split_bundles

    rng = np.random.default_rng(5)
    n_users, n_items, n_bundles = 6, 10, 12
    pairs = np.unique(np.stack([np.repeat(np.arange(n_bundles), 4), rng.integers(0, n_items, 4 * n_bundles)]), axis=1)
    parts = split_bundles(pairs, n_bundles, (0.6, 0.2, 0.2), seed=1)
    owner = rng.integers(0, n_users, n_bundles)
    ui = np.unique(np.stack([owner[parts["train"][0]], parts["train"][1]]), axis=1)
    empty = np.zeros((2, 0), dtype=np.int64)
    return BundleDataset(name="bundles", n_users=n_users, n_items=n_items, train=ui, valid=empty, test=empty,
                         features={"text": rng.standard_normal((n_items, 3)).astype(np.float32)},
                         user_ids=np.char.add("u", np.arange(n_users).astype(str)),
                         item_ids=np.char.add("i", np.arange(n_items).astype(str)),
                         n_bundles=n_bundles, bundle_pairs=parts,
                         bundle_ids=np.char.add("b", np.arange(n_bundles).astype(str)))


def bundle_canonical(ds) -> dict:
    """A bundle dataset in raw-id space: user-item pairs, every bundle part, features."""
    out = {"sizes": (ds.n_users, ds.n_items, ds.n_bundles),
           "ui": sorted(zip(ds.user_ids[ds.train[0]].tolist(), ds.item_ids[ds.train[1]].tolist()))}
    for part, (bundles, items) in ds.bundle_pairs.items():
        out[part] = sorted(zip(ds.bundle_ids[bundles].tolist(), ds.item_ids[items].tolist()))
    for modality, feat in ds.features.items():
        out[f"feat/{modality}"] = {str(ds.item_ids[r]): feat[r].tobytes() for r in range(ds.n_items)}
    return out


def _set_line_field(values):
    """Replace one field of a "row, item, item" line (all drawn values are invalid there)."""
    def corrupt(path, draw):
        lines = _lines(path)
        row = draw(st.integers(0, len(lines) - 1))
        fields = lines[row].split(", ")
        fields[draw(st.integers(0, len(fields) - 1))] = draw(values)
        lines[row] = ", ".join(fields)
        _write_lines(path, lines)
        return ERROR, row + 1
    corrupt.__name__ = "bad_set_field"
    return corrupt


def blank_lines(path, draw):
    lines = _lines(path)
    lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from(["", " ", ",", " , "])))
    _write_lines(path, lines)
    return SAME, None


def bad_count(path, draw):
    import json

    counts = json.loads(path.read_text())
    key = draw(st.sampled_from(sorted(counts)))
    choice = draw(st.sampled_from(["drop", "text", "smaller", "negative"]))
    if choice == "drop":
        del counts[key]
    elif choice == "text":
        counts[key] = "many"
    else:
        counts[key] = counts[key] - 1 if choice == "smaller" else -1
    path.write_text(json.dumps(counts))
    return ERROR, None


def fewer_id_lines(path, draw):
    lines = path.read_text().split("\n")
    path.write_text("\n".join(lines[: draw(st.integers(0, len(lines) - 1))]))
    return ERROR, None


SET_FILE = [_set_line_field(st.sampled_from(["abc", "1.5", "-1", "99", "1e3", "0x2"])), blank_lines, crlf, repeat_line]
CLHE_TARGETS = ([("count.json", c) for c in (bad_count, empty_file, truncate_bytes)]
                + [(f, c) for f in ("ui_full.txt", "bi_train.txt", "bi_valid_gt.txt") for c in SET_FILE]
                + [("text_feat.npy", c) for c in FEAT_NPY]
                + [(f, fewer_id_lines) for f in ("user_ids.txt", "item_ids.txt", "bundle_ids.txt")])


@pytest.fixture(scope="module")
def pristine_clhe(tmp_path_factory):
    from recsys.data.clhe_format import write_clhe

    folder = tmp_path_factory.mktemp("pristine_clhe") / "clhe"
    base = _base_bundles()
    write_clhe(base, folder)
    assert bundle_canonical(load_dataset({"format": "clhe", "path": str(folder)})) == bundle_canonical(base)
    return folder, bundle_canonical(base)


@settings(max_examples=80, deadline=None, derandomize=True, phases=[Phase.generate, Phase.shrink],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_corrupted_clhe_folder_gives_data_error_or_the_same_dataset(pristine_clhe, data):
    source, original = pristine_clhe
    file_name, corruption = data.draw(st.sampled_from(CLHE_TARGETS), label="file, corruption")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "clhe"
        shutil.copytree(source, folder)
        expectation, line = corruption(folder / file_name, data.draw)
        try:
            ds = _read(folder, "clhe")
        except (DataError, ConfigError) as exc:
            message = str(exc)
            assert expectation == ERROR, f"{corruption.__name__} on {file_name} must read fine: {message}"
            assert file_name in message, f"the error does not name {file_name}: {message}"
            if line is not None:
                assert f"line {line}" in message, f"the error does not name line {line}: {message}"
            return
        assert expectation == SAME, f"{corruption.__name__} on {file_name} was accepted: a silently wrong dataset"
        assert bundle_canonical(ds) == original, f"{corruption.__name__} on {file_name} changed the dataset"


def _bundle_csv_folder(folder: Path) -> Path:
    folder.mkdir()
    (folder / "bundle_item.csv").write_text("bundle ID,item ID\n10,501\n10,502\n11,502\n11,503\n12,501\n12,503\n"
                                            "13,502\n13,504\n14,501\n14,504\n")
    (folder / "user_bundle.csv").write_text("user ID,bundle ID,timestamp\n7,10,1\n7,11,1\n8,12,1\n9,13,1\n9,14,1\n")
    (folder / "user_item.csv").write_text("user ID,item ID,timestamp\n7,501,1\n7,502,1\n7,503,1\n8,501,1\n")
    return folder


def _bundle_csv(folder: Path):
    return load_dataset({"format": "bundle_csv", "path": str(folder), "modalities": [],
                         "split_ratios": [0.6, 0.2, 0.2]})


@pytest.mark.parametrize("value", ["abc", "", "nan", "5x"])
def test_bundle_csv_non_integer_id_names_file_and_line(tmp_path, value):
    folder = _bundle_csv_folder(tmp_path / "csv")
    lines = (folder / "bundle_item.csv").read_text().splitlines()
    lines[4] = f"11,{value}"
    (folder / "bundle_item.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"bundle_item.csv line 5, column 'item ID'"):
        _bundle_csv(folder)


def test_bundle_csv_missing_column_is_a_data_error(tmp_path):
    folder = _bundle_csv_folder(tmp_path / "csv")
    (folder / "user_item.csv").write_text("user,item ID,timestamp\n7,501,1\n")
    with pytest.raises(DataError, match=r"user_item.csv lacks column\(s\) \['user ID'\]"):
        _bundle_csv(folder)


def test_bundle_csv_fractional_id_is_not_truncated(tmp_path):
    """Found by the fuzzing: "502.7" was truncated to item 502."""
    folder = _bundle_csv_folder(tmp_path / "csv")
    text = (folder / "bundle_item.csv").read_text().replace("11,503\n", "11,502.7\n")
    (folder / "bundle_item.csv").write_text(text)
    with pytest.raises(DataError, match=r"bundle_item.csv line 5"):
        _bundle_csv(folder)


def test_bundle_csv_extra_field_on_the_first_data_line_is_reported_there(tmp_path):
    """Found by the fuzzing: the same implicit pandas index as in read_tsv."""
    folder = _bundle_csv_folder(tmp_path / "csv")
    text = (folder / "bundle_item.csv").read_text().replace("10,501\n", "10,501,7\n", 1)
    (folder / "bundle_item.csv").write_text(text)
    with pytest.raises(DataError, match=r"bundle_item.csv line 2"):
        _bundle_csv(folder)
